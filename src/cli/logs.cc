// SPDX-License-Identifier: Apache-2.0
// `berth logs`: a task's awslogs stream(s), optionally followed.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/tasks.h"
#include "common/time_util.h"

namespace berth::cli {

namespace {

struct Stream {
  std::string container;
  std::string group;
  std::string name;
  std::string token;  // the forward token reached so far
};

std::string IsoTime(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

// The awslogs streams of the task's containers (one container when named).
Result<std::vector<Stream>> StreamsOf(const AwsClient& ecs, const Json& task,
                                      const std::string& container) {
  auto def = ecs.Call(Service::kEcs, "DescribeTaskDefinition",
                      Json{{"taskDefinition", task.value("taskDefinitionArn", "")}});
  if (!def.ok()) {
    return def.error();
  }
  const std::string task_id = LastSegment(task.value("taskArn", ""));
  std::vector<Stream> streams;
  std::string names;
  bool found = false;
  for (const auto& c : (*def)["taskDefinition"].value("containerDefinitions", Json::array())) {
    std::string name = c.value("name", "");
    names += (names.empty() ? "" : ", ") + name;
    if (!container.empty() && name != container) {
      continue;
    }
    found = true;
    const Json lc = c.value("logConfiguration", Json::object());
    if (lc.value("logDriver", "") != "awslogs") {
      if (!container.empty()) {
        return LocalError("container " + name + " of task " + task_id +
                          " has no awslogs log configuration; its output is not kept");
      }
      continue;
    }
    const Json opts = lc.value("options", Json::object());
    std::string prefix = opts.value("awslogs-stream-prefix", "");
    streams.push_back(Stream{name, opts.value("awslogs-group", ""),
                             (prefix.empty() ? "" : prefix + "/") + name + "/" + task_id, ""});
  }
  if (!container.empty() && !found) {
    return LocalError("task " + task_id + " has no container " + container +
                      " (containers: " + names + ")");
  }
  if (streams.empty()) {
    return LocalError("no container of task " + task_id +
                      " uses the awslogs log driver; its output is not kept");
  }
  return streams;
}

// Prints every event of `stream` past its token. A stream not created yet
// (the container has written nothing) has no events.
Status Drain(const AwsClient& logs, Stream& stream, int64_t since_ms, bool prefix,
             bool timestamps) {
  for (;;) {
    Json in = {
        {"logGroupName", stream.group}, {"logStreamName", stream.name}, {"startFromHead", true}};
    if (!stream.token.empty()) {
      in["nextToken"] = stream.token;
    } else if (since_ms > 0) {
      in["startTime"] = since_ms;
    }
    auto out = logs.Call(Service::kLogs, "GetLogEvents", in);
    if (!out.ok()) {
      if (out.error().code == "ResourceNotFoundException" &&
          out.error().message.find("log stream") != std::string::npos) {
        return Ok();
      }
      return out.error();
    }
    const Json& events = (*out)["events"];
    for (const auto& e : events) {
      std::string line;
      if (prefix) {
        line += stream.container + " | ";
      }
      if (timestamps) {
        line += IsoTime(e.value("timestamp", int64_t{0})) + " ";
      }
      line += e.value("message", "");
      std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    std::string next = out->value("nextForwardToken", "");
    bool done = events.empty() || next.empty() || next == stream.token;
    if (!next.empty()) {
      stream.token = next;
    }
    if (done) {
      return Ok();
    }
  }
}

}  // namespace

Status RunLogs(const GlobalFlags& flags, const LogsOptions& options) {
  int64_t since_ms = 0;
  if (!options.since.empty()) {
    auto seconds = ParseDuration(options.since);
    if (!seconds) {
      return LocalError("invalid --since '" + options.since + "' (use e.g. 30s, 10m, 2h, 1d)");
    }
    since_ms = NowEpochMillis() - *seconds * 1000;
  }
  auto settings = ResolveSettings(flags, ProcessEnv());
  if (!settings.ok()) {
    return settings.error();
  }
  AwsClient client(*settings);
  auto task = FindTask(client, options.task, options.cluster);
  if (!task.ok()) {
    return task.error();
  }
  auto streams = StreamsOf(client, *task, options.container);
  if (!streams.ok()) {
    return streams.error();
  }
  const bool prefix = streams->size() > 1;
  for (auto& s : *streams) {
    BERTH_TRY(Drain(client, s, since_ms, prefix, options.timestamps));
  }
  if (!options.follow) {
    return Ok();
  }

  // Follow: poll every 500 ms; check the task every 2 s, and once it is
  // STOPPED drain what its last moments wrote and end.
  const std::string cluster = LastSegment(task->value("clusterArn", ""));
  const std::string arn = task->value("taskArn", "");
  int polls = 0;
  bool stopped = task->value("lastStatus", "") == "STOPPED";
  while (true) {
    if (stopped) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      for (auto& s : *streams) {
        BERTH_TRY(Drain(client, s, since_ms, prefix, options.timestamps));
      }
      return Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (auto& s : *streams) {
      BERTH_TRY(Drain(client, s, since_ms, prefix, options.timestamps));
    }
    if (++polls % 4 == 0) {
      auto now = client.Call(Service::kEcs, "DescribeTasks",
                             Json{{"cluster", cluster}, {"tasks", Json::array({arn})}});
      if (!now.ok()) {
        return now.error();
      }
      stopped = (*now)["tasks"].empty() || (*now)["tasks"][0].value("lastStatus", "") == "STOPPED";
    }
  }
}

}  // namespace berth::cli
