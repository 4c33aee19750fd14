// SPDX-License-Identifier: Apache-2.0
// `berth stats` / `berth top`: per-task cpu, memory and pids from the node
// agent's cgroup statistics (berthd's GET /_berth/tasks/<id>/stats).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/tasks.h"

namespace berth::cli {

namespace {

struct Sample {
  double read = 0;      // epoch seconds on berthd
  uint64_t cpu_ns = 0;  // cumulative cpu time of the task
  uint64_t memory = 0;  // in use, without the inactive page cache
  uint64_t limit = 0;
  uint64_t pids = 0;
};

uint64_t U64(const Json& j, std::initializer_list<const char*> path) {
  const Json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object() || !cur->contains(key)) {
      return 0;
    }
    cur = &(*cur)[key];
  }
  return cur->is_number_unsigned() || cur->is_number_integer() ? cur->get<uint64_t>() : 0;
}

std::optional<Sample> ParseSample(const Json& body) {
  if (!body.contains("task") || !body["task"].is_object()) {
    return std::nullopt;
  }
  const Json& t = body["task"];
  Sample s;
  s.read = body.value("read", 0.0);
  s.cpu_ns = U64(t, {"cpu_stats", "cpu_usage", "total_usage"});
  uint64_t usage = U64(t, {"memory_stats", "usage"});
  // Page cache the kernel may drop at once is not counted, as docker does.
  uint64_t inactive = U64(t, {"memory_stats", "stats", "total_inactive_file"});
  if (inactive == 0) {
    inactive = U64(t, {"memory_stats", "stats", "inactive_file"});
  }
  s.memory = inactive < usage ? usage - inactive : usage;
  s.limit = U64(t, {"memory_stats", "limit"});
  s.pids = U64(t, {"pids_stats", "current"});
  return s;
}

struct Row {
  std::string task_id;
  std::string name;
  std::optional<Sample> first;
  std::optional<Sample> second;
  std::string problem;
};

Result<std::optional<Sample>> Fetch(const AwsClient& client, const std::string& task_id,
                                    std::string& problem) {
  auto body = client.GetInternal("/_berth/tasks/" + task_id + "/stats");
  if (!body.ok()) {
    if (body.error().status == 404 || body.error().status == 503) {
      problem = body.error().message;
      return std::optional<Sample>();
    }
    return body.error();
  }
  return ParseSample(*body);
}

std::vector<std::string> Render(const Row& row) {
  if (!row.second) {
    return {row.task_id, row.name, "--", "-- / --", "--", "--"};
  }
  const Sample& now = *row.second;
  std::string cpu = "--";
  if (row.first && now.read > row.first->read && now.cpu_ns >= row.first->cpu_ns) {
    double pct = static_cast<double>(now.cpu_ns - row.first->cpu_ns) / 1e9 /
                 (now.read - row.first->read) * 100.0;
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%.2f%%", pct);
    cpu = buf;
  }
  bool limited = now.limit > 0 && now.limit < (uint64_t{1} << 60);
  std::string mem = FormatBytes(now.memory) + " / " +
                    (limited ? FormatBytes(now.limit) : std::string("unlimited"));
  std::string mem_pct = "--";
  if (limited) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%.2f%%",
                  static_cast<double>(now.memory) * 100.0 / static_cast<double>(now.limit));
    mem_pct = buf;
  }
  return {row.task_id, row.name, cpu, mem, mem_pct, std::to_string(now.pids)};
}

std::string RenderRows(const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> table;
  table.push_back({"TASK ID", "FAMILY:REV", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"});
  for (const auto& r : rows) {
    table.push_back(Render(r));
  }
  return RenderTable(table);
}

Status SampleAll(const AwsClient& client, std::vector<Row>& rows) {
  for (auto& r : rows) {
    std::string problem;
    auto s = Fetch(client, r.task_id, problem);
    if (!s.ok()) {
      return s.error();
    }
    r.first = r.second;
    r.second = *s;
    r.problem = problem;
  }
  return Ok();
}

}  // namespace

Status RunStats(const GlobalFlags& flags, const StatsOptions& options) {
  if (!(options.interval > 0)) {
    return LocalError("--interval must be positive");
  }
  auto settings = ResolveSettings(flags, ProcessEnv());
  if (!settings.ok()) {
    return settings.error();
  }
  AwsClient client(*settings);

  std::vector<Row> rows;
  if (options.tasks.empty()) {
    auto tasks = DescribeAllTasks(client, options.cluster, false);
    if (!tasks.ok()) {
      return tasks.error();
    }
    for (const auto& t : *tasks) {
      if (t.value("lastStatus", "") == "RUNNING") {
        rows.push_back(Row{LastSegment(t.value("taskArn", "")),
                           LastSegment(t.value("taskDefinitionArn", "")),
                           {},
                           {},
                           ""});
      }
    }
  } else {
    for (const auto& name : options.tasks) {
      auto t = FindTask(client, name, options.cluster);
      if (!t.ok()) {
        return t.error();
      }
      if (t->value("lastStatus", "") == "STOPPED") {
        return LocalError("task " + LastSegment(t->value("taskArn", "")) + " is STOPPED");
      }
      rows.push_back(Row{LastSegment(t->value("taskArn", "")),
                         LastSegment(t->value("taskDefinitionArn", "")),
                         {},
                         {},
                         ""});
    }
  }

  auto pause = std::chrono::milliseconds(static_cast<int64_t>(options.interval * 1000));
  BERTH_TRY(SampleAll(client, rows));
  std::this_thread::sleep_for(pause);
  BERTH_TRY(SampleAll(client, rows));
  const bool stream = !options.no_stream && ::isatty(STDOUT_FILENO) == 1;
  if (!stream) {
    std::fputs(RenderRows(rows).c_str(), stdout);
    for (const auto& r : rows) {
      if (!r.problem.empty()) {
        std::fprintf(stderr, "berth: task %s: %s\n", r.task_id.c_str(), r.problem.c_str());
      }
    }
    return Ok();
  }
  // On a terminal the table is redrawn until interrupted, like `top`.
  while (true) {
    std::fputs("\x1b[H\x1b[J", stdout);
    std::fputs(RenderRows(rows).c_str(), stdout);
    std::fflush(stdout);
    std::this_thread::sleep_for(pause);
    BERTH_TRY(SampleAll(client, rows));
  }
}

}  // namespace berth::cli
