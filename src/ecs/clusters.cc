// Clusters: CreateCluster, DescribeClusters, ListClusters, DeleteCluster.
#include <regex>

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
  svc->Add("CreateCluster", [this](const Json& in, const api::CallContext& c) {
    return CreateCluster(in, c);
  });
  svc->Add("DescribeClusters", [this](const Json& in, const api::CallContext& c) {
    return DescribeClusters(in, c);
  });
  svc->Add("ListClusters", [this](const Json& in, const api::CallContext& c) {
    return ListClusters(in, c);
  });
  svc->Add("DeleteCluster", [this](const Json& in, const api::CallContext& c) {
    return DeleteCluster(in, c);
  });
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
  Json settings = in.value("settings", Json::array({{{"name", "containerInsights"},
                                                    {"value", "disabled"}}}));
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
      {"settings", settings},
      {"capacityProviders", in.value("capacityProviders", Json::array())},
      {"defaultCapacityProviderStrategy",
       in.value("defaultCapacityProviderStrategy", Json::array())},
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
    Json c = Json::parse((*entry)->value);
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
  std::string name = ClusterNameFromRef(in.value("cluster", ""));
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
        result = c;
        return std::optional<std::string>(c.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  result.erase("createdAt");
  return Json{{"cluster", result}};
}

}  // namespace berth::ecs
