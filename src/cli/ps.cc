// SPDX-License-Identifier: Apache-2.0
// `berth ps`: tasks across clusters, newest first.
#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/tasks.h"
#include "common/time_util.h"

namespace berth::cli {

namespace {

std::string TaskIp(const Json& task) {
  for (const auto& c : task.value("containers", Json::array())) {
    for (const auto& ni : c.value("networkInterfaces", Json::array())) {
      std::string ip = ni.value("privateIpv4Address", "");
      if (!ip.empty()) {
        return ip;
      }
    }
  }
  for (const auto& a : task.value("attachments", Json::array())) {
    for (const auto& d : a.value("details", Json::array())) {
      if (d.value("name", "") == "privateIPv4Address") {
        return d.value("value", "");
      }
    }
  }
  return "";
}

std::string OrDash(const std::string& s) {
  return s.empty() ? "-" : s;
}

double Timestamp(const Json& task, const char* key) {
  auto it = task.find(key);
  return it != task.end() && it->is_number() ? it->get<double>() : 0;
}

}  // namespace

Status RunPs(const GlobalFlags& flags, const PsOptions& options) {
  auto settings = ResolveSettings(flags, ProcessEnv());
  if (!settings.ok()) {
    return settings.error();
  }
  AwsClient ecs(*settings);
  auto tasks = DescribeAllTasks(ecs, options.cluster, options.all);
  if (!tasks.ok()) {
    return tasks.error();
  }
  std::sort(tasks->begin(), tasks->end(), [](const Json& a, const Json& b) {
    return Timestamp(a, "createdAt") > Timestamp(b, "createdAt");
  });
  if (options.quiet) {
    for (const auto& t : *tasks) {
      std::printf("%s\n", LastSegment(t.value("taskArn", "")).c_str());
    }
    return Ok();
  }

  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"TASK ID", "CLUSTER", "FAMILY:REV", "LAST STATUS", "HEALTH", "IP", "CPU/MEM", "AGE"});
  double now = NowEpochSeconds();
  for (const auto& t : *tasks) {
    std::string status = t.value("lastStatus", "");
    std::string desired = t.value("desiredStatus", "");
    if (desired == "STOPPED" && status != "STOPPED") {
      status += " (stopping)";
    }
    rows.push_back({LastSegment(t.value("taskArn", "")), LastSegment(t.value("clusterArn", "")),
                    LastSegment(t.value("taskDefinitionArn", "")), status,
                    OrDash(t.value("healthStatus", "")), OrDash(TaskIp(t)),
                    t.value("cpu", "-") + "/" + t.value("memory", "-"),
                    FormatAge(now - Timestamp(t, "createdAt"))});
  }
  std::fputs(RenderTable(rows).c_str(), stdout);
  return Ok();
}

}  // namespace berth::cli
