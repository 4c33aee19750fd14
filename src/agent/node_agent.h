// The node agent: runs the tasks the control plane places on this node.
//
// For every desired task it creates the task's network namespace (CNI bridge
// plus host-local IPAM), pulls the images, creates the task cgroup with the
// task's cpu and memory, mounts an overlay rootfs per container and starts the
// containers with the OCI runtime in dependency order. It watches them
// (exits, health checks, out-of-memory kills), stops them with SIGTERM then
// SIGKILL after the stop timeout, ships their output to CloudWatch Logs, and
// reports every state change. Teardown removes every mount, cgroup, namespace,
// veth and address lease.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/image_store.h"
#include "common/result.h"

namespace berth::agent {

using Json = nlohmann::json;

// What the control plane wants of one task on this node.
struct DesiredTask {
  std::string task_id;     // 32 hex characters
  std::string task_arn;
  std::string cluster;
  std::string desired_status;  // "RUNNING" or "STOPPED"
  Json task_definition;        // the registered definition
  Json overrides = Json::object();
  std::string stop_code;       // set with desired_status STOPPED
  std::string stopped_reason;
  uint64_t seq = 0;            // the last report sequence the control plane applied
};

struct ContainerReport {
  std::string name;
  std::string last_status = "PENDING";  // PENDING, RUNNING, STOPPED
  std::optional<int> exit_code;
  std::string reason;
  std::string health_status = "UNKNOWN";  // HEALTHY, UNHEALTHY, UNKNOWN
  std::string runtime_id;
  std::string image_digest;
};

// A task's observed state, sent to the control plane on every change.
struct TaskReport {
  std::string task_id;
  std::string cluster;
  uint64_t seq = 0;
  std::string last_status;  // PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING,
                            // DEPROVISIONING, STOPPED
  std::string health_status = "UNKNOWN";
  std::vector<ContainerReport> containers;
  std::string private_ip;
  std::string mac_address;
  std::string stop_code;       // TaskFailedToStart, EssentialContainerExited, ...
  std::string stopped_reason;
  double pull_started_at = 0;
  double pull_stopped_at = 0;
  double started_at = 0;
  double execution_stopped_at = 0;

  Json ToJson() const;
};

// One log event from a container, for the awslogs driver.
struct ShippedLog {
  std::string group;
  std::string stream;
  bool create_group = false;
  std::vector<std::pair<int64_t, std::string>> events;  // (epoch ms, message)
};

struct NodeAgentOptions {
  std::string state_dir;                 // <data-dir>/agent
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  std::string runtime = "runc";
  std::string bridge = "berth0";
  std::string subnet = "172.31.0.0/16";
  std::string cni_plugin_dir = "/usr/lib/cni";
  std::string netns_dir = "/run/netns";
  std::string cgroup_parent = "berth";
  // The registry images come from: references without a host, and the AWS
  // ECR form <account>.dkr.ecr.<region>.amazonaws.com/<name>, resolve here.
  std::string local_registry;            // "127.0.0.1:4566"
  std::function<std::string()> registry_password;  // a fresh ECR token (user "AWS")
  // Where the task metadata endpoint is served, as seen from tasks
  // ("http://172.31.0.1:<port>"); empty disables the variables.
  std::string metadata_base_url;
  std::string init_binary;               // host path of berth-init
  // Host path of berth-shim, the parent each container's init gets so its exit status is
  // known after a restart of the agent; "" starts containers without it (an adopted
  // container's exit code is then unknown).
  std::string shim_binary;
  // Credentials for registries other than the local one: a docker-style config.json
  // ({"auths": {"host:port": {"auth": base64("user:password")}}}), read at every pull.
  // "" pulls from other registries anonymously.
  std::string registry_auth_file;
  // The image cache is collected every `image_gc_interval` (0: never): layers and blobs no
  // task on the node uses, and that no task used or pull fetched within `image_gc_grace`.
  std::chrono::seconds image_gc_interval{600};
  std::chrono::seconds image_gc_grace{3600};
};

class NodeAgent {
 public:
  using ReportFn = std::function<void(const TaskReport&)>;
  using LogFn = std::function<void(const ShippedLog&)>;

  NodeAgent(NodeAgentOptions options, ReportFn report, LogFn logs);
  ~NodeAgent();

  // Prepares the state dir, the cgroup parent and the image cache, and takes
  // back the tasks a previous run of the agent left running (their containers
  // outlive the agent; their records are in the state dir).
  Status Init();

  // Brings the node toward the desired task set (the whole set placed on
  // this node): starts tasks not yet running, stops tasks whose desired
  // status is STOPPED, and stops tasks it holds that the set no longer names.
  void Apply(const std::vector<DesiredTask>& tasks);

  // The current report of a task, if the agent holds it.
  std::optional<TaskReport> Report(const std::string& task_id);

  // Task metadata (v4) for the task owning `ip`, for the metadata endpoint.
  std::optional<Json> MetadataForIp(const std::string& ip, const std::string& what);

  // Container stats in Docker's stats shape (the metadata /stats endpoint);
  // `container` "" gives every container of the task, keyed by runtime id.
  std::optional<Json> StatsForIp(const std::string& ip, const std::string& container);

  // Usage of a whole task (its cgroup: cpu time, memory against the task's
  // limit, pids) in Docker's stats shape, for berthd's stats endpoint.
  // nullopt when the task is not on this node or has no cgroup (yet, or any more).
  std::optional<Json> StatsForTask(const std::string& task_id);

  // Creates the task bridge with its gateway address if it does not exist;
  // returns the gateway address (where the metadata endpoint listens).
  Result<std::string> EnsureBridge();
  // The metadata endpoint's base URL as tasks see it ("http://172.31.0.1:51679").
  void SetMetadataBaseUrl(const std::string& url);

  // Stops every task and waits for teardown (used on shutdown of tests; a
  // daemon restart leaves tasks running instead).
  void StopAll();
  // Stops the agent's threads without touching running containers.
  void Detach();

  size_t TaskCount();

  /// The store digests (image configs and layers) the tasks held by the agent use, whatever
  /// their state short of finished: a task's containers keep their rootfs mounted until its
  /// teardown. nullopt when a task taken back from an older record does not say which images
  /// its containers use; nothing may be collected then.
  std::optional<std::set<std::string>> InUseImageDigests();

  /// Collects the image cache once (see NodeAgentOptions::image_gc_grace). Runs with pulls
  /// held off, so a pulled image is always either being pulled or owned by its task.
  /// Errors: 409 "ImagesInUseUnknown" when InUseImageDigests cannot tell; the store's
  /// errors.
  Result<CollectStats> CollectImages();

 private:
  class TaskRun;
  void StartImageCollector();
  void StopImageCollector();

  NodeAgentOptions options_;
  ReportFn report_;
  LogFn logs_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<TaskRun>> tasks_;
  struct Shared;
  std::shared_ptr<Shared> shared_;
  std::thread gc_thread_;
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  bool gc_stop_ = false;  // guarded by gc_mu_
};

}  // namespace berth::agent
