// Clusters: CreateCluster, DescribeClusters, ListClusters, DeleteCluster,
// UpdateCluster, UpdateClusterSettings and PutClusterCapacityProviders.
#include <algorithm>
#include <regex>
#include <set>

#include "common/paging.h"
#include "common/time_util.h"
#include "ecs/ecs_api.h"

namespace berth::ecs {

namespace {

const std::string kClusterPrefix = "ecs/clusters/";

Error ClusterNotFound() { return ClientError("ClusterNotFoundException", "Cluster not found."); }

bool ValidName(const std::string& name) {
  static const std::regex kName("^[A-Za-z0-9_-]{1,255}$");
  return std::regex_match(name, kName);
}

Error EnumError(const std::string& value, const std::string& path, const std::string& allowed) {
  return ClientError("InvalidParameterException",
                     "1 validation error detected: Value '" + value + "' at '" + path +
                         "' failed to satisfy constraint: Member must satisfy enum value set: [" +
                         allowed + "]");
}

// The capacity providers a cluster can hold: Fargate's two built-in ones
// (berth has no Auto Scaling group providers).
bool KnownCapacityProvider(const std::string& name) {
  return name == "FARGATE" || name == "FARGATE_SPOT";
}

Status CheckCapacityProviders(const Json& providers) {
  std::set<std::string> seen;
  for (const auto& p : providers) {
    std::string name = p.get<std::string>();
    if (name.rfind("arn:", 0) == 0) {
      name = name.substr(name.rfind('/') + 1);
    }
    if (!KnownCapacityProvider(name)) {
      return ClientError("InvalidParameterException",
                         "The specified capacity provider does not exist. Specify a valid name or "
                         "ARN and try again.");
    }
    if (!seen.insert(name).second) {
      return ClientError("InvalidParameterException",
                         "The specified capacity providers contain duplicates. Remove the "
                         "duplicate capacity providers and try again.");
    }
  }
  return Ok();
}

// A default capacity provider strategy checked against the providers the
// cluster will hold, and echoed as AWS stores it (weight and base filled in).
Result<Json> CheckDefaultStrategy(const Json& strategy, const Json& providers) {
  Json out = Json::array();
  int with_base = 0;
  std::set<std::string> seen;
  for (const auto& item : strategy) {
    std::string name = item.value("capacityProvider", "");
    if (std::find(providers.begin(), providers.end(), name) == providers.end()) {
      return ClientError(
          "InvalidParameterException",
          "The specified capacity provider strategy cannot contain a capacity provider that is "
          "not associated with the cluster. Associate the capacity provider with the cluster or "
          "specify a valid capacity provider and try again.");
    }
    if (!seen.insert(name).second) {
      return ClientError("InvalidParameterException",
                         "The capacity provider strategy cannot contain duplicate capacity "
                         "providers.");
    }
    int weight = item.value("weight", 0);
    int base = item.value("base", 0);
    if (weight < 0 || weight > 1000 || base < 0 || base > 100000) {
      return ClientError("InvalidParameterException",
                         "The capacity provider strategy weight or base is out of range.");
    }
    if (base > 0) {
      ++with_base;
    }
    out.push_back({{"capacityProvider", name}, {"weight", weight}, {"base", base}});
  }
  if (with_base > 1) {
    return ClientError("InvalidParameterException",
                       "Only one capacity provider in a capacity provider strategy can have a "
                       "base defined.");
  }
  return out;
}

// Cluster settings (containerInsights only) merged into the stored list:
// a setting given replaces the one of the same name.
Result<Json> MergeSettings(Json current, const Json& settings) {
  for (size_t i = 0; i < settings.size(); ++i) {
    const Json& s = settings[i];
    std::string at = "settings." + std::to_string(i + 1) + ".member";
    std::string name = s.value("name", "");
    if (name != "containerInsights") {
      return EnumError(name, at + ".name", "containerInsights");
    }
    std::string value = s.value("value", "");
    if (value != "enabled" && value != "disabled" && value != "enhanced") {
      return ClientError("InvalidParameterException",
                         "The value '" + value +
                             "' is not valid for the containerInsights setting. Valid values "
                             "are enabled, enhanced and disabled.");
    }
    bool replaced = false;
    for (auto& c : current) {
      if (c.value("name", "") == name) {
        c["value"] = value;
        replaced = true;
      }
    }
    if (!replaced) {
      current.push_back({{"name", name}, {"value", value}});
    }
  }
  return current;
}

Status CheckConfiguration(const Json& configuration) {
  if (!configuration.contains("executeCommandConfiguration")) {
    return Ok();
  }
  const Json& exec = configuration["executeCommandConfiguration"];
  std::string logging = exec.value("logging", "DEFAULT");
  if (logging != "NONE" && logging != "DEFAULT" && logging != "OVERRIDE") {
    return EnumError(logging, "configuration.executeCommandConfiguration.logging",
                     "NONE, DEFAULT, OVERRIDE");
  }
  if (logging == "OVERRIDE" && !exec.contains("logConfiguration")) {
    return ClientError("InvalidParameterException",
                       "The logConfiguration is required when logging is set to OVERRIDE.");
  }
  if (logging != "OVERRIDE" && exec.contains("logConfiguration")) {
    return ClientError("InvalidParameterException",
                       "The logConfiguration can only be specified when logging is set to "
                       "OVERRIDE.");
  }
  return Ok();
}

}  // namespace

EcsApi::EcsApi(store::Store& store, api::AccountInfo account)
    : EcsApi(store, account, TaskManagerOptions()) {}

EcsApi::EcsApi(store::Store& store, api::AccountInfo account, TaskManagerOptions task_options)
    : store_(store), account_(std::move(account)) {
  task_options.region = account_.region;
  task_options.account_id = account_.account_id;
  tasks_ = std::make_unique<StoreTaskManager>(store_, std::move(task_options));
  AddTaggableType("cluster", [this](const EcsArnParts& arn) -> Result<std::string> {
    auto cluster = ActiveCluster(arn.resource_id);
    if (!cluster.ok()) {
      return cluster.error();
    }
    return kClusterPrefix + arn.resource_id;
  });
}

EcsApi::~EcsApi() {
  if (tasks_) {
    tasks_->Shutdown();
  }
}

Result<Json> EcsApi::ActiveCluster(const std::string& name) {
  auto entry = store_.Get(kClusterPrefix + name);
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return ClusterNotFound();
  }
  Json c = Json::parse((*entry)->value);
  if (c.value("status", "") != "ACTIVE") {
    return ClusterNotFound();
  }
  return c;
}

std::string EcsApi::ClusterNameFromRef(const std::string& ref) {
  if (ref.empty()) {
    return "default";
  }
  if (ref.rfind("arn:", 0) == 0) {
    size_t slash = ref.find(":cluster/");
    if (slash != std::string::npos) {
      return ref.substr(slash + 9);
    }
  }
  return ref;
}

std::string EcsApi::ClusterArn(const std::string& name) const {
  return "arn:aws:ecs:" + account_.region + ":" + account_.account_id + ":cluster/" + name;
}

std::shared_ptr<api::JsonService> EcsApi::MakeService() {
  auto svc = std::make_shared<api::JsonService>("AmazonEC2ContainerServiceV20141113", "ecs");
  Bind(*svc, "CreateCluster", &EcsApi::CreateCluster);
  Bind(*svc, "DescribeClusters", &EcsApi::DescribeClusters);
  Bind(*svc, "ListClusters", &EcsApi::ListClusters);
  Bind(*svc, "DeleteCluster", &EcsApi::DeleteCluster);
  Bind(*svc, "UpdateCluster", &EcsApi::UpdateCluster);
  Bind(*svc, "UpdateClusterSettings", &EcsApi::UpdateClusterSettings);
  Bind(*svc, "PutClusterCapacityProviders", &EcsApi::PutClusterCapacityProviders);
  AddTaskDefinitionOperations(*svc);
  AddTaskOperations(*svc);
  AddTagOperations(*svc);
  AddServiceOperations(*svc);
  return svc;
}

Result<Json> EcsApi::CreateCluster(const Json& in, const api::CallContext& ctx) {
  std::string name = in.value("clusterName", "default");
  if (!ValidName(name)) {
    return ClientError("InvalidParameterException",
                       "Cluster name can only contain up to 255 letters (uppercase and "
                       "lowercase), numbers, underscores, and hyphens.");
  }
  Json tags = in.value("tags", Json::array());
  BERTH_TRY(CheckTags(tags));
  auto settings = MergeSettings(Json::array({{{"name", "containerInsights"}, {"value", "disabled"}}}),
                                in.value("settings", Json::array()));
  if (!settings.ok()) {
    return settings.error();
  }
  Json providers = in.value("capacityProviders", Json::array());
  BERTH_TRY(CheckCapacityProviders(providers));
  auto strategy = CheckDefaultStrategy(in.value("defaultCapacityProviderStrategy", Json::array()),
                                       providers);
  if (!strategy.ok()) {
    return strategy.error();
  }
  if (in.contains("configuration")) {
    BERTH_TRY(CheckConfiguration(in["configuration"]));
  }
  Json cluster = {
      {"clusterArn", ClusterArn(name)},
      {"clusterName", name},
      {"status", "ACTIVE"},
      {"registeredContainerInstancesCount", 0},
      {"runningTasksCount", 0},
      {"pendingTasksCount", 0},
      {"activeServicesCount", 0},
      {"statistics", Json::array()},
      {"tags", tags},
      {"settings", *settings},
      {"capacityProviders", providers},
      {"defaultCapacityProviderStrategy", *strategy},
      {"createdAt", NowEpochSeconds()},
  };
  if (in.contains("configuration")) {
    cluster["configuration"] = in["configuration"];
  }
  Json result;
  auto committed = store::ReadModifyWrite(
      store_, kClusterPrefix + name,
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (cur) {
          Json existing = Json::parse(cur->value);
          if (existing.value("status", "") == "ACTIVE") {
            // CreateCluster of an existing active cluster answers with it.
            result = existing;
            return std::optional<std::string>(cur->value);
          }
        }
        result = cluster;
        return std::optional<std::string>(cluster.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  result.erase("createdAt");
  auto counts = tasks_->CountTasks(name);
  if (!counts.ok()) {
    return counts.error();
  }
  result["runningTasksCount"] = counts->running;
  result["pendingTasksCount"] = counts->pending;
  return Json{{"cluster", result}};
}

Result<Json> EcsApi::DescribeClusters(const Json& in, const api::CallContext& ctx) {
  Json refs = in.value("clusters", Json::array({"default"}));
  if (refs.size() > 100) {
    return ClientError("InvalidParameterException", "clusters can have at most 100 items.");
  }
  Json include = in.value("include", Json::array());
  auto wants = [&](const std::string& what) {
    for (const auto& i : include) {
      if (i == what) return true;
    }
    return false;
  };
  Json clusters = Json::array();
  Json failures = Json::array();
  for (const auto& ref : refs) {
    std::string name = ClusterNameFromRef(ref.get<std::string>());
    auto entry = store_.Get(kClusterPrefix + name);
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      failures.push_back({{"arn", ClusterArn(name)}, {"reason", "MISSING"}});
      continue;
    }
    auto view = ClusterView(Json::parse((*entry)->value));
    if (!view.ok()) {
      return view.error();
    }
    Json c = std::move(*view);
    if (!wants("TAGS")) {
      c.erase("tags");
    }
    if (!wants("SETTINGS")) {
      c.erase("settings");
    }
    if (!wants("CONFIGURATIONS")) {
      c.erase("configuration");
    }
    if (!wants("STATISTICS")) {
      c["statistics"] = Json::array();
    }
    clusters.push_back(std::move(c));
  }
  return Json{{"clusters", clusters}, {"failures", failures}};
}

Result<Json> EcsApi::ListClusters(const Json& in, const api::CallContext& ctx) {
  int max = in.value("maxResults", 100);
  if (max < 1 || max > 100) {
    return ClientError("InvalidParameterException",
                       "maxResults must be between 1 and 100.");
  }
  std::string after;
  if (in.contains("nextToken")) {
    auto pos = DecodePageToken(in["nextToken"].get<std::string>());
    if (!pos) {
      return ClientError("InvalidParameterException", "Invalid nextToken.");
    }
    after = *pos;
  }
  Json arns = Json::array();
  std::string last;
  bool more = false;
  std::string cursor = after.empty() ? "" : kClusterPrefix + after;
  while (true) {
    auto page = store_.List(kClusterPrefix, cursor, 200);
    if (!page.ok()) {
      return page.error();
    }
    for (const auto& e : *page) {
      cursor = e.key;
      Json c = Json::parse(e.value);
      if (c.value("status", "") != "ACTIVE") {
        continue;
      }
      if (static_cast<int>(arns.size()) == max) {
        more = true;
        break;
      }
      arns.push_back(c["clusterArn"]);
      last = e.key.substr(kClusterPrefix.size());
    }
    if (more || page->size() < 200) {
      break;
    }
  }
  Json out = {{"clusterArns", arns}};
  if (more) {
    out["nextToken"] = EncodePageToken(last);
  }
  return out;
}

Result<Json> EcsApi::DeleteCluster(const Json& in, const api::CallContext& ctx) {
  const std::string name = ClusterNameFromRef(in.value("cluster", ""));
  return ChangeCluster(name, [&](Json& c) -> Status {
    auto services = CountClusterServices(store_, name);
    if (!services.ok()) {
      return services.error();
    }
    if (services->active + services->draining > 0) {
      return ClientError("ClusterContainsServicesException",
                         "The Cluster cannot be deleted while Services are active.");
    }
    // The cluster's revision guards this write and RunTask rewrites the
    // cluster document, so a task started after this count makes the
    // delete conflict and count again.
    auto counts = tasks_->CountTasks(name);
    if (!counts.ok()) {
      return counts.error();
    }
    if (counts->active > 0) {
      return ClientError("ClusterContainsTasksException",
                         "The Cluster cannot be deleted while Tasks are active.");
    }
    c["status"] = "INACTIVE";
    return Ok();
  });
}

Result<Json> EcsApi::ClusterView(Json c) {
  const std::string name = c.value("clusterName", "");
  c.erase("createdAt");
  auto services = CountClusterServices(store_, name);
  if (!services.ok()) {
    return services.error();
  }
  c["activeServicesCount"] = services->active;
  // The task counters are computed from the tasks, so they are never stale.
  auto counts = tasks_->CountTasks(name);
  if (!counts.ok()) {
    return counts.error();
  }
  c["runningTasksCount"] = counts->running;
  c["pendingTasksCount"] = counts->pending;
  return c;
}

Result<Json> EcsApi::ChangeCluster(const std::string& ref,
                                   const std::function<Status(Json& cluster)>& change) {
  const std::string name = ClusterNameFromRef(ref);
  Json result;
  auto committed = store::ReadModifyWrite(
      store_, kClusterPrefix + name,
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (!cur) {
          return ClusterNotFound();
        }
        Json c = Json::parse(cur->value);
        if (c.value("status", "") != "ACTIVE") {
          return ClusterNotFound();
        }
        BERTH_TRY(change(c));
        result = c;
        return std::optional<std::string>(c.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  auto view = ClusterView(std::move(result));
  if (!view.ok()) {
    return view.error();
  }
  return Json{{"cluster", *view}};
}

Result<Json> EcsApi::UpdateCluster(const Json& in, const api::CallContext& ctx) {
  if (in.contains("configuration")) {
    BERTH_TRY(CheckConfiguration(in["configuration"]));
  }
  if (in.contains("serviceConnectDefaults")) {
    std::string ns = in["serviceConnectDefaults"].value("namespace", "");
    if (ns.empty() || ns.size() > 1024 || ns.find_first_of("-~<>/") != std::string::npos) {
      if (ns.rfind("arn:", 0) != 0 || ns.empty()) {
        return ClientError("InvalidParameterException",
                           "The namespace name can include up to 1024 characters and can't "
                           "include hyphens (-), tilde (~), greater than (>), less than (<), or "
                           "slash (/).");
      }
    }
  }
  return ChangeCluster(in.value("cluster", ""), [&](Json& c) -> Status {
    if (in.contains("settings")) {
      auto merged = MergeSettings(c.value("settings", Json::array()), in["settings"]);
      if (!merged.ok()) {
        return merged.error();
      }
      c["settings"] = *merged;
    }
    if (in.contains("configuration")) {
      c["configuration"] = in["configuration"];
    }
    if (in.contains("serviceConnectDefaults")) {
      std::string ns = in["serviceConnectDefaults"].value("namespace", "");
      if (ns.rfind("arn:", 0) != 0) {
        // A namespace given by name is the account's Cloud Map namespace of
        // that name; berth keeps the name in the ARN's place.
        ns = "arn:aws:servicediscovery:" + account_.region + ":" + account_.account_id +
             ":namespace/" + ns;
      }
      c["serviceConnectDefaults"] = {{"namespace", ns}};
    }
    return Ok();
  });
}

Result<Json> EcsApi::UpdateClusterSettings(const Json& in, const api::CallContext& ctx) {
  return ChangeCluster(in.value("cluster", ""), [&](Json& c) -> Status {
    auto merged = MergeSettings(c.value("settings", Json::array()), in["settings"]);
    if (!merged.ok()) {
      return merged.error();
    }
    c["settings"] = *merged;
    return Ok();
  });
}

Result<Json> EcsApi::PutClusterCapacityProviders(const Json& in, const api::CallContext& ctx) {
  const Json& providers = in["capacityProviders"];
  BERTH_TRY(CheckCapacityProviders(providers));
  Json names = Json::array();
  for (const auto& p : providers) {
    std::string name = p.get<std::string>();
    names.push_back(name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1));
  }
  auto strategy = CheckDefaultStrategy(in["defaultCapacityProviderStrategy"], names);
  if (!strategy.ok()) {
    return strategy.error();
  }
  const std::string cluster_name = ClusterNameFromRef(in.value("cluster", ""));
  BERTH_TRY(ActiveCluster(cluster_name));
  // A provider being removed must not be in use by a service or a task that
  // has not stopped.
  auto removed = [&](const std::string& provider) {
    return std::find(names.begin(), names.end(), provider) == names.end();
  };
  auto in_use = ClientError("ResourceInUseException",
                            "The specified capacity provider is in use and cannot be removed.");
  std::string cursor;
  const std::string prefix = ClusterServicesPrefix(cluster_name);
  while (true) {
    auto page = store_.List(prefix, cursor, 500);
    if (!page.ok()) {
      return page.error();
    }
    for (const auto& e : *page) {
      cursor = e.key;
      Json svc = Json::parse(e.value, nullptr, false);
      if (!svc.is_object() || svc.value("status", "") == "INACTIVE") {
        continue;
      }
      for (const auto& item : svc.value("capacityProviderStrategy", Json::array())) {
        if (removed(item.value("capacityProvider", ""))) {
          return in_use;
        }
      }
    }
    if (page->size() < 500) {
      break;
    }
  }
  TaskFilter filter;
  filter.cluster = cluster_name;
  filter.desired_status = "RUNNING";
  auto tasks = tasks_->FindTasks(filter);
  if (!tasks.ok()) {
    return tasks.error();
  }
  for (const auto& task : *tasks) {
    std::string provider = task.value("capacityProviderName", "");
    if (!provider.empty() && removed(provider)) {
      return in_use;
    }
  }
  return ChangeCluster(cluster_name, [&](Json& c) -> Status {
    c["capacityProviders"] = names;
    c["defaultCapacityProviderStrategy"] = *strategy;
    return Ok();
  });
}

}  // namespace berth::ecs
