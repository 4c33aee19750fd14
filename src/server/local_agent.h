// The node agent of `berthd serve`: the real agent, running in the daemon's
// process but speaking the same HTTP agent protocol a remote agent would
// (register, long-poll the desired tasks, report every state change).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "agent/node_agent.h"
#include "common/config.h"
#include "common/result.h"
#include "server/http_types.h"

namespace berth {

class ReportQueue;

struct LocalAgentHooks {
  // Appends shipped container output to the log store.
  std::function<void(const agent::ShippedLog&)> ship_logs;
  // A registry token the agent pulls with (user "AWS").
  std::function<std::string()> registry_password;
};

class LocalAgent {
 public:
  LocalAgent(Config config, std::string api_address, std::string node_token,
             LocalAgentHooks hooks);
  ~LocalAgent();

  // Prepares the node (bridge, cgroups, image cache), starts the task
  // metadata endpoint on the bridge address and the control loop.
  Status Start();
  // Stops the control loop. Running tasks keep running (a restarted daemon
  // re-adopts them) unless `stop_tasks`.
  void Stop(bool stop_tasks);

  // Usage of a task running on this node (NodeAgent::StatsForTask); nullopt
  // when the task is unknown here or the agent is not started.
  std::optional<agent::Json> StatsForTask(const std::string& task_id);

 private:
  void Loop();

  Config config_;
  std::string api_address_;
  std::string node_token_;
  LocalAgentHooks hooks_;
  std::string node_id_;
  // Task reports go out from here, so a task's start never waits for one to be stored.
  std::unique_ptr<ReportQueue> reports_;
  std::unique_ptr<agent::NodeAgent> agent_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  struct Metadata;
  std::unique_ptr<Metadata> metadata_;
};

}  // namespace berth
