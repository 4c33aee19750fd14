// SPDX-License-Identifier: Apache-2.0
//
// Tasks: RunTask, StartTask, StopTask, DescribeTasks, ListTasks. The handlers
// apply ECS's request rules and answer with AWS's errors; the task manager
// does the placement and keeps the task documents.
#include <random>

#include "common/paging.h"
#include "ecs/ecs_api.h"
#include "ecs/taskdef.h"

namespace berth::ecs {

namespace {

constexpr int kMaxRunTaskCount = 10;
constexpr size_t kMaxDescribeTasks = 100;
constexpr size_t kMaxStartedBy = 128;

Error InvalidParameter(std::string message) {
  return ClientError("InvalidParameterException", std::move(message));
}

Error NoContainerInstances() {
  return InvalidParameter("No Container Instances were found in your cluster.");
}

bool IsFargateProvider(const std::string& name) {
  return name == "FARGATE" || name == "FARGATE_SPOT";
}

bool ListHas(const Json& list, const std::string& item) {
  if (!list.is_array()) {
    return false;
  }
  for (const auto& i : list) {
    if (i.is_string() && i.get<std::string>() == item) {
      return true;
    }
  }
  return false;
}

// The capacity provider a strategy picks for one task: the provider with a
// base when there is one, else one drawn by weight.
std::string PickProvider(const Json& strategy) {
  std::string best;
  int64_t best_base = 0;
  int64_t total_weight = 0;
  for (const auto& item : strategy) {
    int64_t base = item.value("base", int64_t{0});
    if (base > best_base) {
      best_base = base;
      best = item.value("capacityProvider", "");
    }
    total_weight += item.value("weight", int64_t{0});
  }
  if (!best.empty() || total_weight <= 0) {
    return best.empty() ? strategy.front().value("capacityProvider", "") : best;
  }
  thread_local std::minstd_rand rng(std::random_device{}());
  int64_t pick = std::uniform_int_distribution<int64_t>(0, total_weight - 1)(rng);
  for (const auto& item : strategy) {
    pick -= item.value("weight", int64_t{0});
    if (pick < 0) {
      return item.value("capacityProvider", "");
    }
  }
  return strategy.front().value("capacityProvider", "");
}

// Launch type and capacity provider of RunTask, as ECS decides them.
struct LaunchChoice {
  std::string launch_type = "FARGATE";
  std::string capacity_provider;
};

Result<LaunchChoice> ChooseLaunch(const Json& in, const Json& cluster) {
  bool has_type = in.contains("launchType");
  bool has_strategy = in.contains("capacityProviderStrategy") &&
                      !in["capacityProviderStrategy"].empty();
  if (has_type && has_strategy) {
    return InvalidParameter(
        "Specifying both a launch type and capacity provider strategy is not supported. Remove "
        "one and try again.");
  }
  LaunchChoice choice;
  if (has_type) {
    choice.launch_type = in["launchType"].get<std::string>();
    if (choice.launch_type != "FARGATE") {
      // berth runs Fargate tasks only; there are no container instances.
      return NoContainerInstances();
    }
    return choice;
  }
  Json strategy = has_strategy ? in["capacityProviderStrategy"]
                               : cluster.value("defaultCapacityProviderStrategy", Json::array());
  if (strategy.empty()) {
    // Without either ECS launches on EC2 container instances.
    return NoContainerInstances();
  }
  Json associated = cluster.value("capacityProviders", Json::array());
  for (const auto& item : strategy) {
    std::string name = item.value("capacityProvider", "");
    if (!IsFargateProvider(name) || !ListHas(associated, name)) {
      return InvalidParameter(
          "The specified capacity provider strategy cannot contain a capacity provider that is "
          "not associated with the cluster. Associate the capacity provider with the cluster or "
          "specify a valid capacity provider and try again.");
    }
  }
  choice.capacity_provider = PickProvider(strategy);
  return choice;
}

Result<std::string> PlatformVersion(const Json& in) {
  std::string v = in.value("platformVersion", "LATEST");
  if (v == "LATEST" || v == "1.4.0") {
    return std::string("1.4.0");
  }
  if (v == "1.3.0") {
    return v;
  }
  return ClientError("PlatformUnknownException", "The specified platform does not exist.");
}

Status CheckStartedBy(const Json& in) {
  if (!in.contains("startedBy")) {
    return Ok();
  }
  std::string s = in["startedBy"].get<std::string>();
  if (s.size() > kMaxStartedBy) {
    return InvalidParameter("startedBy must be at most 128 characters.");
  }
  return Ok();
}

bool Wants(const Json& in, const std::string& what) {
  return ListHas(in.value("include", Json::array()), what);
}

}  // namespace

Status EcsApi::CheckNetworkConfiguration(const Json& task_definition, const Json& network) {
  bool awsvpc = task_definition.value("networkMode", "") == "awsvpc";
  bool given = network.is_object() && network.contains("awsvpcConfiguration");
  if (!awsvpc) {
    if (given) {
      return InvalidParameter(
          "Network Configuration is not valid for the given networkMode of this task "
          "definition.");
    }
    return Ok();
  }
  if (!given) {
    return InvalidParameter(
        "Network Configuration must be provided when networkMode 'awsvpc' is specified.");
  }
  const Json& vpc = network["awsvpcConfiguration"];
  Json subnets = vpc.value("subnets", Json::array());
  if (subnets.empty()) {
    return InvalidParameter("subnets can not be empty.");
  }
  if (subnets.size() > 16) {
    return InvalidParameter("subnets can have at most 16 items.");
  }
  if (vpc.value("securityGroups", Json::array()).size() > 5) {
    return InvalidParameter("securityGroups can have at most 5 items.");
  }
  std::string assign = vpc.value("assignPublicIp", "DISABLED");
  if (assign != "ENABLED" && assign != "DISABLED") {
    return InvalidParameter("assignPublicIp must be ENABLED or DISABLED.");
  }
  return Ok();
}

void EcsApi::AddTaskOperations(api::JsonService& svc) {
  Bind(svc, "RunTask", &EcsApi::RunTask);
  Bind(svc, "StartTask", &EcsApi::StartTask);
  Bind(svc, "StopTask", &EcsApi::StopTask);
  Bind(svc, "DescribeTasks", &EcsApi::DescribeTasks);
  Bind(svc, "ListTasks", &EcsApi::ListTasks);
  AddTaggableType("task", [](const EcsArnParts& arn) -> Result<std::string> {
    size_t slash = arn.resource_id.rfind('/');
    if (slash == std::string::npos) {
      return InvalidParameter("Long arn format must be used for tagging operations");
    }
    return "ecs/tasks/" + arn.resource_id;
  });
}

Result<Json> EcsApi::RunTask(const Json& in, const api::CallContext& ctx) {
  const std::string cluster_name = ClusterNameFromRef(in.value("cluster", ""));
  auto cluster = ActiveCluster(cluster_name);
  if (!cluster.ok()) {
    return cluster.error();
  }
  int count = in.value("count", 1);
  if (count < 1 || count > kMaxRunTaskCount) {
    return InvalidParameter("count must be between 1 and 10.");
  }
  auto td_doc = FindTaskDefinitionDoc(in.value("taskDefinition", ""));
  if (!td_doc.ok()) {
    return td_doc.error();
  }
  const Json& td = (*td_doc)["taskDefinition"];
  if (td.value("status", "") != "ACTIVE") {
    return InvalidParameter("TaskDefinition is inactive");
  }
  auto launch = ChooseLaunch(in, *cluster);
  if (!launch.ok()) {
    return launch.error();
  }
  if (!ListHas(td.value("compatibilities", Json::array()), "FARGATE")) {
    return InvalidParameter("Task definition does not support launch_type FARGATE.");
  }
  auto platform = PlatformVersion(in);
  if (!platform.ok()) {
    return platform.error();
  }
  Json network = in.value("networkConfiguration", Json::object());
  BERTH_TRY(CheckNetworkConfiguration(td, network));
  Json overrides = in.value("overrides", Json::object());
  BERTH_TRY(ValidateContainerOverrides(td, overrides));
  BERTH_TRY(CheckStartedBy(in));

  Json tags = in.value("tags", Json::array());
  BERTH_TRY(CheckTags(tags));
  if (in.value("propagateTags", "NONE") == "TASK_DEFINITION") {
    for (const auto& t : td_doc->value("tags", Json::array())) {
      tags.push_back(t);
    }
  }
  if (in.value("enableECSManagedTags", false)) {
    tags.push_back({{"key", "aws:ecs:clusterName"}, {"value", cluster_name}});
  }

  StartTasksRequest req;
  req.cluster = cluster_name;
  req.task_definition = td;
  req.count = count;
  req.network_configuration = network;
  req.overrides = overrides;
  req.started_by = in.value("startedBy", "");
  req.group = in.value("group", "");
  req.launch_type = launch->launch_type;
  req.capacity_provider = launch->capacity_provider;
  req.platform_version = *platform;
  req.tags = tags;
  req.enable_execute_command = in.value("enableExecuteCommand", false);
  auto started = tasks_->StartTasks(req);
  if (!started.ok()) {
    return started.error();
  }
  Json shown = Json::array();
  for (const auto& t : started->tasks) {
    shown.push_back(StoreTaskManager::PublicView(t, true));
  }
  Json failures = Json::array();
  for (const auto& f : started->failures) {
    failures.push_back(f);
  }
  return Json{{"tasks", shown}, {"failures", failures}};
}

Result<Json> EcsApi::StartTask(const Json& in, const api::CallContext& ctx) {
  const std::string cluster_name = ClusterNameFromRef(in.value("cluster", ""));
  auto cluster = ActiveCluster(cluster_name);
  if (!cluster.ok()) {
    return cluster.error();
  }
  auto td = ResolveTaskDefinition(in.value("taskDefinition", ""));
  if (!td.ok()) {
    return td.error();
  }
  Json instances = in.value("containerInstances", Json::array());
  if (instances.empty() || instances.size() > 10) {
    return InvalidParameter("containerInstances must have between 1 and 10 items.");
  }
  // LIMITATION: berth runs Fargate tasks only and registers no container
  // instances, so every instance StartTask names is reported missing.
  Json failures = Json::array();
  for (const auto& ref : instances) {
    std::string text = ref.get<std::string>();
    std::string arn = text.rfind("arn:", 0) == 0
                          ? text
                          : EcsArn(account_.region, account_.account_id,
                                   "container-instance/" + cluster_name + "/" + text);
    failures.push_back({{"arn", arn}, {"reason", "MISSING"}});
  }
  return Json{{"tasks", Json::array()}, {"failures", failures}};
}

Result<Json> EcsApi::StopTask(const Json& in, const api::CallContext& ctx) {
  auto ref = ParseTaskRef(in.value("task", ""));
  std::string cluster_name = ClusterNameFromRef(in.value("cluster", ""));
  if (ref && !ref->cluster.empty() && !in.contains("cluster")) {
    cluster_name = ref->cluster;
  }
  auto cluster = ActiveCluster(cluster_name);
  if (!cluster.ok()) {
    return cluster.error();
  }
  if (!ref) {
    return InvalidParameter("Task Identifier is invalid");
  }
  if (!ref->cluster.empty() && ref->cluster != cluster_name) {
    return InvalidParameter("The referenced task was not found");
  }
  std::string reason = in.value("reason", "");
  if (reason.size() > 255) {
    return InvalidParameter("reason must be at most 255 characters.");
  }
  auto task = tasks_->StopTask(cluster_name, ref->id, "UserInitiated", reason);
  if (!task.ok()) {
    if (task.error().code == "TaskNotFound") {
      return InvalidParameter("The referenced task was not found");
    }
    return task.error();
  }
  return Json{{"task", StoreTaskManager::PublicView(*task, true)}};
}

Result<Json> EcsApi::DescribeTasks(const Json& in, const api::CallContext& ctx) {
  Json refs = in.value("tasks", Json::array());
  if (refs.size() > kMaxDescribeTasks) {
    return InvalidParameter("taskIds can have at most 100 items.");
  }
  if (refs.empty()) {
    return InvalidParameter("Tasks cannot be empty.");
  }
  const std::string cluster_name = ClusterNameFromRef(in.value("cluster", ""));
  auto cluster = ActiveCluster(cluster_name);
  if (!cluster.ok()) {
    return cluster.error();
  }
  bool include_tags = Wants(in, "TAGS");
  Json tasks = Json::array();
  Json failures = Json::array();
  for (const auto& r : refs) {
    std::string text = r.get<std::string>();
    auto ref = ParseTaskRef(text);
    if (!ref || (!ref->cluster.empty() && ref->cluster != cluster_name)) {
      failures.push_back({{"arn", text}, {"reason", "MISSING"}});
      continue;
    }
    auto task = tasks_->GetTask(cluster_name, ref->id);
    if (!task.ok()) {
      return task.error();
    }
    if (!*task) {
      failures.push_back(
          {{"arn", tasks_->TaskArn(cluster_name, ref->id)}, {"reason", "MISSING"}});
      continue;
    }
    tasks.push_back(StoreTaskManager::PublicView(**task, include_tags));
  }
  return Json{{"tasks", tasks}, {"failures", failures}};
}

Result<Json> EcsApi::ListTasks(const Json& in, const api::CallContext& ctx) {
  const std::string cluster_name = ClusterNameFromRef(in.value("cluster", ""));
  auto cluster = ActiveCluster(cluster_name);
  if (!cluster.ok()) {
    return cluster.error();
  }
  int max = in.value("maxResults", 100);
  if (max < 1 || max > 100) {
    return InvalidParameter("maxResults must be between 1 and 100.");
  }
  std::string after;
  if (in.contains("nextToken")) {
    auto pos = DecodePageToken(in["nextToken"].get<std::string>());
    if (!pos) {
      return InvalidParameter("Invalid nextToken.");
    }
    after = *pos;
  }
  std::string desired = in.value("desiredStatus", "RUNNING");
  if (desired != "RUNNING" && desired != "PENDING" && desired != "STOPPED") {
    return InvalidParameter("desiredStatus must be RUNNING, PENDING or STOPPED.");
  }

  TaskFilter filter;
  filter.cluster = cluster_name;
  filter.desired_status = desired;
  if (in.contains("family")) {
    filter.family = in["family"].get<std::string>();
  }
  if (in.contains("serviceName")) {
    std::string service = in["serviceName"].get<std::string>();
    if (service.rfind("arn:", 0) == 0) {
      service = service.substr(service.rfind('/') + 1);
    }
    // An unknown service is an error, as on AWS; a deleted one still lists
    // the tasks it left.
    auto known = store_.Get(ServiceKey(cluster_name, service));
    if (!known.ok()) {
      return known.error();
    }
    if (!*known) {
      return ClientError("ServiceNotFoundException", "Service not found.");
    }
    filter.service = service;
  }
  if (in.contains("startedBy")) {
    filter.started_by = in["startedBy"].get<std::string>();
  }
  if (in.contains("launchType")) {
    filter.launch_type = in["launchType"].get<std::string>();
  }
  if (in.contains("containerInstance")) {
    // Fargate tasks run on no container instance.
    return Json{{"taskArns", Json::array()}};
  }
  auto page = tasks_->ListTaskIds(filter, after, max);
  if (!page.ok()) {
    return page.error();
  }
  Json arns = Json::array();
  for (const auto& id : page->ids) {
    arns.push_back(tasks_->TaskArn(cluster_name, id));
  }
  Json out = {{"taskArns", arns}};
  if (!page->next_after.empty()) {
    out["nextToken"] = EncodePageToken(page->next_after);
  }
  return out;
}

}  // namespace berth::ecs
