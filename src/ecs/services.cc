// SPDX-License-Identifier: Apache-2.0
//
// Services: CreateService, UpdateService, DeleteService, DescribeServices,
// ListServices, ListServicesByNamespace, and the service document rules the
// controller shares.
#include "ecs/services.h"

#include <openssl/rand.h>

#include <cmath>
#include <regex>

#include <spdlog/spdlog.h>

#include "common/ids.h"
#include "common/paging.h"
#include "common/time_util.h"
#include "ecs/ecs_api.h"

namespace berth::ecs {

// ---------------------------------------------------------------------------
// Shared rules

std::string ServiceKey(const std::string& cluster, const std::string& name) {
  return kServicesPrefix + cluster + "/" + name;
}

std::string ClusterServicesPrefix(const std::string& cluster) {
  return kServicesPrefix + cluster + "/";
}

std::string NewDeploymentId() {
  // 19 digits with a non-zero first one, like AWS's.
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return "ecs-svc/" + std::to_string(1000000000000000000ULL + NowEpochMillis());
  }
  uint64_t n = 0;
  for (unsigned char b : bytes) {
    n = (n << 8) | b;
  }
  return "ecs-svc/" + std::to_string(1000000000000000000ULL + n % 8000000000000000000ULL);
}

int MaxTasksDuringDeployment(int desired, int maximum_percent) {
  return static_cast<int>((static_cast<int64_t>(desired) * maximum_percent) / 100);
}

int MinHealthyTasks(int desired, int minimum_healthy_percent) {
  int64_t product = static_cast<int64_t>(desired) * minimum_healthy_percent;
  return static_cast<int>((product + 99) / 100);
}

int CircuitBreakerThreshold(int desired) {
  int half = (desired + 1) / 2;
  return std::clamp(half, 3, 200);
}

Json PublicServiceView(const Json& service) {
  Json out = Json::object();
  for (auto it = service.begin(); it != service.end(); ++it) {
    if (!it.key().empty() && it.key()[0] == '_') {
      continue;
    }
    out[it.key()] = it.value();
  }
  if (out.contains("deployments") && out["deployments"].is_array()) {
    Json deployments = Json::array();
    for (const auto& d : out["deployments"]) {
      deployments.push_back(PublicServiceView(d));
    }
    out["deployments"] = deployments;
  }
  return out;
}

void AddServiceEvent(Json& service, const std::string& message, double now) {
  Json events = Json::array();
  events.push_back({{"id", NewUuid()}, {"createdAt", now}, {"message", message}});
  for (const auto& e : service.value("events", Json::array())) {
    if (events.size() >= 100) {
      break;
    }
    events.push_back(e);
  }
  service["events"] = events;
}

Result<ClusterServiceCounts> CountClusterServices(store::Store& store,
                                                  const std::string& cluster) {
  ClusterServiceCounts counts;
  std::string prefix = ClusterServicesPrefix(cluster);
  std::string cursor;
  while (true) {
    auto page = store.List(prefix, cursor, 500);
    if (!page.ok()) {
      return page.error();
    }
    for (const auto& e : *page) {
      cursor = e.key;
      auto doc = Json::parse(e.value, nullptr, false);
      std::string status = doc.is_object() ? doc.value("status", "") : "";
      if (status == "ACTIVE") {
        ++counts.active;
      } else if (status == "DRAINING") {
        ++counts.draining;
      }
    }
    if (page->size() < 500) {
      break;
    }
  }
  return counts;
}

// ---------------------------------------------------------------------------
// The API

namespace {

const std::string kClusterPrefix = "ecs/clusters/";

Error InvalidParameter(const std::string& message) {
  return ClientError("InvalidParameterException", message);
}

Error ServiceNotFound() { return ClientError("ServiceNotFoundException", "Service not found."); }

Error ServiceNotActive() {
  return ClientError("ServiceNotActiveException", "Service was not ACTIVE.");
}

bool ValidName(const std::string& name) {
  static const std::regex kName("^[A-Za-z0-9_-]{1,255}$");
  return std::regex_match(name, kName);
}

// "name", "service/name", "service/cluster/name" or a service ARN to
// (cluster from the ARN or "", name).
std::pair<std::string, std::string> ParseServiceRef(const std::string& ref) {
  std::string rest = ref;
  if (ref.rfind("arn:", 0) == 0) {
    size_t at = ref.find(":service/");
    if (at == std::string::npos) {
      return {"", ref};
    }
    rest = ref.substr(at + 1);
  }
  if (rest.rfind("service/", 0) != 0) {
    return {"", rest};
  }
  rest = rest.substr(8);
  size_t slash = rest.find('/');
  if (slash == std::string::npos) {
    return {"", rest};
  }
  return {rest.substr(0, slash), rest.substr(slash + 1)};
}

std::string ResolvedPlatformVersion(const std::string& requested) {
  return requested.empty() || requested == "LATEST" ? "1.4.0" : requested;
}

bool DefinesContainerPort(const Json& task_definition, const std::string& container, int port) {
  for (const auto& c : task_definition.value("containerDefinitions", Json::array())) {
    if (c.value("name", "") != container) {
      continue;
    }
    for (const auto& m : c.value("portMappings", Json::array())) {
      if (m.value("containerPort", -1) == port) {
        return true;
      }
    }
  }
  return false;
}

bool HasContainer(const Json& task_definition, const std::string& container) {
  for (const auto& c : task_definition.value("containerDefinitions", Json::array())) {
    if (c.value("name", "") == container) {
      return true;
    }
  }
  return false;
}

// deploymentConfiguration with the defaults of a REPLICA service filled in.
Result<Json> NormalizeDeploymentConfiguration(const Json& given, const Json& base) {
  Json config = base.is_object() ? base : Json::object();
  if (!config.contains("maximumPercent")) {
    config["maximumPercent"] = 200;
  }
  if (!config.contains("minimumHealthyPercent")) {
    config["minimumHealthyPercent"] = 100;
  }
  if (!config.contains("deploymentCircuitBreaker")) {
    config["deploymentCircuitBreaker"] = {{"enable", false}, {"rollback", false}};
  }
  if (given.is_object()) {
    for (auto it = given.begin(); it != given.end(); ++it) {
      config[it.key()] = it.value();
    }
  }
  int max = config["maximumPercent"].get<int>();
  int min = config["minimumHealthyPercent"].get<int>();
  if (min < 0 || min > 100) {
    return InvalidParameter("minimumHealthyPercent must be between 0 and 100.");
  }
  if (max < 100) {
    return InvalidParameter(
        "maximumPercent must be at least 100 for a service using the REPLICA scheduling "
        "strategy.");
  }
  return config;
}

// A capacity provider strategy as AWS echoes it: weight and base filled in.
Json NormalizeStrategy(const Json& strategy) {
  Json out = Json::array();
  for (const auto& item : strategy) {
    out.push_back({{"capacityProvider", item.value("capacityProvider", "")},
                   {"weight", item.value("weight", 0)},
                   {"base", item.value("base", 0)}});
  }
  return out;
}

}  // namespace

std::string EcsApi::ServiceArn(const std::string& cluster, const std::string& name) const {
  return "arn:aws:ecs:" + account_.region + ":" + account_.account_id + ":service/" + cluster +
         "/" + name;
}

void EcsApi::SetTargetGroupValidator(TargetGroupValidator validator) {
  target_group_validator_ = std::move(validator);
}

void EcsApi::AddServiceOperations(api::JsonService& svc) {
  Bind(svc, "CreateService", &EcsApi::CreateService);
  Bind(svc, "UpdateService", &EcsApi::UpdateService);
  Bind(svc, "DeleteService", &EcsApi::DeleteService);
  Bind(svc, "DescribeServices", &EcsApi::DescribeServices);
  Bind(svc, "ListServices", &EcsApi::ListServices);
  Bind(svc, "ListServicesByNamespace", &EcsApi::ListServicesByNamespace);
  AddTaggableType("service", [](const EcsArnParts& arn) -> Result<std::string> {
    size_t slash = arn.resource_id.find('/');
    if (slash == std::string::npos) {
      return InvalidParameter("Long arn format must be used for tagging operations");
    }
    return ServiceKey(arn.resource_id.substr(0, slash), arn.resource_id.substr(slash + 1));
  });
}

Result<store::Entry> EcsApi::ActiveClusterEntry(const std::string& cluster) {
  auto entry = store_.Get(kClusterPrefix + cluster);
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return ClientError("ClusterNotFoundException", "Cluster not found.");
  }
  Json doc = Json::parse((*entry)->value, nullptr, false);
  if (!doc.is_object() || doc.value("status", "") != "ACTIVE") {
    return ClientError("ClusterNotFoundException", "Cluster not found.");
  }
  return **entry;
}

// The launch settings, placement, networking and load balancers of a service
// (as it will be stored) checked against its task definition and cluster, in
// the order AWS checks them.
Status EcsApi::ValidateServiceSettings(const Json& service, const Json& task_definition,
                                       const Json& cluster) {
  bool fargate = false;
  if (service.contains("capacityProviderStrategy")) {
    const Json& strategy = service["capacityProviderStrategy"];
    if (strategy.empty()) {
      return InvalidParameter("capacityProviderStrategy can not be empty.");
    }
    Json attached = cluster.value("capacityProviders", Json::array());
    for (const auto& item : strategy) {
      std::string provider = item.value("capacityProvider", "");
      if (std::find(attached.begin(), attached.end(), provider) == attached.end()) {
        return InvalidParameter(
            "The specified capacity provider strategy cannot contain a capacity provider that "
            "is not associated with the cluster. Associate the capacity provider with the "
            "cluster or specify a valid capacity provider and try again.");
      }
      if (provider == "FARGATE" || provider == "FARGATE_SPOT") {
        fargate = true;
      }
      int weight = item.value("weight", 0);
      int base = item.value("base", 0);
      if (weight < 0 || weight > 1000 || base < 0 || base > 100000) {
        return InvalidParameter("The capacity provider strategy weight or base is out of range.");
      }
    }
  } else {
    fargate = service.value("launchType", "") == "FARGATE";
  }

  if (fargate) {
    Json compat = task_definition.value("compatibilities", Json::array());
    if (std::find(compat.begin(), compat.end(), "FARGATE") == compat.end()) {
      return InvalidParameter("Task definition does not support launch_type FARGATE.");
    }
    if (!service.value("placementConstraints", Json::array()).empty()) {
      return InvalidParameter("Placement constraints are not supported with FARGATE launch type.");
    }
    if (!service.value("placementStrategy", Json::array()).empty()) {
      return InvalidParameter("Placement strategies are not supported with FARGATE launch type.");
    }
    if (service.value("schedulingStrategy", "REPLICA") == "DAEMON") {
      return InvalidParameter("The DAEMON scheduling strategy is not supported with FARGATE.");
    }
  }

  BERTH_TRY(CheckNetworkConfiguration(task_definition,
                                      service.value("networkConfiguration", Json::object())));
  if (!fargate && service.contains("networkConfiguration") &&
      service["networkConfiguration"]["awsvpcConfiguration"].value("assignPublicIp", "") ==
          "ENABLED") {
    return InvalidParameter("Assign public IP is not supported for this launch type.");
  }

  const Json load_balancers = service.value("loadBalancers", Json::array());
  if (load_balancers.size() > 5) {
    return InvalidParameter("loadBalancers can have at most 5 items.");
  }
  for (const auto& lb : load_balancers) {
    std::string container = lb.value("containerName", "");
    if (!lb.contains("targetGroupArn") && !lb.contains("loadBalancerName")) {
      return InvalidParameter("Either a target group or a load balancer name must be specified.");
    }
    if (container.empty() || !lb.contains("containerPort")) {
      return InvalidParameter(
          "containerName and containerPort must be specified for a load balancer.");
    }
    if (!HasContainer(task_definition, container)) {
      return InvalidParameter("The container " + container +
                              " does not exist in the task definition.");
    }
    int port = lb["containerPort"].get<int>();
    if (!DefinesContainerPort(task_definition, container, port)) {
      return InvalidParameter("The container " + container + " did not have a container port " +
                              std::to_string(port) + " defined.");
    }
  }
  if (!load_balancers.empty() && target_group_validator_) {
    BERTH_TRY(target_group_validator_(load_balancers, task_definition));
  }
  return Ok();
}

Json EcsApi::NewDeployment(const Json& service, const Json& task_definition, double now) {
  std::string id = NewDeploymentId();
  Json d = {
      {"id", id},
      {"status", "PRIMARY"},
      {"taskDefinition", task_definition.value("taskDefinitionArn", "")},
      {"desiredCount", service.value("desiredCount", 0)},
      {"pendingCount", 0},
      {"runningCount", 0},
      {"failedTasks", 0},
      {"createdAt", now},
      {"updatedAt", now},
      {"platformVersion", ResolvedPlatformVersion(service.value("platformVersion", "LATEST"))},
      {"platformFamily", "Linux"},
      {"rolloutState", "IN_PROGRESS"},
      {"rolloutStateReason", "ECS deployment " + id + " in progress."},
      {"_taskDefinition", task_definition},
  };
  if (service.contains("capacityProviderStrategy")) {
    d["capacityProviderStrategy"] = service["capacityProviderStrategy"];
  } else {
    d["launchType"] = service.value("launchType", "EC2");
  }
  if (service.contains("networkConfiguration")) {
    d["networkConfiguration"] = service["networkConfiguration"];
  }
  return d;
}

Result<Json> EcsApi::ResolveServiceTaskDefinition(const std::string& ref) {
  auto doc = FindTaskDefinitionDoc(ref);
  if (!doc.ok()) {
    return doc.error();
  }
  if ((*doc)["taskDefinition"].value("status", "") != "ACTIVE") {
    return InvalidParameter("TaskDefinition is inactive");
  }
  Json td = (*doc)["taskDefinition"];
  // Kept with the definition so tasks can carry them (propagateTags
  // TASK_DEFINITION) without another lookup.
  td["_tags"] = doc->value("tags", Json::array());
  return td;
}

Result<Json> EcsApi::CreateService(const Json& in, const api::CallContext& ctx) {
  std::string cluster = ClusterNameFromRef(in.value("cluster", ""));
  auto cluster_entry = ActiveClusterEntry(cluster);
  if (!cluster_entry.ok()) {
    return cluster_entry.error();
  }
  Json cluster_doc = Json::parse(cluster_entry->value);

  std::string name = in.value("serviceName", "");
  if (!ValidName(name)) {
    return InvalidParameter(
        "Service name can only contain up to 255 letters (uppercase and lowercase), numbers, "
        "underscores, and hyphens.");
  }
  if (in.value("clientToken", "").size() > 36) {
    return InvalidParameter("clientToken can be at most 36 characters long.");
  }
  std::string controller =
      in.value("deploymentController", Json::object()).value("type", "ECS");
  if (controller != "ECS") {
    // LIMITATION: only the rolling update (ECS) deployment controller exists in
    // berth; CODE_DEPLOY and EXTERNAL services are refused.
    return InvalidParameter("The deployment controller type " + controller +
                            " is not supported.");
  }
  std::string scheduling = in.value("schedulingStrategy", "REPLICA");
  int desired = in.value("desiredCount", 0);
  if (desired < 0) {
    return InvalidParameter("desiredCount can not be negative.");
  }
  if (in.contains("launchType") && in.contains("capacityProviderStrategy")) {
    return InvalidParameter(
        "Specifying both a launch type and capacity provider strategy is not supported. "
        "Remove one and try again.");
  }
  std::string platform = in.value("platformVersion", "LATEST");
  if (platform != "LATEST" && platform != "1.4.0" && platform != "1.3.0") {
    return ClientError("PlatformUnknownException",
                       "The specified platform does not exist.");
  }
  if (!in.contains("taskDefinition")) {
    return InvalidParameter("TaskDefinition can not be blank.");
  }
  auto task_definition = ResolveServiceTaskDefinition(in["taskDefinition"].get<std::string>());
  if (!task_definition.ok()) {
    return task_definition.error();
  }
  auto config = NormalizeDeploymentConfiguration(
      in.value("deploymentConfiguration", Json::object()), Json::object());
  if (!config.ok()) {
    return config.error();
  }
  Json tags = in.value("tags", Json::array());
  BERTH_TRY(CheckTags(tags));

  double now = NowEpochSeconds();
  Json service = {
      {"serviceArn", ServiceArn(cluster, name)},
      {"serviceName", name},
      {"clusterArn", ClusterArn(cluster)},
      {"loadBalancers", in.value("loadBalancers", Json::array())},
      {"serviceRegistries", in.value("serviceRegistries", Json::array())},
      {"status", "ACTIVE"},
      {"desiredCount", desired},
      {"runningCount", 0},
      {"pendingCount", 0},
      {"platformVersion", platform},
      {"platformFamily", "Linux"},
      {"taskDefinition", task_definition->value("taskDefinitionArn", "")},
      {"deploymentConfiguration", *config},
      {"roleArn", in.value("role", "arn:aws:iam::" + account_.account_id +
                                       ":role/aws-service-role/ecs.amazonaws.com/"
                                       "AWSServiceRoleForECS")},
      {"events", Json::array()},
      {"createdAt", now},
      {"placementConstraints", in.value("placementConstraints", Json::array())},
      {"placementStrategy", in.value("placementStrategy", Json::array())},
      {"healthCheckGracePeriodSeconds", in.value("healthCheckGracePeriodSeconds", 0)},
      {"schedulingStrategy", scheduling},
      {"deploymentController", {{"type", "ECS"}}},
      {"tags", tags},
      {"createdBy", "arn:aws:iam::" + account_.account_id + ":root"},
      {"enableECSManagedTags", in.value("enableECSManagedTags", false)},
      {"propagateTags", in.value("propagateTags", "NONE")},
      {"enableExecuteCommand", in.value("enableExecuteCommand", false)},
  };
  if (in.contains("capacityProviderStrategy")) {
    service["capacityProviderStrategy"] = NormalizeStrategy(in["capacityProviderStrategy"]);
  } else if (in.contains("launchType")) {
    service["launchType"] = in["launchType"];
  } else if (!cluster_doc.value("defaultCapacityProviderStrategy", Json::array()).empty()) {
    service["capacityProviderStrategy"] =
        NormalizeStrategy(cluster_doc["defaultCapacityProviderStrategy"]);
  } else {
    service["launchType"] = "EC2";
  }
  if (in.contains("networkConfiguration")) {
    Json network = in["networkConfiguration"];
    if (network.contains("awsvpcConfiguration") &&
        !network["awsvpcConfiguration"].contains("assignPublicIp")) {
      network["awsvpcConfiguration"]["assignPublicIp"] = "DISABLED";
    }
    service["networkConfiguration"] = network;
  }
  if (in.contains("serviceConnectConfiguration")) {
    service["_serviceConnectConfiguration"] = in["serviceConnectConfiguration"];
  }
  BERTH_TRY(ValidateServiceSettings(service, *task_definition, cluster_doc));

  Json request = in;
  request.erase("clientToken");
  service["_createRequest"] = request;
  if (in.contains("clientToken")) {
    service["_clientToken"] = in["clientToken"];
  }
  service["deployments"] = Json::array({NewDeployment(service, *task_definition, now)});

  // Written together with an unchanged copy of the cluster document: the
  // cluster's revision moves, so a DeleteCluster that counted services before
  // this commit cannot succeed after it.
  std::string key = ServiceKey(cluster, name);
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto current = store_.Get(key);
    if (!current.ok()) {
      return current.error();
    }
    if (*current) {
      Json existing = Json::parse((*current)->value);
      std::string status = existing.value("status", "");
      if (status == "DRAINING") {
        return InvalidParameter("Unable to Start a service that is still Draining.");
      }
      if (status == "ACTIVE") {
        bool same_request = existing.value("_createRequest", Json()) == request;
        bool tokens_agree = !in.contains("clientToken") || !existing.contains("_clientToken") ||
                            existing["_clientToken"] == in["clientToken"];
        if (same_request && tokens_agree) {
          return Json{{"service", PublicServiceView(existing)}};
        }
        return InvalidParameter("Creation of service was not idempotent.");
      }
    }
    auto cluster_now = ActiveClusterEntry(cluster);
    if (!cluster_now.ok()) {
      return cluster_now.error();
    }
    store::Txn txn;
    txn.IfRevision(key, *current ? (*current)->mod_revision : 0);
    txn.IfRevision(cluster_now->key, cluster_now->mod_revision);
    txn.Put(cluster_now->key, cluster_now->value);
    txn.Put(key, service.dump());
    auto committed = store_.Commit(txn);
    if (committed.ok()) {
      spdlog::info("event=service_created service={} cluster={} desired={} deployment={}", name,
                   cluster, desired, service["deployments"][0].value("id", ""));
      Json out = PublicServiceView(service);
      out.erase("tags");
      return Json{{"service", out}};
    }
    if (committed.error().code != store::kConflict) {
      return committed.error();
    }
  }
  return ServerError("CreateService: too many concurrent changes");
}

Result<Json> EcsApi::UpdateService(const Json& in, const api::CallContext& ctx) {
  auto [arn_cluster, name] = ParseServiceRef(in.value("service", ""));
  std::string cluster =
      in.contains("cluster") || arn_cluster.empty() ? ClusterNameFromRef(in.value("cluster", ""))
                                                     : arn_cluster;
  auto cluster_entry = ActiveClusterEntry(cluster);
  if (!cluster_entry.ok()) {
    return cluster_entry.error();
  }
  Json cluster_doc = Json::parse(cluster_entry->value);

  std::optional<Json> new_task_definition;
  if (in.contains("taskDefinition")) {
    auto td = ResolveServiceTaskDefinition(in["taskDefinition"].get<std::string>());
    if (!td.ok()) {
      return td.error();
    }
    new_task_definition = *td;
  }
  if (in.contains("desiredCount") && in["desiredCount"].get<int>() < 0) {
    return InvalidParameter("desiredCount can not be negative.");
  }
  if (in.contains("platformVersion")) {
    std::string platform = in["platformVersion"].get<std::string>();
    if (platform != "LATEST" && platform != "1.4.0" && platform != "1.3.0") {
      return ClientError("PlatformUnknownException",
                         "The specified platform does not exist.");
    }
  }

  Json result;
  auto committed = store::ReadModifyWrite(
      store_, ServiceKey(cluster, name),
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (!cur) {
          return ServiceNotFound();
        }
        Json svc = Json::parse(cur->value);
        if (svc.value("status", "") != "ACTIVE") {
          return ServiceNotActive();
        }
        double now = NowEpochSeconds();
        bool deploy = in.value("forceNewDeployment", false);
        auto changes = [&](const char* member) {
          return in.contains(member) && (!svc.contains(member) || svc[member] != in[member]);
        };

        Json primary;
        for (const auto& d : svc["deployments"]) {
          if (d.value("status", "") == "PRIMARY") {
            primary = d;
          }
        }
        Json task_definition = primary.value("_taskDefinition", Json::object());
        std::string current_arn = svc.value("taskDefinition", "");
        if (new_task_definition &&
            new_task_definition->value("taskDefinitionArn", "") != current_arn) {
          task_definition = *new_task_definition;
          deploy = true;
        }
        if (changes("networkConfiguration")) {
          Json network = in["networkConfiguration"];
          if (network.contains("awsvpcConfiguration") &&
              !network["awsvpcConfiguration"].contains("assignPublicIp")) {
            network["awsvpcConfiguration"]["assignPublicIp"] = "DISABLED";
          }
          deploy = deploy || svc.value("networkConfiguration", Json()) != network;
          svc["networkConfiguration"] = network;
        }
        if (changes("platformVersion")) {
          svc["platformVersion"] = in["platformVersion"];
          deploy = true;
        }
        if (changes("loadBalancers")) {
          svc["loadBalancers"] = in["loadBalancers"];
          deploy = true;
        }
        if (in.contains("capacityProviderStrategy")) {
          Json strategy = NormalizeStrategy(in["capacityProviderStrategy"]);
          if (svc.value("capacityProviderStrategy", Json()) != strategy) {
            deploy = true;
          }
          svc["capacityProviderStrategy"] = strategy;
          svc.erase("launchType");
        }
        for (const char* member : {"placementConstraints", "placementStrategy",
                                   "healthCheckGracePeriodSeconds", "enableExecuteCommand",
                                   "enableECSManagedTags", "propagateTags", "serviceRegistries"}) {
          if (in.contains(member)) {
            svc[member] = in[member];
          }
        }
        if (in.contains("deploymentConfiguration")) {
          auto config = NormalizeDeploymentConfiguration(in["deploymentConfiguration"],
                                                         svc["deploymentConfiguration"]);
          if (!config.ok()) {
            return config.error();
          }
          svc["deploymentConfiguration"] = *config;
        }
        if (in.contains("desiredCount")) {
          int desired = in["desiredCount"].get<int>();
          if (desired != svc.value("desiredCount", 0)) {
            svc["_steady"] = false;
          }
          svc["desiredCount"] = desired;
        }
        BERTH_TRY(ValidateServiceSettings(svc, task_definition, cluster_doc));

        if (deploy) {
          Json deployments = Json::array({NewDeployment(svc, task_definition, now)});
          for (auto d : svc["deployments"]) {
            d["status"] = "ACTIVE";
            d["updatedAt"] = now;
            deployments.push_back(d);
          }
          svc["deployments"] = deployments;
          svc["taskDefinition"] = task_definition.value("taskDefinitionArn", "");
          svc["_steady"] = false;
          svc["_launchFailures"] = 0;
          svc.erase("_backoffUntil");
          svc.erase("_backoffAttempts");
          spdlog::info("event=deployment_created service={} cluster={} deployment={}", name,
                       cluster, deployments[0].value("id", ""));
        } else {
          for (auto& d : svc["deployments"]) {
            if (d.value("status", "") == "PRIMARY" &&
                d.value("desiredCount", 0) != svc.value("desiredCount", 0)) {
              d["desiredCount"] = svc["desiredCount"];
              d["updatedAt"] = now;
            }
          }
        }
        result = svc;
        return std::optional<std::string>(svc.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  Json out = PublicServiceView(result);
  out.erase("tags");
  return Json{{"service", out}};
}

Result<Json> EcsApi::DeleteService(const Json& in, const api::CallContext& ctx) {
  auto [arn_cluster, name] = ParseServiceRef(in.value("service", ""));
  std::string cluster =
      in.contains("cluster") || arn_cluster.empty() ? ClusterNameFromRef(in.value("cluster", ""))
                                                     : arn_cluster;
  auto cluster_entry = ActiveClusterEntry(cluster);
  if (!cluster_entry.ok()) {
    return cluster_entry.error();
  }
  bool force = in.value("force", false);
  Json result;
  auto committed = store::ReadModifyWrite(
      store_, ServiceKey(cluster, name),
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (!cur) {
          return ServiceNotFound();
        }
        Json svc = Json::parse(cur->value);
        if (svc.value("status", "") != "ACTIVE") {
          // Deleting a service that is already going away answers with it.
          result = svc;
          return std::optional<std::string>(cur->value);
        }
        if (svc.value("desiredCount", 0) > 0 && !force) {
          return InvalidParameter("The service cannot be stopped while it is scaled above 0.");
        }
        double now = NowEpochSeconds();
        svc["status"] = "DRAINING";
        svc["desiredCount"] = 0;
        svc["_steady"] = false;
        for (auto& d : svc["deployments"]) {
          if (d.value("status", "") == "PRIMARY") {
            d["desiredCount"] = 0;
            d["updatedAt"] = now;
          }
        }
        result = svc;
        return std::optional<std::string>(svc.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  spdlog::info("event=service_deleted service={} cluster={} force={}", name, cluster, force);
  Json out = PublicServiceView(result);
  out.erase("tags");
  return Json{{"service", out}};
}

Result<Json> EcsApi::DescribeServices(const Json& in, const api::CallContext& ctx) {
  const Json& refs = in["services"];
  if (refs.empty()) {
    return InvalidParameter("services can not be empty.");
  }
  if (refs.size() > 10) {
    return InvalidParameter("service names can have at most 10 items.");
  }
  std::string cluster = ClusterNameFromRef(in.value("cluster", ""));
  if (!in.contains("cluster")) {
    // A service ARN names its cluster; the first one decides, as the
    // cluster parameter would.
    auto [arn_cluster, unused] = ParseServiceRef(refs[0].get<std::string>());
    if (!arn_cluster.empty()) {
      cluster = arn_cluster;
    }
  }
  auto cluster_entry = ActiveClusterEntry(cluster);
  if (!cluster_entry.ok()) {
    return cluster_entry.error();
  }
  bool with_tags = false;
  for (const auto& i : in.value("include", Json::array())) {
    with_tags = with_tags || i == "TAGS";
  }

  Json services = Json::array();
  Json failures = Json::array();
  for (const auto& ref : refs) {
    std::string name = ParseServiceRef(ref.get<std::string>()).second;
    auto entry = store_.Get(ServiceKey(cluster, name));
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      failures.push_back({{"arn", ServiceArn(cluster, name)}, {"reason", "MISSING"}});
      continue;
    }
    Json view = PublicServiceView(Json::parse((*entry)->value));
    if (!with_tags) {
      view.erase("tags");
    }
    services.push_back(std::move(view));
  }
  return Json{{"services", services}, {"failures", failures}};
}

Result<Json> EcsApi::ListServices(const Json& in, const api::CallContext& ctx) {
  std::string cluster = ClusterNameFromRef(in.value("cluster", ""));
  auto cluster_entry = ActiveClusterEntry(cluster);
  if (!cluster_entry.ok()) {
    return cluster_entry.error();
  }
  int max = in.value("maxResults", 10);
  if (max < 1 || max > 100) {
    return InvalidParameter("maxResults must be between 1 and 100.");
  }
  std::string prefix = ClusterServicesPrefix(cluster);
  std::string cursor;
  if (in.contains("nextToken")) {
    auto pos = DecodePageToken(in["nextToken"].get<std::string>());
    if (!pos) {
      return InvalidParameter("Invalid nextToken.");
    }
    cursor = prefix + *pos;
  }
  std::string launch_type = in.value("launchType", "");
  std::string scheduling = in.value("schedulingStrategy", "");

  Json arns = Json::array();
  std::string last;
  bool more = false;
  while (!more) {
    auto page = store_.List(prefix, cursor, 200);
    if (!page.ok()) {
      return page.error();
    }
    for (const auto& e : *page) {
      cursor = e.key;
      Json svc = Json::parse(e.value);
      std::string status = svc.value("status", "");
      if (status != "ACTIVE" && status != "DRAINING") {
        continue;
      }
      if (!launch_type.empty() && svc.value("launchType", "") != launch_type) {
        continue;
      }
      if (!scheduling.empty() && svc.value("schedulingStrategy", "REPLICA") != scheduling) {
        continue;
      }
      if (static_cast<int>(arns.size()) == max) {
        more = true;
        break;
      }
      arns.push_back(svc["serviceArn"]);
      last = e.key.substr(prefix.size());
    }
    if (page->size() < 200) {
      break;
    }
  }
  Json out = {{"serviceArns", arns}};
  if (more) {
    out["nextToken"] = EncodePageToken(last);
  }
  return out;
}

Result<Json> EcsApi::ListServicesByNamespace(const Json& in, const api::CallContext& ctx) {
  // LIMITATION: berth has no Cloud Map; no service belongs to a namespace.
  return Json{{"serviceArns", Json::array()}};
}

}  // namespace berth::ecs
