// SPDX-License-Identifier: Apache-2.0
#include "ecs/agent_protocol.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/ids.h"

namespace berth::ecs {

namespace {

Error Invalid(const std::string& message) { return ClientError("InvalidRequest", message); }

// Reads an optional string member; errors when present with another type.
Result<std::string> Str(const Json& j, const char* key, bool required = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return Invalid(std::string("missing member ") + key);
    }
    return std::string();
  }
  if (!it->is_string()) {
    return Invalid(std::string("member ") + key + " must be a string");
  }
  return it->get<std::string>();
}

Result<std::optional<double>> Num(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return std::optional<double>();
  }
  if (!it->is_number()) {
    return Invalid(std::string("member ") + key + " must be a number");
  }
  return std::optional<double>(it->get<double>());
}

Result<int64_t> Int(const Json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return Invalid(std::string("missing member ") + key);
    }
    return int64_t{0};
  }
  if (!it->is_number_integer()) {
    return Invalid(std::string("member ") + key + " must be an integer");
  }
  return it->get<int64_t>();
}

void PutIf(Json& j, const char* key, const std::string& value) {
  if (!value.empty()) {
    j[key] = value;
  }
}

void PutIf(Json& j, const char* key, const std::optional<double>& value) {
  if (value) {
    j[key] = *value;
  }
}

Json ObjectOr(const Json& j, const char* key, Json fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return fallback;
  }
  return *it;
}

#define BERTH_PROTO_ASSIGN(lhs, expr)         \
  do {                                  \
    auto berth_assign_ = (expr);        \
    if (!berth_assign_.ok()) {          \
      return berth_assign_.error();     \
    }                                   \
    lhs = std::move(*berth_assign_);    \
  } while (false)

}  // namespace

int TaskStatusIndex(const std::string& status) {
  static const std::array<const char*, 8> kOrder = {
      "PROVISIONING", "PENDING",  "ACTIVATING",     "RUNNING",
      "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"};
  for (size_t i = 0; i < kOrder.size(); ++i) {
    if (status == kOrder[i]) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Json NodeRegistration::ToJson() const {
  Json j = {{"nodeId", node_id}, {"cpu", cpu}, {"memory", memory}};
  PutIf(j, "availabilityZone", availability_zone);
  PutIf(j, "address", address);
  if (allocation_factor) {
    j["allocationFactor"] = *allocation_factor;
  }
  return j;
}

Result<NodeRegistration> NodeRegistration::FromJson(const Json& j) {
  if (!j.is_object()) {
    return Invalid("registration must be an object");
  }
  NodeRegistration r;
  BERTH_PROTO_ASSIGN(r.node_id, Str(j, "nodeId", true));
  BERTH_PROTO_ASSIGN(r.cpu, Int(j, "cpu", true));
  BERTH_PROTO_ASSIGN(r.memory, Int(j, "memory", true));
  BERTH_PROTO_ASSIGN(r.availability_zone, Str(j, "availabilityZone"));
  BERTH_PROTO_ASSIGN(r.address, Str(j, "address"));
  BERTH_PROTO_ASSIGN(r.allocation_factor, Num(j, "allocationFactor"));
  if (r.node_id.empty() || r.node_id.size() > 128 ||
      r.node_id.find_first_of("/ \t\r\n") != std::string::npos) {
    return Invalid("nodeId must be 1-128 characters without '/' or spaces");
  }
  if (r.cpu <= 0 || r.memory <= 0) {
    return Invalid("cpu and memory must be positive");
  }
  if (r.allocation_factor && (*r.allocation_factor <= 0 || *r.allocation_factor > 1.0)) {
    return Invalid("allocationFactor must be in (0, 1]");
  }
  return r;
}

Json DesiredTask::ToJson() const {
  return Json{{"taskId", task_id},
              {"taskArn", task_arn},
              {"cluster", cluster},
              {"clusterArn", cluster_arn},
              {"desiredStatus", desired_status},
              {"lastStatus", last_status},
              {"seq", seq},
              {"cpu", cpu},
              {"memory", memory},
              {"availabilityZone", availability_zone},
              {"attachmentId", attachment_id},
              {"service", service},
              {"taskDefinition", task_definition},
              {"overrides", overrides},
              {"networkConfiguration", network_configuration}};
}

Result<DesiredTask> DesiredTask::FromJson(const Json& j) {
  if (!j.is_object()) {
    return Invalid("desired task must be an object");
  }
  DesiredTask t;
  BERTH_PROTO_ASSIGN(t.task_id, Str(j, "taskId", true));
  BERTH_PROTO_ASSIGN(t.task_arn, Str(j, "taskArn"));
  BERTH_PROTO_ASSIGN(t.cluster, Str(j, "cluster", true));
  BERTH_PROTO_ASSIGN(t.cluster_arn, Str(j, "clusterArn"));
  BERTH_PROTO_ASSIGN(t.desired_status, Str(j, "desiredStatus", true));
  BERTH_PROTO_ASSIGN(t.last_status, Str(j, "lastStatus"));
  BERTH_PROTO_ASSIGN(t.seq, Int(j, "seq", false));
  BERTH_PROTO_ASSIGN(t.cpu, Str(j, "cpu"));
  BERTH_PROTO_ASSIGN(t.memory, Str(j, "memory"));
  BERTH_PROTO_ASSIGN(t.availability_zone, Str(j, "availabilityZone"));
  BERTH_PROTO_ASSIGN(t.attachment_id, Str(j, "attachmentId"));
  BERTH_PROTO_ASSIGN(t.service, Str(j, "service"));
  t.task_definition = ObjectOr(j, "taskDefinition", Json::object());
  t.overrides = ObjectOr(j, "overrides", Json::object());
  t.network_configuration = ObjectOr(j, "networkConfiguration", Json::object());
  return t;
}

Json DesiredState::ToJson() const {
  Json list = Json::array();
  for (const auto& t : tasks) {
    list.push_back(t.ToJson());
  }
  Json j = {{"revision", revision}, {"tasks", list}};
  if (retry_after_ms > 0) {
    j["retryAfterMs"] = retry_after_ms;
  }
  return j;
}

Result<DesiredState> DesiredState::FromJson(const Json& j) {
  if (!j.is_object()) {
    return Invalid("desired state must be an object");
  }
  DesiredState s;
  BERTH_PROTO_ASSIGN(s.revision, Int(j, "revision", true));
  BERTH_PROTO_ASSIGN(s.retry_after_ms, Int(j, "retryAfterMs", false));
  auto it = j.find("tasks");
  if (it != j.end() && it->is_array()) {
    for (const auto& t : *it) {
      DesiredTask task;
      BERTH_PROTO_ASSIGN(task, DesiredTask::FromJson(t));
      s.tasks.push_back(std::move(task));
    }
  }
  return s;
}

Json ContainerReport::ToJson() const {
  Json j = {{"name", name}};
  PutIf(j, "lastStatus", last_status);
  if (exit_code) {
    j["exitCode"] = *exit_code;
  }
  PutIf(j, "reason", reason);
  PutIf(j, "healthStatus", health_status);
  PutIf(j, "runtimeId", runtime_id);
  PutIf(j, "imageDigest", image_digest);
  return j;
}

Result<ContainerReport> ContainerReport::FromJson(const Json& j) {
  if (!j.is_object()) {
    return Invalid("container report must be an object");
  }
  ContainerReport c;
  BERTH_PROTO_ASSIGN(c.name, Str(j, "name", true));
  BERTH_PROTO_ASSIGN(c.last_status, Str(j, "lastStatus"));
  BERTH_PROTO_ASSIGN(c.reason, Str(j, "reason"));
  BERTH_PROTO_ASSIGN(c.health_status, Str(j, "healthStatus"));
  BERTH_PROTO_ASSIGN(c.runtime_id, Str(j, "runtimeId"));
  BERTH_PROTO_ASSIGN(c.image_digest, Str(j, "imageDigest"));
  auto code = j.find("exitCode");
  if (code != j.end() && !code->is_null()) {
    if (!code->is_number_integer()) {
      return Invalid("member exitCode must be an integer");
    }
    c.exit_code = code->get<int>();
  }
  if (!c.last_status.empty() && c.last_status != "PENDING" && c.last_status != "RUNNING" &&
      c.last_status != "STOPPED") {
    return Invalid("container lastStatus must be PENDING, RUNNING or STOPPED");
  }
  if (!c.health_status.empty() && c.health_status != "HEALTHY" &&
      c.health_status != "UNHEALTHY" && c.health_status != "UNKNOWN") {
    return Invalid("container healthStatus must be HEALTHY, UNHEALTHY or UNKNOWN");
  }
  return c;
}

Json NetworkReport::ToJson() const {
  Json j = Json::object();
  PutIf(j, "privateIpv4Address", private_ipv4_address);
  PutIf(j, "macAddress", mac_address);
  PutIf(j, "networkInterfaceId", network_interface_id);
  PutIf(j, "privateDnsName", private_dns_name);
  PutIf(j, "subnetGatewayIpv4Address", subnet_gateway_ipv4_address);
  return j;
}

Result<NetworkReport> NetworkReport::FromJson(const Json& j) {
  if (!j.is_object()) {
    return Invalid("network must be an object");
  }
  NetworkReport n;
  BERTH_PROTO_ASSIGN(n.private_ipv4_address, Str(j, "privateIpv4Address"));
  BERTH_PROTO_ASSIGN(n.mac_address, Str(j, "macAddress"));
  BERTH_PROTO_ASSIGN(n.network_interface_id, Str(j, "networkInterfaceId"));
  BERTH_PROTO_ASSIGN(n.private_dns_name, Str(j, "privateDnsName"));
  BERTH_PROTO_ASSIGN(n.subnet_gateway_ipv4_address, Str(j, "subnetGatewayIpv4Address"));
  return n;
}

Json TaskReport::ToJson() const {
  Json j = {{"nodeId", node_id},
            {"cluster", cluster},
            {"taskId", task_id},
            {"seq", seq},
            {"lastStatus", last_status}};
  Json list = Json::array();
  for (const auto& c : containers) {
    list.push_back(c.ToJson());
  }
  j["containers"] = list;
  if (network) {
    j["network"] = network->ToJson();
  }
  PutIf(j, "pullStartedAt", pull_started_at);
  PutIf(j, "pullStoppedAt", pull_stopped_at);
  PutIf(j, "startedAt", started_at);
  PutIf(j, "executionStoppedAt", execution_stopped_at);
  PutIf(j, "stopCode", stop_code);
  PutIf(j, "stoppedReason", stopped_reason);
  return j;
}

Result<TaskReport> TaskReport::FromJson(const Json& j) {
  if (!j.is_object()) {
    return Invalid("report must be an object");
  }
  TaskReport r;
  BERTH_PROTO_ASSIGN(r.node_id, Str(j, "nodeId", true));
  BERTH_PROTO_ASSIGN(r.cluster, Str(j, "cluster", true));
  BERTH_PROTO_ASSIGN(r.task_id, Str(j, "taskId", true));
  BERTH_PROTO_ASSIGN(r.seq, Int(j, "seq", true));
  BERTH_PROTO_ASSIGN(r.last_status, Str(j, "lastStatus", true));
  if (TaskStatusIndex(r.last_status) < 0) {
    return Invalid("unknown lastStatus " + r.last_status);
  }
  if (r.seq <= 0) {
    return Invalid("seq must be positive");
  }
  auto containers = j.find("containers");
  if (containers != j.end() && !containers->is_null()) {
    if (!containers->is_array()) {
      return Invalid("member containers must be a list");
    }
    for (const auto& c : *containers) {
      ContainerReport report;
      BERTH_PROTO_ASSIGN(report, ContainerReport::FromJson(c));
      r.containers.push_back(std::move(report));
    }
  }
  auto network = j.find("network");
  if (network != j.end() && !network->is_null()) {
    NetworkReport n;
    BERTH_PROTO_ASSIGN(n, NetworkReport::FromJson(*network));
    r.network = std::move(n);
  }
  BERTH_PROTO_ASSIGN(r.pull_started_at, Num(j, "pullStartedAt"));
  BERTH_PROTO_ASSIGN(r.pull_stopped_at, Num(j, "pullStoppedAt"));
  BERTH_PROTO_ASSIGN(r.started_at, Num(j, "startedAt"));
  BERTH_PROTO_ASSIGN(r.execution_stopped_at, Num(j, "executionStoppedAt"));
  BERTH_PROTO_ASSIGN(r.stop_code, Str(j, "stopCode"));
  BERTH_PROTO_ASSIGN(r.stopped_reason, Str(j, "stoppedReason"));
  return r;
}

Result<std::string> EnsureNodeToken(const std::string& data_dir) {
  const std::string path = data_dir + "/node-token";
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string token = text.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) {
      token.pop_back();
    }
    if (!token.empty()) {
      return token;
    }
  }
  std::string token = RandomHex(32);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ServerError("create " + path + ": " + std::strerror(errno));
  }
  std::string line = token + "\n";
  ssize_t wrote = ::write(fd, line.data(), line.size());
  int sync = ::fsync(fd);
  ::close(fd);
  if (wrote != static_cast<ssize_t>(line.size()) || sync != 0) {
    return ServerError("write " + path + ": " + std::strerror(errno));
  }
  ::chmod(path.c_str(), 0600);
  return token;
}

#undef BERTH_PROTO_ASSIGN

}  // namespace berth::ecs
