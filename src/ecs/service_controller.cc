// SPDX-License-Identifier: Apache-2.0
#include "ecs/service_controller.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "common/time_util.h"

namespace berth::ecs {

namespace {

constexpr int kMaxCommitAttempts = 20;
constexpr int kMaxTasksPerStart = 10;

const char kHealthCheckFailed[] = "Task failed container health checks";

std::string TaskId(const Json& task) {
  std::string arn = task.value("taskArn", "");
  size_t slash = arn.rfind('/');
  return slash == std::string::npos ? arn : arn.substr(slash + 1);
}

double NumberOr(const Json& doc, const char* key, double fallback) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_number()) {
    return fallback;
  }
  return it->get<double>();
}

int IntOr(const Json& doc, const char* key, int fallback) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_number()) {
    return fallback;
  }
  return it->get<int>();
}

std::string StringOr(const Json& doc, const char* key, const std::string& fallback = "") {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) {
    return fallback;
  }
  return it->get<std::string>();
}

// True when a task definition has a container health check whose result
// decides the task's health: one on an essential container.
bool HasEssentialHealthCheck(const Json& task_definition) {
  for (const auto& c : task_definition.value("containerDefinitions", Json::array())) {
    if (c.value("essential", true) && c.contains("healthCheck")) {
      return true;
    }
  }
  return false;
}

// A task stopped for a reason that counts against its deployment: it failed
// to start, an essential container exited, or it failed its health checks.
// Stops by the scheduler itself and by users do not count.
bool IsFailedTask(const Json& task) {
  if (StringOr(task, "desiredStatus") != "STOPPED") {
    return false;
  }
  std::string code = StringOr(task, "stopCode");
  if (code == "TaskFailedToStart" || code == "EssentialContainerExited") {
    return true;
  }
  if (code == "ServiceSchedulerInitiated") {
    return StringOr(task, "stoppedReason").rfind("Task failed", 0) == 0;
  }
  return false;
}

std::string TaskList(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) {
    if (!out.empty()) {
      out += " ";
    }
    out += "(task " + id + ")";
  }
  return out;
}

// One task as a pass sees it.
struct TaskView {
  const Json* doc = nullptr;
  std::string id;
  std::string deployment;
  bool active = false;   // desiredStatus is not STOPPED
  bool running = false;  // lastStatus RUNNING
  bool pending = false;  // active and not yet RUNNING
  bool stopped = false;  // lastStatus STOPPED
  bool healthy = false;  // running, active, healthy when health is checked, and its
                         // targets healthy when behind a load balancer
  bool unhealthy = false;
  double created_at = 0;
  double started_at = 0;
};

// Everything one pass over one service decides and does.
class ServicePass {
 public:
  ServicePass(const std::string& cluster, Json service, std::vector<Json> tasks,
              TaskManager& manager, const ServiceControllerOptions& options, double now)
      : cluster_(cluster),
        svc_(std::move(service)),
        tasks_(std::move(tasks)),
        manager_(manager),
        options_(options),
        now_(now) {
    name_ = StringOr(svc_, "serviceName");
  }

  // Runs the pass; returns the new service document (nullopt: delete it).
  std::optional<Json> Run();

  // Events written by this pass, oldest first.
  const std::vector<std::string>& events() const { return events_; }

 private:
  Json* Primary();
  Json* Deployment(const std::string& id);
  void Classify();
  void AccountFailures();
  void ApplyCircuitBreaker();
  void Rollback(Json& failed);
  void StopUnhealthy();
  void ScalePrimary();
  void StartTasks(Json& deployment, int count);
  void Backoff(const std::string& event);
  void DrainOldTasks();
  void ReportStuck();
  bool Converged();
  void Complete();
  void UpdateCounts();
  void StopTasks(std::vector<TaskView*> victims, const std::string& reason);
  void Event(const std::string& message) { events_.push_back(message); }
  std::string Prefix() const { return "(service " + name_ + ")"; }

  std::string cluster_;
  std::string name_;
  Json svc_;
  std::vector<Json> tasks_;
  TaskManager& manager_;
  const ServiceControllerOptions& options_;
  double now_;
  std::vector<TaskView> views_;
  std::vector<std::string> events_;
  int started_ = 0;
  int stopped_ = 0;
};

Json* ServicePass::Primary() {
  for (auto& d : svc_["deployments"]) {
    if (d.value("status", "") == "PRIMARY") {
      return &d;
    }
  }
  return nullptr;
}

Json* ServicePass::Deployment(const std::string& id) {
  for (auto& d : svc_["deployments"]) {
    if (d.value("id", "") == id) {
      return &d;
    }
  }
  return nullptr;
}

void ServicePass::Classify() {
  std::map<std::string, bool> needs_health;
  for (const auto& d : svc_["deployments"]) {
    needs_health[d.value("id", "")] =
        HasEssentialHealthCheck(d.value("_taskDefinition", Json::object()));
  }
  views_.clear();
  views_.reserve(tasks_.size());
  for (const auto& t : tasks_) {
    TaskView v;
    v.doc = &t;
    v.id = TaskId(t);
    v.deployment = StringOr(t, "_deployment");
    std::string last = StringOr(t, "lastStatus");
    v.active = StringOr(t, "desiredStatus") != "STOPPED";
    v.running = last == "RUNNING";
    v.stopped = last == "STOPPED";
    v.pending = v.active && !v.running && !v.stopped &&
                (last == "PROVISIONING" || last == "PENDING" || last == "ACTIVATING" ||
                 last.empty());
    std::string health = StringOr(t, "healthStatus", "UNKNOWN");
    v.unhealthy = v.running && v.active && health == "UNHEALTHY";
    bool checked = needs_health.count(v.deployment) ? needs_health[v.deployment] : false;
    v.healthy = v.running && v.active && !v.unhealthy && (!checked || health == "HEALTHY");
    // Behind a load balancer a task is healthy once its targets pass the
    // load balancer's health checks too, as AWS's rolling update waits for.
    const Json lbs = t.value("_loadBalancers", Json::array());
    if (lbs.is_array() && !lbs.empty() && !t.value("_targetsHealthy", false)) {
      v.healthy = false;
    }
    v.created_at = NumberOr(t, "createdAt", 0);
    v.started_at = NumberOr(t, "startedAt", 0);
    views_.push_back(std::move(v));
  }
}

// Counts newly stopped failed tasks into their deployment's failedTasks and
// the service's run of launch failures. `_failedSeen` keeps the count exact
// across passes and restarts; ids of pruned tasks leave it.
void ServicePass::AccountFailures() {
  std::set<std::string> present;
  for (const auto& v : views_) {
    present.insert(v.id);
  }
  for (auto& d : svc_["deployments"]) {
    Json seen = Json::array();
    for (const auto& id : d.value("_failedSeen", Json::array())) {
      if (present.count(id.get<std::string>())) {
        seen.push_back(id);
      }
    }
    d["_failedSeen"] = seen;
  }

  Json* primary = Primary();
  for (const auto& v : views_) {
    if (!IsFailedTask(*v.doc)) {
      continue;
    }
    Json* d = Deployment(v.deployment);
    if (d == nullptr) {
      continue;
    }
    auto& seen = (*d)["_failedSeen"];
    if (std::find(seen.begin(), seen.end(), v.id) != seen.end()) {
      continue;
    }
    seen.push_back(v.id);
    (*d)["failedTasks"] = IntOr(*d, "failedTasks", 0) + 1;
    (*d)["updatedAt"] = now_;
    int failures = IntOr(svc_, "_launchFailures", 0) + 1;
    svc_["_launchFailures"] = failures;
    if (failures >= options_.launch_failures_before_backoff) {
      Backoff(failures == options_.launch_failures_before_backoff
                  ? Prefix() + " is unable to consistently start tasks successfully."
                  : "");
    }
  }

  // A task of the PRIMARY deployment that stays healthy for a while ends a run
  // of failures; one that is up for a moment before crashing does not.
  if (primary != nullptr && IntOr(svc_, "_launchFailures", 0) > 0) {
    std::string id = primary->value("id", "");
    for (const auto& v : views_) {
      if (v.deployment == id && v.healthy && now_ - v.started_at >= options_.stable_seconds) {
        svc_["_launchFailures"] = 0;
        break;
      }
    }
  }
}

void ServicePass::ApplyCircuitBreaker() {
  Json* primary = Primary();
  if (primary == nullptr || primary->value("rolloutState", "") != "IN_PROGRESS") {
    return;
  }
  Json breaker = svc_.value("deploymentConfiguration", Json::object())
                     .value("deploymentCircuitBreaker", Json::object());
  if (!breaker.value("enable", false)) {
    return;
  }
  int threshold = CircuitBreakerThreshold(svc_.value("desiredCount", 0));
  if (IntOr(*primary, "failedTasks", 0) < threshold) {
    return;
  }
  std::string id = primary->value("id", "");
  (*primary)["rolloutState"] = "FAILED";
  (*primary)["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start.";
  (*primary)["updatedAt"] = now_;
  Event(Prefix() + " (deployment " + id + ") deployment failed: tasks failed to start.");
  spdlog::info("event=deployment_failed service={} cluster={} deployment={} failed_tasks={}",
               name_, cluster_, id, IntOr(*primary, "failedTasks", 0));
  if (breaker.value("rollback", false)) {
    Rollback(*primary);
  }
}

// Makes the last COMPLETED deployment PRIMARY again, with the id it had; the
// failed deployment becomes ACTIVE and drains like any older deployment.
void ServicePass::Rollback(Json& failed) {
  if (!svc_.contains("_lastCompleted")) {
    return;
  }
  Json target = svc_["_lastCompleted"];
  std::string target_id = target.value("id", "");
  if (target_id.empty() || target_id == failed.value("id", "")) {
    return;
  }
  failed["status"] = "ACTIVE";

  Json* existing = Deployment(target_id);
  Json rolled = existing != nullptr ? *existing : target;
  rolled["status"] = "PRIMARY";
  rolled["desiredCount"] = svc_.value("desiredCount", 0);
  rolled["failedTasks"] = 0;
  rolled["_failedSeen"] = Json::array();
  rolled.erase("_stuckReported");
  rolled["rolloutState"] = "IN_PROGRESS";
  rolled["rolloutStateReason"] =
      "ECS deployment circuit breaker: rolling back to deploymentId " + target_id + ".";
  rolled["updatedAt"] = now_;
  if (!rolled.contains("runningCount")) {
    rolled["runningCount"] = 0;
    rolled["pendingCount"] = 0;
  }

  Json deployments = Json::array({rolled});
  for (auto& d : svc_["deployments"]) {
    if (d.value("id", "") != target_id) {
      deployments.push_back(d);
    }
  }
  svc_["deployments"] = deployments;
  svc_["taskDefinition"] = rolled.value("taskDefinition", "");
  svc_["_steady"] = false;
  svc_["_launchFailures"] = 0;
  svc_.erase("_backoffUntil");
  svc_.erase("_backoffAttempts");
  Event(Prefix() + " rolling back to deployment " + target_id + ".");
  spdlog::info("event=deployment_rolled_back service={} cluster={} to={}", name_, cluster_,
               target_id);
}

void ServicePass::StopUnhealthy() {
  double grace = NumberOr(svc_, "healthCheckGracePeriodSeconds", 0);
  std::vector<TaskView*> victims;
  for (auto& v : views_) {
    if (v.unhealthy && now_ - v.started_at >= grace) {
      victims.push_back(&v);
    }
  }
  for (auto* v : victims) {
    Event(Prefix() + " (task " + v->id + ") failed container health checks.");
  }
  StopTasks(victims, kHealthCheckFailed);
}

void ServicePass::StopTasks(std::vector<TaskView*> victims, const std::string& reason) {
  std::vector<std::string> running;
  std::vector<std::string> pending;
  for (auto* v : victims) {
    auto stopped = manager_.StopTask(cluster_, v->id, "ServiceSchedulerInitiated", reason);
    if (!stopped.ok()) {
      spdlog::warn("event=service_task_stop_failed service={} cluster={} task={} error={}",
                   name_, cluster_, v->id, stopped.error().message);
      continue;
    }
    (v->running ? running : pending).push_back(v->id);
    v->active = false;
    v->healthy = false;
    v->unhealthy = false;
    v->pending = false;
    ++stopped_;
  }
  if (!running.empty()) {
    Event(Prefix() + " has stopped " + std::to_string(running.size()) +
          " running tasks: " + TaskList(running) + ".");
  }
  if (!pending.empty()) {
    Event(Prefix() + " has stopped " + std::to_string(pending.size()) +
          " pending tasks: " + TaskList(pending) + ".");
  }
  if (!running.empty() || !pending.empty()) {
    svc_["_steady"] = false;
    spdlog::info("event=service_tasks_stopped service={} cluster={} count={} reason=\"{}\"",
                 name_, cluster_, running.size() + pending.size(), reason);
  }
}

void ServicePass::Backoff(const std::string& event) {
  int attempts = IntOr(svc_, "_backoffAttempts", 0) + 1;
  double delay = std::min(options_.backoff_max_seconds,
                          options_.backoff_base_seconds * std::pow(2.0, attempts - 1));
  svc_["_backoffAttempts"] = attempts;
  svc_["_backoffUntil"] = now_ + delay;
  if (!event.empty() && attempts == 1) {
    Event(event);
  }
}

// The capacity provider a strategy puts the next task on: the one with a base
// first, else the one with the most weight.
std::string PickCapacityProvider(const Json& strategy) {
  std::string best;
  int best_weight = -1;
  for (const auto& item : strategy) {
    std::string name = item.value("capacityProvider", "");
    if (item.value("base", 0) > 0) {
      return name;
    }
    if (item.value("weight", 0) > best_weight) {
      best_weight = item.value("weight", 0);
      best = name;
    }
  }
  return best;
}

void ServicePass::StartTasks(Json& deployment, int count) {
  std::string launch_type = deployment.contains("capacityProviderStrategy")
                                ? "FARGATE"
                                : deployment.value("launchType", "FARGATE");
  if (launch_type != "FARGATE") {
    // LIMITATION: berth runs Fargate tasks only; EC2 and EXTERNAL services have
    // no container instances to run on, as on an AWS cluster without any.
    Backoff(Prefix() +
            " was unable to place a task because no container instance met all of its "
            "requirements. Reason: No Container Instances were found in your cluster. For "
            "more information, see the Troubleshooting section of the Amazon ECS Developer "
            "Guide.");
    return;
  }

  StartTasksRequest request;
  request.cluster = cluster_;
  request.task_definition = deployment.value("_taskDefinition", Json::object());
  Json definition_tags = request.task_definition.value("_tags", Json::array());
  request.task_definition.erase("_tags");
  if (deployment.contains("capacityProviderStrategy")) {
    request.capacity_provider = PickCapacityProvider(deployment["capacityProviderStrategy"]);
  }
  request.network_configuration = deployment.value("networkConfiguration", Json::object());
  request.started_by = deployment.value("id", "");
  request.group = "service:" + name_;
  request.launch_type = "FARGATE";
  request.platform_version = deployment.value("platformVersion", "1.4.0");
  request.enable_execute_command = svc_.value("enableExecuteCommand", false);
  request.service = name_;
  request.deployment_id = deployment.value("id", "");
  request.load_balancers = svc_.value("loadBalancers", Json::array());
  Json tags = Json::array();
  std::string propagate = svc_.value("propagateTags", "NONE");
  if (propagate == "SERVICE") {
    tags = svc_.value("tags", Json::array());
  } else if (propagate == "TASK_DEFINITION") {
    tags = definition_tags;
  }
  if (svc_.value("enableECSManagedTags", false)) {
    tags.push_back({{"key", "aws:ecs:serviceName"}, {"value", name_}});
    tags.push_back({{"key", "aws:ecs:clusterName"}, {"value", cluster_}});
  }
  request.tags = tags;

  std::vector<std::string> started;
  bool placement_failed = false;
  while (count > 0) {
    request.count = std::min(count, kMaxTasksPerStart);
    count -= request.count;
    auto result = manager_.StartTasks(request);
    if (!result.ok()) {
      spdlog::warn("event=service_task_start_failed service={} cluster={} error={}", name_,
                   cluster_, result.error().message);
      placement_failed = true;
      break;
    }
    for (const auto& t : result->tasks) {
      started.push_back(TaskId(t));
    }
    if (!result->failures.empty()) {
      placement_failed = true;
      break;
    }
  }
  if (!started.empty()) {
    started_ += static_cast<int>(started.size());
    svc_["_steady"] = false;
    Event(Prefix() + " has started " + std::to_string(started.size()) +
          " tasks: " + TaskList(started) + ".");
    spdlog::info("event=service_tasks_started service={} cluster={} deployment={} count={}",
                 name_, cluster_, request.deployment_id, started.size());
  }
  if (placement_failed) {
    Backoff(Prefix() +
            " was unable to place a task. Reason: Capacity is unavailable at this time. Please "
            "try again later or in a different availability zone. For more information, see "
            "the Troubleshooting section of the Amazon ECS Developer Guide.");
  } else if (IntOr(svc_, "_launchFailures", 0) < options_.launch_failures_before_backoff) {
    svc_.erase("_backoffAttempts");
    svc_.erase("_backoffUntil");
  }
}

void ServicePass::ScalePrimary() {
  Json* primary = Primary();
  if (primary == nullptr) {
    return;
  }
  bool draining = svc_.value("status", "") != "ACTIVE";
  int desired = draining ? 0 : svc_.value("desiredCount", 0);
  std::string id = primary->value("id", "");

  std::vector<TaskView*> mine;
  int in_flight = 0;
  for (auto& v : views_) {
    if (!v.stopped) {
      ++in_flight;
    }
    if (v.active && v.deployment == id) {
      mine.push_back(&v);
    }
  }

  // Too many: stop the ones that help least first (pending, unhealthy, newest).
  if (static_cast<int>(mine.size()) > desired) {
    std::stable_sort(mine.begin(), mine.end(), [](const TaskView* a, const TaskView* b) {
      if (a->healthy != b->healthy) {
        return !a->healthy;
      }
      if (a->running != b->running) {
        return !a->running;
      }
      return a->created_at > b->created_at;
    });
    std::vector<TaskView*> extra(mine.begin(), mine.begin() + (mine.size() - desired));
    StopTasks(extra, "Scaling activity initiated by (deployment " + id + ")");
    return;
  }

  int need = desired - static_cast<int>(mine.size());
  if (need <= 0 || primary->value("rolloutState", "") == "FAILED") {
    return;
  }
  const Json& config = svc_.value("deploymentConfiguration", Json::object());
  int ceiling = MaxTasksDuringDeployment(desired, IntOr(config, "maximumPercent", 200));
  int room = ceiling - in_flight;
  if (room <= 0) {
    return;
  }
  if (now_ < NumberOr(svc_, "_backoffUntil", 0)) {
    return;
  }
  StartTasks(*primary, std::min(need, room));
}

// Stops tasks of older deployments (and, when DRAINING, every task) while the
// healthy tasks left stay at or above minimumHealthyPercent of desiredCount.
// Tasks that are not healthy may always go.
void ServicePass::DrainOldTasks() {
  Json* primary = Primary();
  std::string primary_id = primary != nullptr ? primary->value("id", "") : "";
  bool draining = svc_.value("status", "") != "ACTIVE";
  int desired = draining ? 0 : svc_.value("desiredCount", 0);
  const Json& config = svc_.value("deploymentConfiguration", Json::object());
  int floor = MinHealthyTasks(desired, IntOr(config, "minimumHealthyPercent", 100));

  int healthy = 0;
  std::vector<TaskView*> old;
  for (auto& v : views_) {
    if (!v.active) {
      continue;
    }
    if (v.healthy) {
      ++healthy;
    }
    if (draining || v.deployment != primary_id) {
      old.push_back(&v);
    }
  }
  if (old.empty()) {
    return;
  }
  std::stable_sort(old.begin(), old.end(), [](const TaskView* a, const TaskView* b) {
    if (a->healthy != b->healthy) {
      return !a->healthy;
    }
    return a->created_at < b->created_at;
  });
  std::vector<TaskView*> victims;
  for (auto* v : old) {
    if (v->healthy) {
      if (!draining && healthy - 1 < floor) {
        break;
      }
      --healthy;
    }
    victims.push_back(v);
  }
  StopTasks(victims, "Scaling activity initiated by (deployment " + primary_id + ")");
}

// The PRIMARY deployment is done when every task that is not STOPPED is one of
// its tasks, healthy, and there are exactly desiredCount of them.
bool ServicePass::Converged() {
  Json* primary = Primary();
  if (primary == nullptr || svc_.value("status", "") != "ACTIVE") {
    return false;
  }
  std::string id = primary->value("id", "");
  int healthy = 0;
  for (const auto& v : views_) {
    if (v.stopped) {
      continue;
    }
    if (v.deployment != id || !v.healthy) {
      return false;
    }
    ++healthy;
  }
  return healthy == svc_.value("desiredCount", 0);
}

void ServicePass::Complete() {
  Json* primary = Primary();
  std::string id = primary->value("id", "");
  (*primary)["rolloutState"] = "COMPLETED";
  (*primary)["rolloutStateReason"] = "ECS deployment " + id + " completed.";
  (*primary)["updatedAt"] = now_;
  primary->erase("_stuckReported");
  Json snapshot = *primary;
  snapshot.erase("_failedSeen");
  svc_["_lastCompleted"] = snapshot;
  svc_["deployments"] = Json::array({*primary});
  Event(Prefix() + " (deployment " + id + ") deployment completed.");
  spdlog::info("event=deployment_completed service={} cluster={} deployment={}", name_, cluster_,
               id);
}

// A deployment that can neither start nor stop a task because of its
// percentages (for example 100/100) says so once.
void ServicePass::ReportStuck() {
  Json* primary = Primary();
  if (primary == nullptr || primary->value("rolloutState", "") != "IN_PROGRESS" ||
      primary->value("_stuckReported", false) || started_ > 0 || stopped_ > 0 ||
      svc_.value("status", "") != "ACTIVE" || now_ < NumberOr(svc_, "_backoffUntil", 0)) {
    return;
  }
  for (const auto& v : views_) {
    if (!v.stopped && !(v.active && v.running)) {
      return;  // something is still starting or stopping
    }
  }
  std::string id = primary->value("id", "");
  bool has_old = false;
  int mine = 0;
  for (const auto& v : views_) {
    if (v.active && v.deployment != id) {
      has_old = true;
    }
    if (v.active && v.deployment == id) {
      ++mine;
    }
  }
  if (!has_old || mine >= svc_.value("desiredCount", 0)) {
    return;
  }
  (*primary)["_stuckReported"] = true;
  Event("(service " + name_ +
        ") was unable to stop or start tasks during a deployment because of the service "
        "deployment configuration. Update the minimumHealthyPercent or maximumPercent value "
        "and try again.");
}

void ServicePass::UpdateCounts() {
  int running = 0;
  int pending = 0;
  std::map<std::string, std::pair<int, int>> per;  // id -> (running, pending)
  std::map<std::string, int> active;
  for (const auto& v : views_) {
    if (v.running) {
      ++running;
      ++per[v.deployment].first;
    }
    if (v.pending) {
      ++pending;
      ++per[v.deployment].second;
    }
    if (v.active) {
      ++active[v.deployment];
    }
  }
  svc_["runningCount"] = running;
  svc_["pendingCount"] = pending;
  bool draining = svc_.value("status", "") != "ACTIVE";
  for (auto& d : svc_["deployments"]) {
    std::string id = d.value("id", "");
    int desired = d.value("status", "") == "PRIMARY"
                      ? (draining ? 0 : svc_.value("desiredCount", 0))
                      : active[id];
    auto counts = per[id];
    if (IntOr(d, "runningCount", -1) != counts.first ||
        IntOr(d, "pendingCount", -1) != counts.second || IntOr(d, "desiredCount", -1) != desired) {
      d["runningCount"] = counts.first;
      d["pendingCount"] = counts.second;
      d["desiredCount"] = desired;
      d["updatedAt"] = now_;
    }
  }
}

std::optional<Json> ServicePass::Run() {
  std::string status = svc_.value("status", "");
  if (status == "INACTIVE") {
    double since = NumberOr(svc_, "_inactiveAt", now_);
    if (now_ - since >= options_.inactive_retention_seconds) {
      return std::nullopt;
    }
    return svc_;
  }
  if (!svc_.contains("deployments") || !svc_["deployments"].is_array()) {
    svc_["deployments"] = Json::array();
  }

  Classify();
  AccountFailures();
  ApplyCircuitBreaker();
  if (status == "ACTIVE") {
    StopUnhealthy();
  }
  ScalePrimary();
  DrainOldTasks();
  ReportStuck();
  UpdateCounts();

  if (status == "DRAINING") {
    bool gone = std::all_of(views_.begin(), views_.end(),
                            [](const TaskView& v) { return v.stopped; });
    if (gone) {
      svc_["status"] = "INACTIVE";
      svc_["_inactiveAt"] = now_;
      Json* primary = Primary();
      svc_["deployments"] = primary != nullptr ? Json::array({*primary}) : Json::array();
      spdlog::info("event=service_inactive service={} cluster={}", name_, cluster_);
    }
    return svc_;
  }

  if (started_ == 0 && stopped_ == 0 && Converged()) {
    Json* primary = Primary();
    if (primary->value("rolloutState", "") == "IN_PROGRESS") {
      Complete();  // rewrites deployments[]
      primary = Primary();
      svc_["_steady"] = false;
    }
    if (primary->value("rolloutState", "") == "COMPLETED" && !svc_.value("_steady", false)) {
      svc_["_steady"] = true;
      Event(Prefix() + " has reached a steady state.");
    }
  }
  return svc_;
}

}  // namespace

ServiceController::ServiceController(store::Store& store, TaskManager& tasks,
                                     ServiceControllerOptions options, Clock clock)
    : store_(store), tasks_(tasks), options_(options), clock_(std::move(clock)) {
  if (!clock_) {
    clock_ = [] { return NowEpochSeconds(); };
  }
}

ServiceController::~ServiceController() { Stop(); }

void ServiceController::Start() {
  if (thread_.joinable()) {
    return;
  }
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void ServiceController::Stop() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

namespace {

// The service a store change concerns: a service document, or a task of a
// service. Other changes (nodes, indexes, tasks of no service) concern none.
std::optional<std::pair<std::string, std::string>> ServiceOfChange(const store::Event& event) {
  const std::string tasks_prefix = "ecs/tasks/";
  auto split = [](const std::string& rest) -> std::optional<std::pair<std::string, std::string>> {
    size_t slash = rest.find('/');
    if (slash == std::string::npos) {
      return std::nullopt;
    }
    return std::make_pair(rest.substr(0, slash), rest.substr(slash + 1));
  };
  if (event.key.rfind(kServicesPrefix, 0) == 0) {
    return split(event.key.substr(kServicesPrefix.size()));
  }
  if (event.key.rfind(tasks_prefix, 0) != 0 || event.kind != store::Event::Kind::kPut) {
    return std::nullopt;
  }
  auto where = split(event.key.substr(tasks_prefix.size()));
  if (!where) {
    return std::nullopt;
  }
  Json task = Json::parse(event.value, nullptr, false);
  if (!task.is_object()) {
    return std::nullopt;
  }
  std::string service = StringOr(task, "_service");
  if (service.empty()) {
    return std::nullopt;
  }
  return std::make_pair(where->first, service);
}

}  // namespace

// Every tick a full pass over all services; in between, as changes arrive,
// passes over just the services they concern.
void ServiceController::Run() {
  spdlog::info("event=service_controller_started");
  using Clock = std::chrono::steady_clock;
  int64_t seen = 0;
  auto next_full = Clock::now();
  std::set<std::pair<std::string, std::string>> dirty;
  while (!stop_) {
    if (Clock::now() >= next_full) {
      // Taken before the pass, so a write during the pass wakes the next one.
      seen = store_.Revision();
      dirty.clear();
      auto pass = ReconcileAll();
      if (!pass.ok()) {
        spdlog::warn("event=service_pass_failed error={}", pass.error().message);
      }
      next_full = Clock::now() + options_.tick;
    } else {
      for (const auto& [cluster, name] : dirty) {
        auto pass = ReconcileService(cluster, name);
        if (!pass.ok()) {
          spdlog::warn("event=service_reconcile_failed service={} cluster={} error={}", name,
                       cluster, pass.error().message);
        }
      }
      dirty.clear();
    }
    if (stop_) {
      break;
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_full - Clock::now());
    auto changes = store_.Changes(seen, "ecs/", std::max(wait, std::chrono::milliseconds(0)));
    if (!changes.ok()) {
      if (changes.error().code != "StoreCompacted") {
        std::this_thread::sleep_for(options_.tick);
      }
      next_full = Clock::now();
      continue;
    }
    for (const auto& event : *changes) {
      seen = std::max(seen, event.revision);
      if (auto service = ServiceOfChange(event)) {
        dirty.insert(*service);
      }
    }
  }
  spdlog::info("event=service_controller_stopped");
}

Status ServiceController::ReconcileAll() {
  std::vector<std::pair<std::string, std::string>> services;
  std::string cursor;
  while (true) {
    auto page = store_.List(kServicesPrefix, cursor, 500);
    if (!page.ok()) {
      return page.error();
    }
    for (const auto& e : *page) {
      cursor = e.key;
      std::string rest = e.key.substr(kServicesPrefix.size());
      size_t slash = rest.find('/');
      if (slash != std::string::npos) {
        services.emplace_back(rest.substr(0, slash), rest.substr(slash + 1));
      }
    }
    if (page->size() < 500) {
      break;
    }
  }
  Status first;
  for (const auto& [cluster, name] : services) {
    if (stop_) {
      break;
    }
    auto done = ReconcileService(cluster, name);
    if (!done.ok()) {
      spdlog::warn("event=service_reconcile_failed service={} cluster={} error={}", name, cluster,
                   done.error().message);
      if (first.ok()) {
        first = done;
      }
    }
  }
  return first;
}

Status ServiceController::ReconcileService(const std::string& cluster, const std::string& name) {
  std::string key = ServiceKey(cluster, name);
  // Events of attempts that lost a race: their tasks were started or stopped,
  // so the events are kept even though the rest of that attempt is redone.
  std::vector<std::string> carried;
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    auto entry = store_.Get(key);
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      return Ok();
    }
    Json service;
    try {
      service = Json::parse((*entry)->value);
    } catch (const Json::exception& e) {
      return ServerError("service " + key + ": " + e.what());
    }

    std::vector<Json> tasks;
    if (service.value("status", "") != "INACTIVE") {
      TaskFilter filter;
      filter.cluster = cluster;
      filter.service = name;
      auto found = tasks_.FindTasks(filter);
      if (!found.ok()) {
        return found.error();
      }
      tasks = std::move(found.value());
    }

    double now = clock_();
    ServicePass pass(cluster, service, std::move(tasks), tasks_, options_, now);
    std::optional<Json> next = pass.Run();
    carried.insert(carried.end(), pass.events().begin(), pass.events().end());
    if (next) {
      for (const auto& message : carried) {
        AddServiceEvent(*next, message, now);
      }
      if (*next == service) {
        return Ok();
      }
    }

    store::Txn txn;
    txn.IfRevision(key, (*entry)->mod_revision);
    if (next) {
      txn.Put(key, next->dump());
    } else {
      txn.Delete(key);
    }
    auto committed = store_.Commit(txn);
    if (committed.ok()) {
      return Ok();
    }
    if (committed.error().code != store::kConflict) {
      return committed.error();
    }
  }
  return ServerError("service " + key + ": still conflicting after " +
                     std::to_string(kMaxCommitAttempts) + " attempts");
}

}  // namespace berth::ecs
