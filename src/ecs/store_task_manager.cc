// SPDX-License-Identifier: Apache-2.0
#include "ecs/store_task_manager.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/ids.h"
#include "common/time_util.h"
#include "ecs/arns.h"
#include "ecs/scheduler.h"
#include "ecs/taskdef.h"

namespace berth::ecs {

namespace {

const std::string kTasks = "ecs/tasks/";
const std::string& kIndex = kTaskIndexPrefix;
const std::string kNodes = "ecs/nodes/";
const std::string kDesired = "ecs/desired/";
const std::string kClusters = "ecs/clusters/";

constexpr int kMaxAttempts = 200;

std::string TaskKey(const std::string& cluster, const std::string& id) {
  return kTasks + cluster + "/" + id;
}
std::string IndexKey(const std::string& cluster, const std::string& id) {
  return kIndex + cluster + "/" + id;
}
std::string NodeKey(const std::string& node) { return kNodes + node; }
std::string DesiredKey(const std::string& node, const std::string& id) {
  return kDesired + node + "/" + id;
}

Error TaskNotFound() { return Error{404, "TaskNotFound", "no such task", {}}; }
Error NodeNotRegistered() {
  return Error{404, "NodeNotRegistered", "the node is not registered; register again", {}};
}
Error ClusterNotFound() { return ClientError("ClusterNotFoundException", "Cluster not found."); }

// The last segment of the task ARN ("task/<cluster>/<id>").
std::string TaskIdOf(const Json& task) {
  std::string arn = task.value("taskArn", "");
  return arn.substr(arn.rfind('/') + 1);
}

std::string ClusterNameOf(const Json& task) {
  std::string arn = task.value("clusterArn", "");
  size_t at = arn.find(":cluster/");
  return at == std::string::npos ? "" : arn.substr(at + 9);
}

bool IsConflict(const Error& e) { return e.code == store::kConflict; }

// A short random pause that grows with the attempt number, so writers racing
// on the same documents stop colliding in lockstep.
void BackOff(int attempt) {
  if (attempt < 2) {
    std::this_thread::yield();
    return;
  }
  thread_local std::minstd_rand rng(std::random_device{}());
  int64_t ceiling_us = int64_t{100} << std::min(attempt, 7);
  std::uniform_int_distribution<int64_t> pick(0, ceiling_us);
  std::this_thread::sleep_for(std::chrono::microseconds(pick(rng)));
}

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t IntOr(const Json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : fallback;
}

Result<Json> Parse(const std::string& text, const std::string& key) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    return ServerError("store: document " + key + " is not JSON: " + e.what());
  }
}

Json IndexDoc(const Json& task) {
  Json idx = {{"family", Str(task.value("_taskDefinition", Json::object()), "family")},
              {"desiredStatus", Str(task, "desiredStatus")},
              {"lastStatus", Str(task, "lastStatus")},
              {"launchType", Str(task, "launchType")},
              {"node", Str(task, "_node")}};
  if (task.contains("startedBy")) {
    idx["startedBy"] = task["startedBy"];
  }
  if (task.contains("_service")) {
    idx["service"] = task["_service"];
  }
  if (task.contains("stoppedAt")) {
    idx["stoppedAt"] = task["stoppedAt"];
  }
  if (task.contains("_targets")) {
    idx["targets"] = task["_targets"];
  }
  return idx;
}

bool Matches(const TaskIndexEntry& idx, const TaskFilter& f) {
  if (f.service && idx.service != *f.service) {
    return false;
  }
  if (f.family && idx.family != *f.family) {
    return false;
  }
  if (f.started_by && idx.started_by != *f.started_by) {
    return false;
  }
  if (f.launch_type && idx.launch_type != *f.launch_type) {
    return false;
  }
  if (f.targets && idx.targets != *f.targets) {
    return false;
  }
  if (f.desired_status) {
    const std::string& desired = idx.desired_status;
    if (*f.desired_status == "STOPPED") {
      return desired == "STOPPED";
    }
    if (*f.desired_status == "RUNNING") {
      return desired == "RUNNING" || desired == "PENDING";
    }
    return desired == *f.desired_status;
  }
  return true;
}

// The container definition named `name` in the task's definition.
const Json* ContainerDefinition(const Json& task, const std::string& name) {
  auto td = task.find("_taskDefinition");
  if (td == task.end()) {
    return nullptr;
  }
  auto defs = td->find("containerDefinitions");
  if (defs == td->end() || !defs->is_array()) {
    return nullptr;
  }
  for (const auto& d : *defs) {
    if (Str(d, "name") == name) {
      return &d;
    }
  }
  return nullptr;
}

bool IsEssential(const Json* def) { return def == nullptr || def->value("essential", true); }

// A task whose service had loadBalancers when it started.
bool BehindLoadBalancer(const Json& task) {
  auto it = task.find("_loadBalancers");
  return it != task.end() && it->is_array() && !it->empty();
}

// What the node's agent is told to do with the task. A DEACTIVATING task
// keeps running there until its targets are released: requests already on
// their way to it still need an answer.
std::string AgentDesiredStatus(const Json& task) {
  if (Str(task, "lastStatus") == "DEACTIVATING" && Str(task, "_targets") == "registered") {
    return "RUNNING";
  }
  return Str(task, "desiredStatus");
}

// HEALTHY when every essential container with a health check is healthy,
// UNHEALTHY when one of them is unhealthy, UNKNOWN otherwise (also when no
// essential container has a check).
std::string TaskHealth(const Json& task) {
  bool any_checked = false;
  bool all_healthy = true;
  for (const auto& c : task.value("containers", Json::array())) {
    const Json* def = ContainerDefinition(task, Str(c, "name"));
    if (!IsEssential(def) || def == nullptr || !def->contains("healthCheck")) {
      continue;
    }
    any_checked = true;
    std::string h = Str(c, "healthStatus");
    if (h == "UNHEALTHY") {
      return "UNHEALTHY";
    }
    if (h != "HEALTHY") {
      all_healthy = false;
    }
  }
  return any_checked && all_healthy ? "HEALTHY" : "UNKNOWN";
}

int ContainerStatusIndex(const std::string& s) {
  if (s == "PENDING") return 0;
  if (s == "RUNNING") return 1;
  if (s == "STOPPED") return 2;
  return -1;
}

void SetAttachmentStatus(Json& task, const char* status) {
  for (auto& a : task["attachments"]) {
    a["status"] = status;
  }
}

void SetDetail(Json& attachment, const std::string& name, const std::string& value) {
  Json& details = attachment["details"];
  for (auto& d : details) {
    if (Str(d, "name") == name) {
      d["value"] = value;
      return;
    }
  }
  details.push_back({{"name", name}, {"value", value}});
}

std::string DefaultStoppedReason(const std::string& code) {
  if (code == "EssentialContainerExited") {
    return "Essential container in task exited";
  }
  if (code == "UserInitiated") {
    return "Task stopped by user";
  }
  return "";
}

SchedulerNode ToSchedulerNode(const Json& node) {
  SchedulerNode n;
  n.id = Str(node, "nodeId");
  n.zone = Str(node, "availabilityZone");
  const Json& alloc = node.value("allocatable", Json::object());
  n.allocatable_cpu = IntOr(alloc, "cpu", 0);
  n.allocatable_memory = IntOr(alloc, "memory", 0);
  const Json tasks = node.value("tasks", Json::object());
  for (const auto& [id, t] : tasks.items()) {
    n.reserved_cpu += IntOr(t, "cpu", 0);
    n.reserved_memory += IntOr(t, "memory", 0);
    n.group_tasks[Str(t, "group")] += 1;
  }
  return n;
}

}  // namespace

StoreTaskManager::StoreTaskManager(store::Store& store, TaskManagerOptions options)
    : store_(store), options_(std::move(options)) {
  started_at_ = Now();
}

StoreTaskManager::~StoreTaskManager() { Shutdown(); }

double StoreTaskManager::Now() const { return options_.clock ? options_.clock() : NowEpochSeconds(); }

std::string StoreTaskManager::TaskArn(const std::string& cluster, const std::string& id) const {
  return EcsArn(options_.region, options_.account_id, "task/" + cluster + "/" + id);
}

std::string StoreTaskManager::ClusterArn(const std::string& cluster) const {
  return EcsArn(options_.region, options_.account_id, "cluster/" + cluster);
}

Json StoreTaskManager::PublicView(const Json& task, bool include_tags) {
  Json out = Json::object();
  for (auto it = task.begin(); it != task.end(); ++it) {
    if (!it.key().empty() && it.key()[0] == '_') {
      continue;
    }
    if (it.key() == "tags" && !include_tags) {
      continue;
    }
    out[it.key()] = it.value();
  }
  return out;
}

// ---------------------------------------------------------------------------
// Creating tasks.

Json StoreTaskManager::NewTask(const StartTasksRequest& req, const std::string& id, int64_t cpu,
                               int64_t memory, double now) const {
  const Json& td = req.task_definition;
  const std::string arn = TaskArn(req.cluster, id);
  const Json& overrides = req.overrides.is_object() ? req.overrides : Json::object();

  auto container_override = [&](const std::string& name) {
    for (const auto& o : overrides.value("containerOverrides", Json::array())) {
      if (Str(o, "name") == name) {
        return o;
      }
    }
    return Json(Json::object());
  };

  Json containers = Json::array();
  for (const auto& def : td.value("containerDefinitions", Json::array())) {
    std::string name = Str(def, "name");
    Json o = container_override(name);
    Json c = {
        {"containerArn", EcsArn(options_.region, options_.account_id,
                                "container/" + req.cluster + "/" + id + "/" + NewUuid())},
        {"taskArn", arn},
        {"name", name},
        {"image", Str(def, "image")},
        {"lastStatus", "PENDING"},
        {"networkInterfaces", Json::array()},
        {"healthStatus", "UNKNOWN"},
        {"cpu", std::to_string(IntOr(o, "cpu", IntOr(def, "cpu", 0)))},
    };
    int64_t mem = IntOr(o, "memory", IntOr(def, "memory", 0));
    if (mem > 0) {
      c["memory"] = std::to_string(mem);
    }
    int64_t reservation = IntOr(o, "memoryReservation", IntOr(def, "memoryReservation", 0));
    if (reservation > 0) {
      c["memoryReservation"] = std::to_string(reservation);
    }
    containers.push_back(std::move(c));
  }

  std::string subnet;
  const Json& awsvpc = req.network_configuration.is_object()
                           ? req.network_configuration.value("awsvpcConfiguration", Json::object())
                           : Json::object();
  for (const auto& s : awsvpc.value("subnets", Json::array())) {
    if (s.is_string()) {
      subnet = s.get<std::string>();
      break;
    }
  }
  Json attachment = {{"id", NewUuid()},
                     {"type", "ElasticNetworkInterface"},
                     {"status", "PRECREATED"},
                     {"details", Json::array()}};
  if (!subnet.empty()) {
    SetDetail(attachment, "subnetId", subnet);
  }

  Json shown_overrides = {
      {"containerOverrides", overrides.value("containerOverrides", Json::array())},
      {"inferenceAcceleratorOverrides", Json::array()}};
  for (const char* key : {"cpu", "memory", "taskRoleArn", "executionRoleArn", "ephemeralStorage"}) {
    if (overrides.contains(key)) {
      shown_overrides[key] = overrides[key];
    }
  }
  int64_t storage = IntOr(td.value("ephemeralStorage", Json::object()), "sizeInGiB", 20);
  storage = IntOr(overrides.value("ephemeralStorage", Json::object()), "sizeInGiB", storage);

  std::string arch = Str(td.value("runtimePlatform", Json::object()), "cpuArchitecture");
  Json task = {
      {"attachments", Json::array({attachment})},
      {"attributes", Json::array({{{"name", "ecs.cpu-architecture"},
                                   {"value", arch == "ARM64" ? "arm64" : "x86_64"}}})},
      {"clusterArn", ClusterArn(req.cluster)},
      {"containers", containers},
      {"cpu", std::to_string(cpu)},
      {"createdAt", now},
      {"desiredStatus", "RUNNING"},
      {"enableExecuteCommand", req.enable_execute_command},
      {"group", req.group.empty() ? "family:" + Str(td, "family") : req.group},
      {"healthStatus", "UNKNOWN"},
      {"lastStatus", "PROVISIONING"},
      {"launchType", req.launch_type.empty() ? "FARGATE" : req.launch_type},
      {"memory", std::to_string(memory)},
      {"overrides", shown_overrides},
      {"platformVersion", req.platform_version.empty() ? "1.4.0" : req.platform_version},
      {"platformFamily", "Linux"},
      {"tags", req.tags.is_array() ? req.tags : Json::array()},
      {"taskArn", arn},
      {"taskDefinitionArn", Str(td, "taskDefinitionArn")},
      {"version", 1},
      {"ephemeralStorage", {{"sizeInGiB", storage}}},
      {"_taskDefinition", td},
      {"_overrides", overrides},
      {"_networkConfiguration", req.network_configuration.is_null() ? Json::object()
                                                                    : req.network_configuration},
      {"_seq", 0},
  };
  if (!req.started_by.empty()) {
    task["startedBy"] = req.started_by;
  }
  if (!req.capacity_provider.empty()) {
    task["capacityProviderName"] = req.capacity_provider;
  }
  if (!req.service.empty()) {
    task["_service"] = req.service;
  }
  if (!req.deployment_id.empty()) {
    task["_deployment"] = req.deployment_id;
  }
  if (req.load_balancers.is_array() && !req.load_balancers.empty()) {
    task["_loadBalancers"] = req.load_balancers;
  }
  return task;
}

Result<std::shared_ptr<const StoreTaskManager::CachedNode>> StoreTaskManager::ParsedNode(
    const store::Entry& entry) {
  {
    std::lock_guard<std::mutex> lock(node_cache_mu_);
    auto it = node_cache_.find(entry.key);
    if (it != node_cache_.end() && it->second->mod_revision == entry.mod_revision) {
      return it->second;
    }
  }
  auto doc = Parse(entry.value, entry.key);
  if (!doc.ok()) {
    return doc.error();
  }
  auto node = std::make_shared<CachedNode>();
  node->mod_revision = entry.mod_revision;
  node->scheduler = ToSchedulerNode(*doc);
  node->doc = std::move(*doc);
  std::lock_guard<std::mutex> lock(node_cache_mu_);
  node_cache_[entry.key] = node;
  return std::shared_ptr<const CachedNode>(node);
}

Json StoreTaskManager::DesiredDoc(const Json& task) const {
  return Json{{"cluster", ClusterNameOf(task)},
              {"taskId", TaskIdOf(task)},
              {"desiredStatus", AgentDesiredStatus(task)}};
}

Result<StartTasksResult> StoreTaskManager::StartTasks(const StartTasksRequest& req) {
  if (req.count < 1) {
    return ClientError("InvalidParameterException", "count must be at least 1.");
  }
  const Json& overrides = req.overrides.is_object() ? req.overrides : Json::object();
  std::string cpu_text = overrides.contains("cpu") ? Str(overrides, "cpu")
                                                   : Str(req.task_definition, "cpu");
  std::string memory_text = overrides.contains("memory") ? Str(overrides, "memory")
                                                         : Str(req.task_definition, "memory");
  auto cpu = ParseTaskCpu(cpu_text);
  if (!cpu.ok()) {
    return cpu.error();
  }
  auto memory = ParseTaskMemory(memory_text);
  if (!memory.ok()) {
    return memory.error();
  }

  // Documents are built once; only placement is redone on a conflict.
  double now = Now();
  std::vector<Json> docs;
  for (int i = 0; i < req.count; ++i) {
    docs.push_back(NewTask(req, RandomHex(16), *cpu, *memory, now));
  }
  const std::string group = Str(docs.front(), "group");
  const std::string cluster_key = kClusters + req.cluster;

  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto cluster = store_.Get(cluster_key);
    if (!cluster.ok()) {
      return cluster.error();
    }
    if (!*cluster) {
      return ClusterNotFound();
    }
    auto cluster_doc = Parse((*cluster)->value, cluster_key);
    if (!cluster_doc.ok()) {
      return cluster_doc.error();
    }
    if (Str(*cluster_doc, "status") != "ACTIVE") {
      return ClusterNotFound();
    }

    auto nodes = store_.List(kNodes);
    if (!nodes.ok()) {
      return nodes.error();
    }
    Placer placer;
    std::vector<const store::Entry*> node_entries;
    std::vector<std::shared_ptr<const CachedNode>> cached;
    for (const auto& e : *nodes) {
      auto node = ParsedNode(e);
      if (!node.ok()) {
        return node.error();
      }
      if (Str((*node)->doc, "status") != "ACTIVE") {
        continue;
      }
      placer.AddNode((*node)->scheduler);
      node_entries.push_back(&e);
      cached.push_back(std::move(*node));
    }
    // Only the nodes that take a task are copied and rewritten.
    std::vector<std::optional<Json>> node_docs(cached.size());

    StartTasksResult result;
    std::vector<bool> touched(cached.size(), false);
    store::Txn txn;
    for (const Json& base : docs) {
      PlacementDecision d = placer.Place(*cpu, *memory, group);
      if (!d.ok()) {
        result.failures.push_back(Json{{"reason", d.failure}});
        continue;
      }
      Json task = base;
      if (!node_docs[d.node]) {
        node_docs[d.node] = cached[d.node]->doc;
      }
      Json& node = *node_docs[d.node];
      std::string node_id = Str(node, "nodeId");
      task["_node"] = node_id;
      task["availabilityZone"] = Str(node, "availabilityZone");
      std::string id = TaskIdOf(task);
      node["tasks"][id] = {{"cluster", req.cluster}, {"cpu", *cpu}, {"memory", *memory},
                           {"group", group}};
      touched[d.node] = true;
      txn.IfAbsent(TaskKey(req.cluster, id));
      txn.Put(TaskKey(req.cluster, id), task.dump());
      txn.Put(IndexKey(req.cluster, id), IndexDoc(task).dump());
      txn.Put(DesiredKey(node_id, id), DesiredDoc(task).dump());
      result.tasks.push_back(std::move(task));
    }
    if (result.tasks.empty()) {
      return result;
    }
    for (size_t i = 0; i < node_docs.size(); ++i) {
      if (touched[i]) {
        txn.IfRevision(node_entries[i]->key, node_entries[i]->mod_revision);
        txn.Put(node_entries[i]->key, node_docs[i]->dump());
      }
    }
    // Rewriting the cluster document makes a concurrent DeleteCluster, which
    // is guarded by the cluster's revision, see these tasks.
    txn.IfRevision(cluster_key, (*cluster)->mod_revision);
    txn.Put(cluster_key, (*cluster)->value);

    auto committed = store_.Commit(txn);
    if (committed.ok()) {
      for (const auto& t : result.tasks) {
        spdlog::info("component=scheduler event=task_placed task_id={} cluster={} node={}",
                     TaskIdOf(t), req.cluster, Str(t, "_node"));
      }
      return result;
    }
    if (!IsConflict(committed.error())) {
      return committed.error();
    }
    BackOff(attempt);
  }
  return ServerError("placement kept conflicting; try again");
}

// ---------------------------------------------------------------------------
// Changing tasks.

Result<Json> StoreTaskManager::MutateTask(const std::string& cluster, const std::string& id,
                                          const Mutation& mutate) {
  const std::string key = TaskKey(cluster, id);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto entry = store_.Get(key);
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      return TaskNotFound();
    }
    auto before = Parse((*entry)->value, key);
    if (!before.ok()) {
      return before.error();
    }
    Json task = *before;
    auto changed = mutate(task);
    if (!changed.ok()) {
      return changed.error();
    }
    if (!*changed) {
      return task;
    }

    store::Txn txn;
    txn.IfRevision(key, (*entry)->mod_revision);
    txn.Put(key, task.dump());
    txn.Put(IndexKey(cluster, id), IndexDoc(task).dump());
    const std::string node = Str(task, "_node");
    bool was_stopped = Str(*before, "lastStatus") == "STOPPED";
    bool is_stopped = Str(task, "lastStatus") == "STOPPED";
    if (!node.empty() && is_stopped && !was_stopped) {
      txn.Delete(DesiredKey(node, id));
      // Give the reservation back.
      auto node_entry = store_.Get(NodeKey(node));
      if (!node_entry.ok()) {
        return node_entry.error();
      }
      if (*node_entry) {
        auto node_doc = Parse((*node_entry)->value, NodeKey(node));
        if (!node_doc.ok()) {
          return node_doc.error();
        }
        if (node_doc->contains("tasks") && (*node_doc)["tasks"].contains(id)) {
          (*node_doc)["tasks"].erase(id);
          txn.IfRevision(NodeKey(node), (*node_entry)->mod_revision);
          txn.Put(NodeKey(node), node_doc->dump());
        }
      }
    } else if (!node.empty() && !is_stopped &&
               AgentDesiredStatus(*before) != AgentDesiredStatus(task)) {
      txn.Put(DesiredKey(node, id), DesiredDoc(task).dump());
    }

    auto committed = store_.Commit(txn);
    if (committed.ok()) {
      if (Str(*before, "lastStatus") != Str(task, "lastStatus")) {
        spdlog::info("component=tasks event=task_state_changed task_id={} cluster={} "
                     "last_status={} desired_status={}",
                     id, cluster, Str(task, "lastStatus"), Str(task, "desiredStatus"));
      }
      return task;
    }
    if (!IsConflict(committed.error())) {
      return committed.error();
    }
    BackOff(attempt);
  }
  return ServerError("task update kept conflicting; try again");
}

void StoreTaskManager::MarkStopped(Json& task, const std::string& stop_code,
                                   const std::string& reason, double now) const {
  if (Str(task, "lastStatus") == "STOPPED") {
    return;
  }
  if (Str(task, "desiredStatus") != "STOPPED") {
    task["desiredStatus"] = "STOPPED";
  }
  if (!task.contains("stoppingAt")) {
    task["stoppingAt"] = now;
  }
  if (!task.contains("stopCode")) {
    task["stopCode"] = stop_code;
    task["stoppedReason"] = reason.empty() ? DefaultStoppedReason(stop_code) : reason;
  }
  if (!task.contains("executionStoppedAt")) {
    task["executionStoppedAt"] = now;
  }
  task["stoppedAt"] = now;
  task["lastStatus"] = "STOPPED";
  for (auto& c : task["containers"]) {
    c["lastStatus"] = "STOPPED";
  }
  SetAttachmentStatus(task, "DELETED");
  task["version"] = IntOr(task, "version", 1) + 1;
}

Result<Json> StoreTaskManager::StopTask(const std::string& cluster, const std::string& task_id,
                                        const std::string& stop_code,
                                        const std::string& reason) {
  double now = Now();
  return MutateTask(cluster, task_id, [&](Json& task) -> Result<bool> {
    if (Str(task, "desiredStatus") == "STOPPED") {
      return false;
    }
    // A task whose node is gone has nobody left to stop it.
    const std::string node = Str(task, "_node");
    bool node_alive = false;
    if (!node.empty()) {
      auto entry = store_.Get(NodeKey(node));
      if (!entry.ok()) {
        return entry.error();
      }
      if (*entry) {
        auto doc = Parse((*entry)->value, NodeKey(node));
        node_alive = doc.ok() && Str(*doc, "status") == "ACTIVE";
      }
    }
    if (!node_alive) {
      MarkStopped(task, stop_code, reason, now);
      return true;
    }
    task["desiredStatus"] = "STOPPED";
    task["stoppingAt"] = now;
    if (Str(task, "lastStatus") == "RUNNING" && Str(task, "_targets") == "registered") {
      // The load balancer binder deregisters the targets and releases the task
      // once they have drained; until then the agent keeps it running.
      task["lastStatus"] = "DEACTIVATING";
    }
    if (!task.contains("stopCode")) {
      task["stopCode"] = stop_code;
      task["stoppedReason"] = reason.empty() ? DefaultStoppedReason(stop_code) : reason;
    }
    task["version"] = IntOr(task, "version", 1) + 1;
    return true;
  });
}

Result<Json> StoreTaskManager::MarkTargetsRegistered(const std::string& cluster,
                                                     const std::string& task_id) {
  double now = Now();
  return MutateTask(cluster, task_id, [&](Json& task) -> Result<bool> {
    std::string targets = Str(task, "_targets");
    if (targets == "registered" || targets == "released") {
      return false;
    }
    // Recorded even for a task that stopped meanwhile: the binder then finds
    // registered targets of a task that no longer serves and takes them out.
    task["_targets"] = "registered";
    if (targets == "pending" && Str(task, "lastStatus") == "ACTIVATING" &&
        Str(task, "desiredStatus") == "RUNNING") {
      task["lastStatus"] = "RUNNING";
      task["startedAt"] = now;
      if (!task.contains("pullStartedAt")) {
        task["pullStartedAt"] = now;
      }
      if (!task.contains("pullStoppedAt")) {
        task["pullStoppedAt"] = now;
      }
      task["version"] = IntOr(task, "version", 1) + 1;
    }
    return true;
  });
}

Result<Json> StoreTaskManager::SetTargetsHealthy(const std::string& cluster,
                                                 const std::string& task_id, bool healthy) {
  return MutateTask(cluster, task_id, [&](Json& task) -> Result<bool> {
    auto it = task.find("_targetsHealthy");
    if (it != task.end() && it->is_boolean() && it->get<bool>() == healthy) {
      return false;
    }
    task["_targetsHealthy"] = healthy;
    return true;
  });
}

Result<Json> StoreTaskManager::MarkTargetsReleased(const std::string& cluster,
                                                   const std::string& task_id) {
  return MutateTask(cluster, task_id, [&](Json& task) -> Result<bool> {
    if (Str(task, "_targets") != "registered") {
      return false;
    }
    task["_targets"] = "released";
    task["_targetsHealthy"] = false;
    return true;
  });
}

void StoreTaskManager::ApplyReportToTask(const TaskReport& r, Json& task, double now) const {
  // Containers.
  for (const auto& cr : r.containers) {
    for (auto& c : task["containers"]) {
      if (Str(c, "name") != cr.name) {
        continue;
      }
      if (ContainerStatusIndex(cr.last_status) > ContainerStatusIndex(Str(c, "lastStatus"))) {
        c["lastStatus"] = cr.last_status;
      }
      if (cr.exit_code) {
        c["exitCode"] = *cr.exit_code;
      }
      if (!cr.reason.empty()) {
        c["reason"] = cr.reason;
      }
      if (!cr.health_status.empty()) {
        c["healthStatus"] = cr.health_status;
      }
      if (!cr.runtime_id.empty()) {
        c["runtimeId"] = cr.runtime_id;
      }
      if (!cr.image_digest.empty()) {
        c["imageDigest"] = cr.image_digest;
      }
    }
  }

  // The network interface.
  if (r.network && !r.network->private_ipv4_address.empty() && !task["attachments"].empty()) {
    Json& eni = task["attachments"][0];
    const NetworkReport& n = *r.network;
    std::string eni_id = n.network_interface_id;
    if (eni_id.empty()) {
      eni_id = Str(task, "_eni");
      if (eni_id.empty()) {
        eni_id = "eni-" + RandomHex(9).substr(0, 17);
      }
    }
    task["_eni"] = eni_id;
    std::string dns = n.private_dns_name;
    if (dns.empty()) {
      std::string dashed = n.private_ipv4_address;
      std::replace(dashed.begin(), dashed.end(), '.', '-');
      dns = "ip-" + dashed + "." + options_.region + ".compute.internal";
    }
    SetDetail(eni, "networkInterfaceId", eni_id);
    if (!n.mac_address.empty()) {
      SetDetail(eni, "macAddress", n.mac_address);
    }
    SetDetail(eni, "privateDnsName", dns);
    SetDetail(eni, "privateIPv4Address", n.private_ipv4_address);
    if (Str(eni, "status") == "PRECREATED") {
      eni["status"] = "ATTACHED";
    }
    for (auto& c : task["containers"]) {
      c["networkInterfaces"] = Json::array(
          {{{"attachmentId", Str(eni, "id")}, {"privateIpv4Address", n.private_ipv4_address}}});
    }
  }

  if (r.pull_started_at && !task.contains("pullStartedAt")) {
    task["pullStartedAt"] = *r.pull_started_at;
  }
  if (r.pull_stopped_at && !task.contains("pullStoppedAt")) {
    task["pullStoppedAt"] = *r.pull_stopped_at;
  }

  // Why the task stops, when it stops on its own.
  int cur = TaskStatusIndex(Str(task, "lastStatus"));
  int next = TaskStatusIndex(r.last_status);
  std::string next_status = r.last_status;
  const int kRunning = TaskStatusIndex("RUNNING");
  const int kDeprovisioning = TaskStatusIndex("DEPROVISIONING");
  const int kStopped = TaskStatusIndex("STOPPED");
  std::string targets = Str(task, "_targets");
  if (next == kRunning && BehindLoadBalancer(task) && (targets.empty() || targets == "pending")) {
    // Running containers are not yet a RUNNING task behind a load balancer:
    // it stays ACTIVATING until the binder has registered its targets.
    task["_targets"] = "pending";
    next_status = "ACTIVATING";
    next = TaskStatusIndex(next_status);
  }
  if (!task.contains("stopCode")) {
    std::string code = r.stop_code;
    std::string reason = r.stopped_reason;
    if (code.empty()) {
      for (const auto& c : task["containers"]) {
        if (Str(c, "lastStatus") == "STOPPED" &&
            IsEssential(ContainerDefinition(task, Str(c, "name")))) {
          code = "EssentialContainerExited";
          break;
        }
      }
    }
    if (code.empty() && next == kStopped) {
      // Stopped without saying why: after a start an essential container
      // ended it; before one, the start failed.
      if (task.contains("startedAt")) {
        code = "EssentialContainerExited";
      } else {
        code = "TaskFailedToStart";
        for (const auto& c : task["containers"]) {
          if (reason.empty() && !Str(c, "reason").empty()) {
            reason = Str(c, "reason");
          }
        }
      }
    }
    if (!code.empty()) {
      task["stopCode"] = code;
      task["stoppedReason"] = reason.empty() ? DefaultStoppedReason(code) : reason;
    }
  }
  if (task.contains("stopCode") && Str(task, "desiredStatus") != "STOPPED") {
    task["desiredStatus"] = "STOPPED";
    task["stoppingAt"] = now;
    task["version"] = IntOr(task, "version", 1) + 1;
  }

  // Walk the lifecycle forward through every state the report crossed. A
  // report may jump over RUNNING (a task that failed to start goes straight to
  // STOPPED); the task only counts as started when something ran.
  bool ran = next == kRunning || r.started_at.has_value();
  for (const auto& c : task["containers"]) {
    ran = ran || Str(c, "lastStatus") == "RUNNING" || c.contains("exitCode");
  }
  if (next > cur) {
    for (int s = cur + 1; s <= next; ++s) {
      if (s == TaskStatusIndex("PENDING")) {
        task["connectivity"] = "CONNECTED";
        task["connectivityAt"] = now;
      } else if (s == kRunning && ran) {
        task["startedAt"] = r.started_at.value_or(now);
        if (!task.contains("pullStartedAt")) {
          task["pullStartedAt"] = task["startedAt"];
        }
        if (!task.contains("pullStoppedAt")) {
          task["pullStoppedAt"] = task["startedAt"];
        }
      } else if (s == TaskStatusIndex("DEACTIVATING")) {
        if (Str(task, "desiredStatus") != "STOPPED") {
          task["desiredStatus"] = "STOPPED";
        }
        if (!task.contains("stoppingAt")) {
          task["stoppingAt"] = now;
        }
      } else if (s == kDeprovisioning) {
        if (!task.contains("executionStoppedAt")) {
          task["executionStoppedAt"] = r.execution_stopped_at.value_or(now);
        }
        SetAttachmentStatus(task, "DETACHED");
      }
    }
    if (next == kStopped) {
      std::string code = Str(task, "stopCode");
      MarkStopped(task, code.empty() ? "TaskFailedToStart" : code, Str(task, "stoppedReason"),
                  now);
      if (r.execution_stopped_at) {
        task["executionStoppedAt"] = *r.execution_stopped_at;
      }
    } else {
      task["lastStatus"] = next_status;
      task["version"] = IntOr(task, "version", 1) + 1;
    }
  }
  task["healthStatus"] = TaskHealth(task);
}

Result<Json> StoreTaskManager::ApplyReport(const TaskReport& report) {
  Touch(report.node_id);
  double now = Now();
  bool applied = false;
  auto task = MutateTask(report.cluster, report.task_id, [&](Json& t) -> Result<bool> {
    applied = false;
    if (Str(t, "_node") != report.node_id) {
      return Error{409, "TaskNotOnNode", "the task is not placed on this node", {}};
    }
    if (report.seq <= IntOr(t, "_seq", 0)) {
      return false;
    }
    ApplyReportToTask(report, t, now);
    t["_seq"] = report.seq;
    applied = true;
    return true;
  });
  if (!task.ok()) {
    return task.error();
  }
  return Json{{"applied", applied},
              {"seq", IntOr(*task, "_seq", 0)},
              {"desiredStatus", Str(*task, "desiredStatus")},
              {"lastStatus", Str(*task, "lastStatus")}};
}

// ---------------------------------------------------------------------------
// Reading tasks.

Result<std::optional<Json>> StoreTaskManager::GetTask(const std::string& cluster,
                                                      const std::string& id) {
  auto entry = store_.Get(TaskKey(cluster, id));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return std::optional<Json>();
  }
  auto doc = Parse((*entry)->value, (*entry)->key);
  if (!doc.ok()) {
    return doc.error();
  }
  return std::optional<Json>(std::move(*doc));
}

Result<TaskIdPage> StoreTaskManager::ListTaskIds(const TaskFilter& filter,
                                                 const std::string& after, int limit) {
  TaskIdPage page;
  auto visit = [&](const std::string& id, const TaskIndexEntry& idx) {
    if (!Matches(idx, filter)) {
      return true;
    }
    if (static_cast<int>(page.ids.size()) == limit) {
      page.next_after = page.ids.back();
      return false;
    }
    page.ids.push_back(id);
    return true;
  };
  // The narrowest member filter walks only its own tasks.
  if (filter.started_by) {
    BERTH_TRY(index_.ForEachWith(filter.cluster, "startedBy", *filter.started_by, after, visit));
  } else if (filter.service) {
    BERTH_TRY(index_.ForEachWith(filter.cluster, "service", *filter.service, after, visit));
  } else if (filter.family) {
    BERTH_TRY(index_.ForEachWith(filter.cluster, "family", *filter.family, after, visit));
  } else {
    BERTH_TRY(index_.ForEach(filter.cluster, after, visit));
  }
  return page;
}

Result<std::vector<Json>> StoreTaskManager::FindTasks(const TaskFilter& filter) {
  auto ids = ListTaskIds(filter, "", std::numeric_limits<int>::max());
  if (!ids.ok()) {
    return ids.error();
  }
  std::vector<Json> tasks;
  for (const auto& id : ids->ids) {
    auto task = GetTask(filter.cluster, id);
    if (!task.ok()) {
      return task.error();
    }
    if (*task) {
      tasks.push_back(std::move(**task));
    }
  }
  return tasks;
}

Result<ClusterTaskCounts> StoreTaskManager::CountTasks(const std::string& cluster) {
  ClusterTaskCounts counts;
  BERTH_TRY(index_.ForEach(cluster, "", [&](const std::string&, const TaskIndexEntry& idx) {
    const std::string& last = idx.last_status;
    if (last == "STOPPED") {
      return true;
    }
    counts.active += 1;
    if (last == "RUNNING") {
      counts.running += 1;
    } else if (last == "PROVISIONING" || last == "PENDING" || last == "ACTIVATING") {
      counts.pending += 1;
    }
    return true;
  }));
  return counts;
}

// ---------------------------------------------------------------------------
// Nodes and the agent protocol.

void StoreTaskManager::Touch(const std::string& node_id) {
  std::lock_guard<std::mutex> lock(seen_mu_);
  last_seen_[node_id] = Now();
}

Result<Json> StoreTaskManager::RegisterNode(const NodeRegistration& reg) {
  double now = Now();
  double factor = reg.allocation_factor.value_or(options_.allocation_factor);
  std::string zone = reg.availability_zone.empty() ? options_.region + "a" : reg.availability_zone;
  Json result;
  auto committed = store::ReadModifyWrite(
      store_, NodeKey(reg.node_id),
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        Json node = Json::object();
        if (cur) {
          auto doc = Parse(cur->value, cur->key);
          if (!doc.ok()) {
            return doc.error();
          }
          node = std::move(*doc);
        } else {
          node["registeredAt"] = now;
          node["tasks"] = Json::object();
        }
        node["nodeId"] = reg.node_id;
        node["availabilityZone"] = zone;
        node["capacity"] = {{"cpu", reg.cpu}, {"memory", reg.memory}};
        node["allocationFactor"] = factor;
        node["allocatable"] = {
            {"cpu", static_cast<int64_t>(std::floor(static_cast<double>(reg.cpu) * factor))},
            {"memory", static_cast<int64_t>(std::floor(static_cast<double>(reg.memory) * factor))}};
        node["status"] = "ACTIVE";
        node["heartbeatAt"] = now;
        if (!reg.address.empty()) {
          node["address"] = reg.address;
        }
        node.erase("lostAt");
        result = node;
        return std::optional<std::string>(node.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  Touch(reg.node_id);
  spdlog::info("component=scheduler event=node_registered node={} zone={} cpu={} memory={}",
               reg.node_id, zone, reg.cpu, reg.memory);
  return result;
}

Result<std::vector<Json>> StoreTaskManager::ListNodes() {
  auto entries = store_.List(kNodes);
  if (!entries.ok()) {
    return entries.error();
  }
  std::vector<Json> nodes;
  for (const auto& e : *entries) {
    auto doc = Parse(e.value, e.key);
    if (!doc.ok()) {
      return doc.error();
    }
    nodes.push_back(std::move(*doc));
  }
  return nodes;
}

Result<DesiredState> StoreTaskManager::Desired(const std::string& node_id, int64_t after,
                                               std::chrono::milliseconds wait) {
  auto node = store_.Get(NodeKey(node_id));
  if (!node.ok()) {
    return node.error();
  }
  if (!*node) {
    return NodeNotRegistered();
  }
  auto node_doc = Parse((*node)->value, (*node)->key);
  if (!node_doc.ok()) {
    return node_doc.error();
  }
  if (Str(*node_doc, "status") != "ACTIVE") {
    return NodeNotRegistered();
  }
  Touch(node_id);

  const std::string prefix = kDesired + node_id + "/";
  bool waits = after > 0 && wait.count() > 0;
  bool no_slot = false;
  if (waits && long_polls_.fetch_add(1) >= options_.max_long_polls) {
    long_polls_.fetch_sub(1);
    no_slot = true;
    waits = false;
  }
  if (waits) {
    struct SlotRelease {
      std::atomic<int>& n;
      ~SlotRelease() { n.fetch_sub(1); }
    } release{long_polls_};
    // Wait in slices so a shutdown never waits for a whole long poll, and so
    // a long poll keeps the node's heartbeat fresh.
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (!stopping_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        break;
      }
      auto events = store_.Changes(after, prefix, std::min(left, std::chrono::milliseconds(500)));
      if (!events.ok()) {
        if (events.error().code == "StoreCompacted") {
          break;
        }
        return events.error();
      }
      Touch(node_id);
      if (!events->empty()) {
        break;
      }
    }
  }

  DesiredState state;
  state.revision = store_.Revision();
  if (no_slot) {
    state.retry_after_ms = 1000;
  }
  auto entries = store_.List(prefix);
  if (!entries.ok()) {
    return entries.error();
  }
  for (const auto& e : *entries) {
    auto doc = Parse(e.value, e.key);
    if (!doc.ok()) {
      return doc.error();
    }
    auto task = GetTask(Str(*doc, "cluster"), Str(*doc, "taskId"));
    if (!task.ok()) {
      return task.error();
    }
    if (!*task) {
      continue;
    }
    const Json& t = **task;
    DesiredTask d;
    d.task_id = TaskIdOf(t);
    d.task_arn = Str(t, "taskArn");
    d.cluster = Str(*doc, "cluster");
    d.cluster_arn = Str(t, "clusterArn");
    d.desired_status = AgentDesiredStatus(t);
    d.last_status = Str(t, "lastStatus");
    d.seq = IntOr(t, "_seq", 0);
    d.cpu = Str(t, "cpu");
    d.memory = Str(t, "memory");
    d.availability_zone = Str(t, "availabilityZone");
    if (!t["attachments"].empty()) {
      d.attachment_id = Str(t["attachments"][0], "id");
    }
    d.service = Str(t, "_service");
    d.task_definition = t.value("_taskDefinition", Json::object());
    d.overrides = t.value("_overrides", Json::object());
    d.network_configuration = t.value("_networkConfiguration", Json::object());
    state.tasks.push_back(std::move(d));
  }
  return state;
}

// ---------------------------------------------------------------------------
// Housekeeping.

Result<int> StoreTaskManager::PruneStoppedTasks() {
  double cutoff = Now() - options_.stopped_task_retention_seconds;
  struct Expired {
    std::string rest;  // <cluster>/<id>
    int64_t revision;
  };
  std::vector<Expired> expired;
  BERTH_TRY(index_.ForAll(
      [&](const std::string& cluster, const std::string& id, const TaskIndexEntry& idx) {
        if (idx.last_status == "STOPPED" && idx.stopped_at > 0 && idx.stopped_at < cutoff) {
          expired.push_back({cluster + "/" + id, idx.mod_revision});
        }
      }));
  int pruned = 0;
  for (const auto& e : expired) {
    store::Txn txn;
    txn.IfRevision(kIndex + e.rest, e.revision);
    txn.Delete(kIndex + e.rest);
    txn.Delete(kTasks + e.rest);
    auto committed = store_.Commit(txn);
    if (committed.ok()) {
      ++pruned;
    } else if (!IsConflict(committed.error())) {
      return committed.error();
    }
  }
  if (pruned > 0) {
    spdlog::info("component=tasks event=stopped_tasks_pruned count={}", pruned);
  }
  return pruned;
}

Result<int> StoreTaskManager::SweepLostNodes() {
  double now = Now();
  auto nodes = ListNodes();
  if (!nodes.ok()) {
    return nodes.error();
  }
  int lost = 0;
  for (const Json& listed : *nodes) {
    if (Str(listed, "status") != "ACTIVE") {
      continue;
    }
    const std::string id = Str(listed, "nodeId");
    double seen = started_at_;
    {
      std::lock_guard<std::mutex> lock(seen_mu_);
      auto it = last_seen_.find(id);
      if (it != last_seen_.end()) {
        seen = std::max(seen, it->second);
      }
    }
    if (now - seen <= options_.node_timeout_seconds) {
      continue;
    }

    Json marked;
    auto committed = store::ReadModifyWrite(
        store_, NodeKey(id),
        [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
          if (!cur) {
            return Error{404, "NodeNotRegistered", "gone", {}};
          }
          auto doc = Parse(cur->value, cur->key);
          if (!doc.ok()) {
            return doc.error();
          }
          marked = std::move(*doc);
          if (Str(marked, "status") != "ACTIVE") {
            return std::optional<std::string>(cur->value);
          }
          marked["status"] = "LOST";
          marked["lostAt"] = now;
          return std::optional<std::string>(marked.dump());
        });
    if (!committed.ok()) {
      continue;
    }
    ++lost;
    spdlog::warn("component=scheduler event=node_lost node={} silent_seconds={:.0f}", id,
                 now - seen);
    const std::string reason = "Task stopped because its node " + id + " stopped responding.";
    const Json placed = marked.value("tasks", Json::object());
    for (const auto& [task_id, t] : placed.items()) {
      auto stopped = MutateTask(Str(t, "cluster"), task_id, [&](Json& task) -> Result<bool> {
        if (Str(task, "lastStatus") == "STOPPED") {
          return false;
        }
        MarkStopped(task, "TerminationNotice", reason, now);
        return true;
      });
      if (!stopped.ok() && stopped.error().code != "TaskNotFound") {
        spdlog::warn("component=scheduler event=lost_task_stop_failed task_id={} error=\"{}\"",
                     task_id, stopped.error().message);
      }
    }
  }
  return lost;
}

void StoreTaskManager::StartHousekeeping(std::chrono::milliseconds node_interval,
                                         std::chrono::milliseconds prune_interval) {
  if (housekeeping_.joinable()) {
    return;
  }
  housekeeping_ = std::thread([this, node_interval, prune_interval] {
    auto next_prune = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(housekeeping_mu_);
    while (!stopping_) {
      lock.unlock();
      auto lost = SweepLostNodes();
      if (!lost.ok()) {
        spdlog::warn("component=scheduler event=node_sweep_failed error=\"{}\"",
                     lost.error().message);
      }
      if (std::chrono::steady_clock::now() >= next_prune) {
        auto pruned = PruneStoppedTasks();
        if (!pruned.ok()) {
          spdlog::warn("component=tasks event=prune_failed error=\"{}\"", pruned.error().message);
        }
        next_prune = std::chrono::steady_clock::now() + prune_interval;
      }
      lock.lock();
      housekeeping_cv_.wait_for(lock, node_interval, [this] { return stopping_.load(); });
    }
  });
}

void StoreTaskManager::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(housekeeping_mu_);
    stopping_ = true;
  }
  housekeeping_cv_.notify_all();
  if (housekeeping_.joinable()) {
    housekeeping_.join();
  }
}

}  // namespace berth::ecs
