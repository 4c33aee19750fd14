// SPDX-License-Identifier: Apache-2.0
#include "cli/tasks.h"

#include <algorithm>

namespace berth::cli {

namespace {

constexpr size_t kDescribeBatch = 100;

// Every ARN ListTasks gives for one desired status, over all pages.
Result<std::vector<std::string>> ListTaskArns(const AwsClient& ecs, const std::string& cluster,
                                              const std::string& desired_status) {
  std::vector<std::string> arns;
  std::string token;
  do {
    Json in = {{"cluster", cluster}, {"desiredStatus", desired_status}, {"maxResults", 100}};
    if (!token.empty()) {
      in["nextToken"] = token;
    }
    auto out = ecs.Call(Service::kEcs, "ListTasks", in);
    if (!out.ok()) {
      return out.error();
    }
    for (const auto& a : out->value("taskArns", Json::array())) {
      arns.push_back(a.get<std::string>());
    }
    token = out->value("nextToken", "");
  } while (!token.empty());
  return arns;
}

Result<std::vector<Json>> Describe(const AwsClient& ecs, const std::string& cluster,
                                   const std::vector<std::string>& arns) {
  std::vector<Json> tasks;
  for (size_t i = 0; i < arns.size(); i += kDescribeBatch) {
    Json batch = Json::array();
    for (size_t j = i; j < std::min(arns.size(), i + kDescribeBatch); ++j) {
      batch.push_back(arns[j]);
    }
    auto out =
        ecs.Call(Service::kEcs, "DescribeTasks", Json{{"cluster", cluster}, {"tasks", batch}});
    if (!out.ok()) {
      return out.error();
    }
    for (auto& t : (*out)["tasks"]) {
      tasks.push_back(std::move(t));
    }
  }
  return tasks;
}

}  // namespace

std::string LastSegment(const std::string& arn) {
  size_t slash = arn.rfind('/');
  return slash == std::string::npos ? arn : arn.substr(slash + 1);
}

std::string ClusterOfTaskArn(const std::string& arn) {
  if (arn.rfind("arn:", 0) != 0) {
    return "";
  }
  size_t task = arn.find(":task/");
  if (task == std::string::npos) {
    return "";
  }
  std::string rest = arn.substr(task + 6);
  size_t slash = rest.find('/');
  return slash == std::string::npos ? "" : rest.substr(0, slash);
}

Result<std::vector<std::string>> ListClusterNames(const AwsClient& ecs) {
  std::vector<std::string> names;
  std::string token;
  do {
    Json in = {{"maxResults", 100}};
    if (!token.empty()) {
      in["nextToken"] = token;
    }
    auto out = ecs.Call(Service::kEcs, "ListClusters", in);
    if (!out.ok()) {
      return out.error();
    }
    for (const auto& a : out->value("clusterArns", Json::array())) {
      names.push_back(LastSegment(a.get<std::string>()));
    }
    token = out->value("nextToken", "");
  } while (!token.empty());
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<Json>> DescribeClusterTasks(const AwsClient& ecs, const std::string& cluster,
                                               bool include_stopped) {
  auto running = ListTaskArns(ecs, cluster, "RUNNING");
  if (!running.ok()) {
    return running.error();
  }
  std::vector<std::string> arns = std::move(*running);
  // Tasks asked to stop still run until they are STOPPED, so they are listed too.
  auto stopping = ListTaskArns(ecs, cluster, "STOPPED");
  if (!stopping.ok()) {
    return stopping.error();
  }
  arns.insert(arns.end(), stopping->begin(), stopping->end());
  auto tasks = Describe(ecs, cluster, arns);
  if (!tasks.ok()) {
    return tasks.error();
  }
  if (!include_stopped) {
    std::erase_if(*tasks, [](const Json& t) { return t.value("lastStatus", "") == "STOPPED"; });
  }
  return tasks;
}

Result<std::vector<Json>> DescribeAllTasks(const AwsClient& ecs, const std::string& cluster,
                                           bool include_stopped) {
  std::vector<std::string> clusters;
  if (!cluster.empty()) {
    clusters.push_back(cluster);
  } else {
    auto names = ListClusterNames(ecs);
    if (!names.ok()) {
      return names.error();
    }
    clusters = std::move(*names);
  }
  std::vector<Json> all;
  for (const auto& c : clusters) {
    auto tasks = DescribeClusterTasks(ecs, c, include_stopped);
    if (!tasks.ok()) {
      return tasks.error();
    }
    for (auto& t : *tasks) {
      all.push_back(std::move(t));
    }
  }
  return all;
}

Result<Json> FindTask(const AwsClient& ecs, const std::string& task, const std::string& cluster) {
  std::vector<std::string> clusters;
  std::string from_arn = ClusterOfTaskArn(task);
  if (!from_arn.empty()) {
    clusters.push_back(from_arn);
  } else if (!cluster.empty()) {
    clusters.push_back(cluster);
  } else {
    auto names = ListClusterNames(ecs);
    if (!names.ok()) {
      return names.error();
    }
    clusters = std::move(*names);
  }

  // An exact id or ARN first.
  for (const auto& c : clusters) {
    auto out = ecs.Call(Service::kEcs, "DescribeTasks",
                        Json{{"cluster", c}, {"tasks", Json::array({task})}});
    if (!out.ok()) {
      if (out.error().code == "ClusterNotFoundException" && from_arn.empty() && cluster.empty()) {
        continue;
      }
      return out.error();
    }
    if (!(*out)["tasks"].empty()) {
      return (*out)["tasks"][0];
    }
  }

  // Then a unique prefix of a task id, as docker accepts for containers.
  std::vector<Json> matches;
  if (from_arn.empty() && !task.empty() && task.size() < 32) {
    for (const auto& c : clusters) {
      auto tasks = DescribeClusterTasks(ecs, c, true);
      if (!tasks.ok()) {
        return tasks.error();
      }
      for (auto& t : *tasks) {
        if (LastSegment(t.value("taskArn", "")).rfind(task, 0) == 0) {
          matches.push_back(std::move(t));
        }
      }
    }
  }
  if (matches.size() == 1) {
    return matches[0];
  }
  if (matches.size() > 1) {
    return LocalError("task id prefix '" + task + "' matches " + std::to_string(matches.size()) +
                      " tasks; give more of the id");
  }
  std::string where = clusters.size() == 1 ? "cluster " + clusters[0] : "any cluster";
  return LocalError("no such task: " + task + " (looked in " + where + ")");
}

}  // namespace berth::cli
