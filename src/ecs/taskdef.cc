// SPDX-License-Identifier: Apache-2.0
//
// Error texts: where AWS's own wording is known from its responses (the Fargate network mode,
// cpu/memory, size table, execution role, awslogs stream prefix, port mapping, dependency,
// health check retries, essential container, family and container name messages) it is used
// verbatim, quirks included. Rules whose AWS wording is not known reuse the phrasing AWS uses
// for the neighbouring rule, so clients that match on prefixes still behave.
#include "ecs/taskdef.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace berth::ecs {
namespace {

// ---------------------------------------------------------------------------------------------
// Small helpers over the request JSON. The front has checked member types against the model,
// so a present member has the model's JSON type; null counts as absent.

Error Client(std::string message) {
  return ClientError("ClientException", std::move(message));
}

Error InvalidParameter(std::string message) {
  return ClientError("InvalidParameterException", std::move(message));
}

const Json* Find(const Json& object, const char* key) {
  if (!object.is_object()) {
    return nullptr;
  }
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

std::optional<int64_t> IntOf(const Json& object, const char* key) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_number_integer()) {
    return std::nullopt;
  }
  return value->get<int64_t>();
}

std::string StringOf(const Json& object, const char* key) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_string()) {
    return "";
  }
  return value->get<std::string>();
}

bool HasString(const Json& object, const char* key) {
  return !StringOf(object, key).empty();
}

bool BoolOf(const Json& object, const char* key, bool fallback) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_boolean()) {
    return fallback;
  }
  return value->get<bool>();
}

// A list member that is present and has at least one element.
bool NonEmptyList(const Json& object, const char* key) {
  const Json* value = Find(object, key);
  return value != nullptr && value->is_array() && !value->empty();
}

const Json& ListOf(const Json& object, const char* key) {
  static const Json kEmpty = Json::array();
  const Json* value = Find(object, key);
  return value != nullptr && value->is_array() ? *value : kEmpty;
}

bool Contains(const Json& list, std::string_view item) {
  if (!list.is_array()) {
    return false;
  }
  return std::any_of(list.begin(), list.end(),
                     [&](const Json& v) { return v.is_string() && v.get<std::string>() == item; });
}

// Family and container names: 1 to 255 letters, digits, hyphens and underscores.
bool IsResourceName(const std::string& name) {
  if (name.empty() || name.size() > 255) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_';
  });
}

// Private ECR images need the execution role on Fargate; the registry host names the service.
bool IsEcrImage(const std::string& image) {
  static const std::regex kEcr(
      R"(^[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/.+)");
  return std::regex_match(image, kEcr);
}

std::string Quoted(const std::string& name) {
  return "'" + name + "'";
}

// ---------------------------------------------------------------------------------------------
// Task size parsing.

struct Unit {
  std::string_view name;
  int64_t scale;
};

// Parses "<decimal>[ ]<unit>" (unit matched without regard to case) or a bare integer, and
// returns the value times the unit's scale when that is a positive whole number.
std::optional<int64_t> ParseScaled(std::string_view text, const std::vector<Unit>& units) {
  auto is_space = [](char ch) {
    return std::isspace(static_cast<unsigned char>(ch)) != 0;
  };
  while (!text.empty() && is_space(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && is_space(text.back())) {
    text.remove_suffix(1);
  }

  int64_t numerator = 0;
  int64_t denominator = 1;
  bool seen_digit = false;
  bool seen_point = false;
  size_t i = 0;
  for (; i < text.size(); ++i) {
    char ch = text[i];
    if (ch == '.' && !seen_point) {
      seen_point = true;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(ch)) == 0) {
      break;
    }
    if (numerator > INT_MAX || denominator > 1000000) {
      return std::nullopt;
    }
    seen_digit = true;
    numerator = numerator * 10 + (ch - '0');
    if (seen_point) {
      denominator *= 10;
    }
  }
  if (!seen_digit) {
    return std::nullopt;
  }

  std::string unit;
  for (std::string_view rest = text.substr(i); char ch : rest) {
    if (!is_space(ch) || !unit.empty()) {
      unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    }
  }
  int64_t scale = 0;
  if (unit.empty()) {
    scale = seen_point ? 0 : 1;
  } else {
    for (const Unit& u : units) {
      if (unit == u.name) {
        scale = u.scale;
      }
    }
  }
  if (scale == 0 || (numerator * scale) % denominator != 0) {
    return std::nullopt;
  }
  int64_t value = numerator * scale / denominator;
  if (value <= 0 || value > INT_MAX) {
    return std::nullopt;
  }
  return value;
}

std::string NoFargateConfiguration(int cpu, int memory) {
  return "No Fargate configuration exists for given values: " + std::to_string(cpu) + " CPU, " +
         std::to_string(memory) + " memory. See the Amazon ECS documentation for the valid values.";
}

bool IsWindows(const Json& request) {
  const Json* platform = Find(request, "runtimePlatform");
  return platform != nullptr &&
         StringOf(*platform, "operatingSystemFamily").rfind("WINDOWS", 0) == 0;
}

// Fargate task size check shared by registration and RunTask overrides.
Status CheckFargateSize(int cpu, int memory, bool windows) {
  bool windows_cpu = cpu == 1024 || cpu == 2048 || cpu == 4096;
  if (!IsValidFargateSize(cpu, memory) || (windows && !windows_cpu)) {
    return Client(NoFargateConfiguration(cpu, memory));
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// What every rule needs to know about the request being registered.

struct Registration {
  Registration(const Json& request_json, const Json& container_list)
      : request(request_json), containers(container_list) {}

  const Json& request;
  const Json& containers;
  bool fargate = false;       // requiresCompatibilities names FARGATE
  std::string network_mode;   // as given; empty means the default (bridge on Linux)
  std::optional<int> cpu;     // task-level, in CPU units
  std::optional<int> memory;  // task-level, in MiB
  bool execution_role = false;
  std::set<std::string> volume_names;
};

std::string EffectiveNetworkMode(const Registration& reg) {
  return reg.network_mode.empty() ? "bridge" : reg.network_mode;
}

// ---------------------------------------------------------------------------------------------
// Request-level rules that come before anything about sizes.

Status CheckFamily(const Json& request) {
  std::string family = StringOf(request, "family");
  if (family.empty()) {
    return Client("Family can not be blank.");
  }
  if (!IsResourceName(family)) {
    return Client("Family contains invalid characters.");
  }
  return Ok();
}

Status CheckContainerList(const Json& containers) {
  if (!containers.is_array() || containers.empty()) {
    return Client("Container list cannot be empty.");
  }
  if (containers.size() > kMaxContainers) {
    return Client("Too many containers. A task definition can contain at most " +
                  std::to_string(kMaxContainers) + " containers.");
  }
  return Ok();
}

Status CheckContainerIdentities(const Json& containers) {
  std::set<std::string> seen;
  for (const Json& c : containers) {
    std::string name = StringOf(c, "name");
    if (name.empty()) {
      return Client("Container.name should not be null or empty.");
    }
    if (!IsResourceName(name)) {
      return Client("Container.name contains invalid characters.");
    }
    if (!HasString(c, "image")) {
      return Client("Container.image should not be null or empty.");
    }
    if (!seen.insert(name).second) {
      return Client("Duplicate container name " + Quoted(name) + " in task definition.");
    }
  }
  return Ok();
}

Status CheckEnums(const Json& request) {
  static const std::set<std::string> kModes = {"bridge", "host", "awsvpc", "none"};
  static const std::set<std::string> kCompat = {"EC2", "FARGATE", "EXTERNAL"};
  std::string mode = StringOf(request, "networkMode");
  if (Find(request, "networkMode") != nullptr && kModes.count(mode) == 0) {
    return Client("Invalid 'networkMode' setting for task.");
  }
  for (const Json& compat : ListOf(request, "requiresCompatibilities")) {
    if (!compat.is_string() || kCompat.count(compat.get<std::string>()) == 0) {
      return Client("Invalid 'requiresCompatibilities' setting for task.");
    }
  }
  std::string pid = StringOf(request, "pidMode");
  if (Find(request, "pidMode") != nullptr && pid != "host" && pid != "task") {
    return Client("Invalid 'pidMode' setting for task.");
  }
  std::string ipc = StringOf(request, "ipcMode");
  if (Find(request, "ipcMode") != nullptr && ipc != "host" && ipc != "task" && ipc != "none") {
    return Client("Invalid 'ipcMode' setting for task.");
  }
  return Ok();
}

// Parses task cpu/memory into `reg` and applies the range AWS allows outside Fargate.
Status ParseTaskSize(Registration& reg) {
  if (const Json* cpu = Find(reg.request, "cpu"); cpu != nullptr) {
    auto parsed = ParseTaskCpu(cpu->is_string() ? cpu->get<std::string>() : "");
    BERTH_TRY(parsed);
    // EC2 accepts 0.125 to 192 vCPU; Fargate's own table is checked later.
    if (!reg.fargate && (*parsed < 128 || *parsed > 196608)) {
      return Client("Invalid 'cpu' setting for task.");
    }
    reg.cpu = *parsed;
  }
  if (const Json* memory = Find(reg.request, "memory"); memory != nullptr) {
    auto parsed = ParseTaskMemory(memory->is_string() ? memory->get<std::string>() : "");
    BERTH_TRY(parsed);
    reg.memory = *parsed;
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Fargate task-level rules, in the order AWS reports them: network mode, cpu present, memory
// present, cpu/memory pair, then the task parameters Fargate does not run.

Status CheckFargateTask(const Registration& reg) {
  if (reg.network_mode != "awsvpc") {
    return Client("Fargate only supports network mode \u2018awsvpc\u2019.");
  }
  if (!reg.cpu) {
    return Client("Fargate requires that 'cpu' be defined at the task level.");
  }
  if (!reg.memory) {
    return Client("Fargate requires that 'memory' be defined at the task level.");
  }
  BERTH_TRY(CheckFargateSize(*reg.cpu, *reg.memory, IsWindows(reg.request)));
  if (NonEmptyList(reg.request, "placementConstraints")) {
    return Client("Fargate does not support task placement constraints.");
  }
  std::string pid = StringOf(reg.request, "pidMode");
  if (!pid.empty() && pid != "task") {
    return Client("Tasks using the Fargate launch type do not support pidMode '" + pid +
                  "'. The supported value for pidMode is 'task'.");
  }
  if (Find(reg.request, "ipcMode") != nullptr) {
    return Client("Tasks using the Fargate launch type do not support ipcMode.");
  }
  for (const Json& volume : ListOf(reg.request, "volumes")) {
    const Json* host = Find(volume, "host");
    if (host != nullptr && HasString(*host, "sourcePath")) {
      return Client("Fargate does not support the 'sourcePath' setting for host volumes.");
    }
    if (Find(volume, "dockerVolumeConfiguration") != nullptr) {
      return Client("Fargate does not support Docker volumes.");
    }
  }
  return Ok();
}

Status CheckEphemeralStorage(const Json& request) {
  const Json* storage = Find(request, "ephemeralStorage");
  if (storage == nullptr) {
    return Ok();
  }
  int64_t size = IntOf(*storage, "sizeInGiB").value_or(0);
  if (size < 21) {
    return Client("EphemeralStorage size should be at least 21");
  }
  if (size > 200) {
    return Client("EphemeralStorage size should be at most 200");
  }
  return Ok();
}

Status CheckEssential(const Json& containers) {
  bool any = std::any_of(containers.begin(), containers.end(),
                         [](const Json& c) { return BoolOf(c, "essential", true); });
  if (!any) {
    return Client("Task definition doesn't have any essential container.");
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Container-level rules that hold for every launch type.

Status CheckContainerResources(const Registration& reg, const Json& c) {
  std::string name = StringOf(c, "name");
  std::optional<int64_t> cpu = IntOf(c, "cpu");
  std::optional<int64_t> memory = IntOf(c, "memory");
  std::optional<int64_t> reservation = IntOf(c, "memoryReservation");
  if (!reg.memory && !memory && !reservation) {
    return Client("Invalid setting for container " + Quoted(name) +
                  ". At least one of 'memory' or 'memoryReservation' must be specified.");
  }
  if (cpu && *cpu < 0) {
    return Client("Invalid 'cpu' setting for container " + Quoted(name) + ".");
  }
  if (memory && *memory <= 0) {
    return Client("Invalid 'memory' setting for container " + Quoted(name) + ".");
  }
  if (reservation && *reservation <= 0) {
    return Client("Invalid 'memoryReservation' setting for container " + Quoted(name) + ".");
  }
  // AWS documents memory >= memoryReservation as valid; only a larger reservation fails.
  if (memory && reservation && *reservation > *memory) {
    return Client("The 'memoryReservation' setting for container " + Quoted(name) +
                  " is greater than its 'memory' setting.");
  }
  if (reg.memory && memory && *memory > *reg.memory) {
    return Client("The 'memory' setting for container " + Quoted(name) +
                  " is greater than for the task.");
  }
  return Ok();
}

Status CheckPortMappings(const Registration& reg, const Json& c) {
  std::string name = StringOf(c, "name");
  std::string mode = EffectiveNetworkMode(reg);
  const Json& mappings = ListOf(c, "portMappings");
  if (mode == "none" && !mappings.empty()) {
    return Client("Port mappings are not supported when networkMode=none.");
  }
  for (const Json& mapping : mappings) {
    std::optional<int64_t> container_port = IntOf(mapping, "containerPort");
    if (!container_port || *container_port < 1 || *container_port > 65535) {
      return Client("Invalid 'containerPort' setting for container " + Quoted(name) + ".");
    }
    std::optional<int64_t> host_port = IntOf(mapping, "hostPort");
    if (host_port && (*host_port < 0 || *host_port > 65535)) {
      return Client("Invalid 'hostPort' setting for container " + Quoted(name) + ".");
    }
    std::string protocol = StringOf(mapping, "protocol");
    if (Find(mapping, "protocol") != nullptr && protocol != "tcp" && protocol != "udp") {
      return Client("Invalid 'protocol' setting for container " + Quoted(name) + ".");
    }
    bool must_match = mode == "awsvpc" || mode == "host";
    if (must_match && host_port && *host_port != 0 && *host_port != *container_port) {
      return Client("When networkMode=" + mode +
                    ", the host ports and container ports in port mappings must match.");
    }
  }
  return Ok();
}

Status CheckNetworkingOptions(const Registration& reg, const Json& c) {
  std::string mode = EffectiveNetworkMode(reg);
  if (mode == "awsvpc" && HasString(c, "hostname")) {
    return Client("hostname is not supported on container when networkMode=awsvpc.");
  }
  if (mode != "bridge" && NonEmptyList(c, "links")) {
    return Client("links is not supported on container when networkMode=" + mode + ".");
  }
  return Ok();
}

struct Range {
  const char* field;
  int min;
  int max;
};

Status CheckHealthCheck(const Json& c) {
  const Json* check = Find(c, "healthCheck");
  if (check == nullptr) {
    return Ok();
  }
  std::string name = StringOf(c, "name");
  if (!NonEmptyList(*check, "command")) {
    return Client("Health check command must not be empty for container " + Quoted(name));
  }
  static constexpr Range kRanges[] = {
      {"interval", 5, 300}, {"timeout", 2, 60}, {"retries", 1, 10}, {"startPeriod", 0, 300}};
  for (const Range& range : kRanges) {
    std::optional<int64_t> value = IntOf(*check, range.field);
    if (value && *value < range.min) {
      return Client(std::string("Health check ") + range.field +
                    " must be greater than or equal to the minimum allowed value " +
                    std::to_string(range.min) + " for container " + Quoted(name));
    }
    if (value && *value > range.max) {
      return Client(std::string("Health check ") + range.field +
                    " must be less than or equal to the maximum allowed value " +
                    std::to_string(range.max) + " for container " + Quoted(name));
    }
  }
  return Ok();
}

Status CheckLogConfiguration(const Json& c) {
  const Json* log = Find(c, "logConfiguration");
  if (log == nullptr) {
    return Ok();
  }
  static const std::set<std::string> kDrivers = {"json-file", "syslog",  "journald", "gelf",
                                                 "fluentd",   "awslogs", "splunk",   "awsfirelens"};
  std::string driver = StringOf(*log, "logDriver");
  if (kDrivers.count(driver) == 0) {
    return Client("Invalid 'logConfiguration' setting for container " +
                  Quoted(StringOf(c, "name")) + ".");
  }
  if (driver != "awslogs") {
    return Ok();
  }
  const Json empty = Json::object();
  const Json* options = Find(*log, "options");
  const Json& opts = options != nullptr ? *options : empty;
  std::vector<std::string> missing;
  for (const char* required : {"awslogs-region", "awslogs-group"}) {
    if (!HasString(opts, required)) {
      missing.emplace_back(required);
    }
  }
  if (!missing.empty()) {
    std::string list = missing[0];
    for (size_t i = 1; i < missing.size(); ++i) {
      list += ", " + missing[i];
    }
    return Client("Log driver awslogs requires options: " + list);
  }
  if (Find(opts, "awslogs-create-group") != nullptr &&
      StringOf(opts, "awslogs-create-group") != "true") {
    return Client(
        "Log driver awslogs option 'awslogs-create-group' should only be set to 'true', else "
        "omit option.");
  }
  return Ok();
}

Status CheckMountPoints(const Registration& reg, const Json& c) {
  for (const Json& mount : ListOf(c, "mountPoints")) {
    std::string volume = StringOf(mount, "sourceVolume");
    if (reg.volume_names.count(volume) == 0) {
      return Client("Invalid 'mountPoints' setting for container " + Quoted(StringOf(c, "name")) +
                    ". Volume " + Quoted(volume) + " is not defined in the task definition.");
    }
  }
  return Ok();
}

Status CheckContainer(const Registration& reg, const Json& c) {
  BERTH_TRY(CheckContainerResources(reg, c));
  BERTH_TRY(CheckPortMappings(reg, c));
  BERTH_TRY(CheckNetworkingOptions(reg, c));
  BERTH_TRY(CheckHealthCheck(c));
  BERTH_TRY(CheckLogConfiguration(c));
  BERTH_TRY(CheckMountPoints(reg, c));
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Container-level rules of Fargate.

Error FargateUnsupported(const std::string& parameter) {
  return Client("Tasks using the Fargate launch type do not support " + parameter + ".");
}

Status CheckFargateLinuxParameters(const Json& c) {
  const Json* linux = Find(c, "linuxParameters");
  if (linux == nullptr) {
    return Ok();
  }
  if (NonEmptyList(*linux, "devices")) {
    return FargateUnsupported("devices");
  }
  for (const char* key : {"sharedMemorySize", "maxSwap", "swappiness"}) {
    if (Find(*linux, key) != nullptr) {
      return FargateUnsupported(key);
    }
  }
  if (NonEmptyList(*linux, "tmpfs")) {
    return FargateUnsupported("tmpfs");
  }
  if (const Json* caps = Find(*linux, "capabilities"); caps != nullptr) {
    for (const Json& cap : ListOf(*caps, "add")) {
      if (!cap.is_string() || cap.get<std::string>() != "SYS_PTRACE") {
        return Client(
            "Tasks using the Fargate launch type can only add the SYS_PTRACE kernel "
            "capability.");
      }
    }
  }
  return Ok();
}

Status CheckFargateContainerParameters(const Json& c) {
  if (BoolOf(c, "privileged", false)) {
    return FargateUnsupported("privileged");
  }
  if (BoolOf(c, "disableNetworking", false)) {
    return FargateUnsupported("disableNetworking");
  }
  for (const char* key :
       {"dnsServers", "dnsSearchDomains", "extraHosts", "dockerSecurityOptions"}) {
    if (NonEmptyList(c, key)) {
      return FargateUnsupported(key);
    }
  }
  BERTH_TRY(CheckFargateLinuxParameters(c));
  for (const Json& requirement : ListOf(c, "resourceRequirements")) {
    if (StringOf(requirement, "type") == "GPU") {
      return FargateUnsupported("GPU resource requirements");
    }
  }
  return Ok();
}

Status CheckFargateLogging(const Registration& reg, const Json& c) {
  const Json* log = Find(c, "logConfiguration");
  if (log == nullptr) {
    return Ok();
  }
  std::string driver = StringOf(*log, "logDriver");
  if (driver != "awslogs" && driver != "splunk" && driver != "awsfirelens") {
    return Client("Fargate does not support log driver " + driver +
                  ". Supported log drivers are awslogs, splunk and awsfirelens.");
  }
  if (driver != "awslogs") {
    return Ok();
  }
  const Json* options = Find(*log, "options");
  if (options == nullptr || !HasString(*options, "awslogs-stream-prefix")) {
    return Client(
        "Fargate requires log configuration options to include awslogs-stream-prefix to support "
        "log driver awslogs.");
  }
  if (!reg.execution_role) {
    return Client(
        "Fargate requires task definition to have execution role ARN to support log driver "
        "awslogs.");
  }
  return Ok();
}

Status CheckFargateContainer(const Registration& reg, const Json& c) {
  BERTH_TRY(CheckFargateContainerParameters(c));
  std::optional<int64_t> stop_timeout = IntOf(c, "stopTimeout");
  if (stop_timeout && *stop_timeout > kFargateMaxStopTimeout) {
    return Client("Stop timeout must be less than or equal to the maximum allowed value " +
                  std::to_string(kFargateMaxStopTimeout) + " for container " +
                  Quoted(StringOf(c, "name")));
  }
  if (IsEcrImage(StringOf(c, "image")) && !reg.execution_role) {
    return Client(
        "Fargate requires task definition to have execution role ARN to support ECR "
        "images.");
  }
  BERTH_TRY(CheckFargateLogging(reg, c));
  return Ok();
}

// Everything Fargate demands; used to compute `compatibilities` when FARGATE is not required.
bool FargateCompatible(const Registration& reg) {
  if (!CheckFargateTask(reg).ok()) {
    return false;
  }
  return std::all_of(reg.containers.begin(), reg.containers.end(),
                     [&](const Json& c) { return CheckFargateContainer(reg, c).ok(); });
}

// ---------------------------------------------------------------------------------------------
// Rules across containers.

Status CheckTaskSums(const Registration& reg) {
  int64_t cpu_sum = 0;
  int64_t reservation_sum = 0;
  for (const Json& c : reg.containers) {
    cpu_sum += IntOf(c, "cpu").value_or(0);
    reservation_sum += IntOf(c, "memoryReservation").value_or(0);
  }
  if (reg.cpu && cpu_sum > *reg.cpu) {
    return Client(
        "The sum of all container 'cpu' values cannot be greater than the value of "
        "the task 'cpu'.");
  }
  if (reg.memory && reservation_sum > *reg.memory) {
    return Client(
        "The sum of all container 'memoryReservation' values cannot be greater than "
        "the value of the task 'memory'.");
  }
  return Ok();
}

// The host port a mapping ends up with: awsvpc and host mode publish the container port
// itself, bridge mode without a host port asks Docker for a free one (0).
int64_t EffectiveHostPort(const Registration& reg, const Json& mapping) {
  int64_t container_port = IntOf(mapping, "containerPort").value_or(0);
  int64_t host_port = IntOf(mapping, "hostPort").value_or(0);
  std::string mode = EffectiveNetworkMode(reg);
  if ((mode == "awsvpc" || mode == "host") && host_port == 0) {
    return container_port;
  }
  return host_port;
}

Status CheckHostPorts(const Registration& reg) {
  std::set<std::pair<std::string, int64_t>> used;
  for (const Json& c : reg.containers) {
    for (const Json& mapping : ListOf(c, "portMappings")) {
      int64_t port = EffectiveHostPort(reg, mapping);
      if (port == 0) {
        continue;
      }
      std::string protocol = StringOf(mapping, "protocol") == "udp" ? "UDP" : "TCP";
      if (!used.emplace(protocol, port).second) {
        return Client(protocol + " host port '" + std::to_string(port) +
                      "' is mapped multiple times in task.");
      }
    }
  }
  return Ok();
}

Status CheckDependencyTargets(const Registration& reg) {
  std::map<std::string, const Json*> by_name;
  for (const Json& c : reg.containers) {
    by_name[StringOf(c, "name")] = &c;
  }
  static const std::set<std::string> kConditions = {"START", "COMPLETE", "SUCCESS", "HEALTHY"};
  for (const Json& c : reg.containers) {
    for (const Json& dependency : ListOf(c, "dependsOn")) {
      std::string target = StringOf(dependency, "containerName");
      auto it = by_name.find(target);
      if (it == by_name.end()) {
        // The stray " + " is part of the message AWS sends.
        return Client("Cannot depend on container + " + Quoted(target) +
                      " because it does not exist");
      }
      std::string condition = StringOf(dependency, "condition");
      if (kConditions.count(condition) == 0) {
        return Client("Invalid 'dependsOn' setting for container " + Quoted(StringOf(c, "name")) +
                      ".");
      }
      if ((condition == "SUCCESS" || condition == "COMPLETE") &&
          BoolOf(*it->second, "essential", true)) {
        return Client(
            "A dependency container with SUCCESS or COMPLETE condition cannot be an essential "
            "container");
      }
      if (condition == "HEALTHY" && Find(*it->second, "healthCheck") == nullptr) {
        return Client(
            "A dependency container with HEALTHY condition must have a health check "
            "configured");
      }
    }
  }
  return Ok();
}

Status CheckDependencyCycles(const Registration& reg) {
  std::map<std::string, std::vector<std::string>> edges;
  for (const Json& c : reg.containers) {
    auto& out = edges[StringOf(c, "name")];
    for (const Json& dependency : ListOf(c, "dependsOn")) {
      out.push_back(StringOf(dependency, "containerName"));
    }
  }
  enum class Mark { kNone, kOpen, kDone };
  std::map<std::string, Mark> marks;
  std::function<bool(const std::string&)> cyclic = [&](const std::string& node) {
    Mark& mark = marks[node];
    if (mark != Mark::kNone) {
      return mark == Mark::kOpen;
    }
    mark = Mark::kOpen;
    for (const std::string& next : edges[node]) {
      if (cyclic(next)) {
        return true;
      }
    }
    marks[node] = Mark::kDone;
    return false;
  };
  for (const auto& [name, unused] : edges) {
    if (cyclic(name)) {
      return Client("Container dependencies contain a cycle involving container " + Quoted(name) +
                    ".");
    }
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Normalization: the shape AWS stores and echoes.

Json NormalizePortMapping(const Registration& reg, const Json& mapping) {
  Json out = Json::object();
  out["containerPort"] = IntOf(mapping, "containerPort").value_or(0);
  out["hostPort"] = EffectiveHostPort(reg, mapping);
  std::string protocol = StringOf(mapping, "protocol");
  out["protocol"] = protocol.empty() ? "tcp" : protocol;
  for (const char* key : {"name", "appProtocol"}) {
    if (const Json* value = Find(mapping, key); value != nullptr) {
      out[key] = *value;
    }
  }
  return out;
}

Json NormalizeHealthCheck(const Json& check) {
  Json out = Json::object();
  out["command"] = ListOf(check, "command");
  out["interval"] = IntOf(check, "interval").value_or(30);
  out["timeout"] = IntOf(check, "timeout").value_or(5);
  out["retries"] = IntOf(check, "retries").value_or(3);
  if (auto start = IntOf(check, "startPeriod"); start) {
    out["startPeriod"] = *start;
  }
  return out;
}

// AWS drops environment entries whose value is empty or missing.
Json NormalizeEnvironment(const Json& environment) {
  Json out = Json::array();
  for (const Json& entry : environment) {
    if (HasString(entry, "value")) {
      out.push_back(entry);
    }
  }
  return out;
}

Json NormalizeContainer(const Registration& reg, const Json& c) {
  // The ContainerDefinition members of the API model; anything else is dropped.
  // clang-format off
  static const char* const kMembers[] = {
      "name", "image", "repositoryCredentials", "cpu", "memory", "memoryReservation", "links",
      "portMappings", "essential", "entryPoint", "command", "environment", "environmentFiles",
      "mountPoints", "volumesFrom", "linuxParameters", "secrets", "dependsOn", "startTimeout",
      "stopTimeout", "hostname", "user", "workingDirectory", "disableNetworking", "privileged",
      "readonlyRootFilesystem", "dnsServers", "dnsSearchDomains", "extraHosts",
      "dockerSecurityOptions", "interactive", "pseudoTerminal", "dockerLabels", "ulimits",
      "logConfiguration", "healthCheck", "systemControls", "resourceRequirements",
      "firelensConfiguration"};
  // clang-format on
  Json out = Json::object();
  for (const char* key : kMembers) {
    if (const Json* value = Find(c, key); value != nullptr) {
      out[key] = *value;
    }
  }
  out["cpu"] = IntOf(c, "cpu").value_or(0);
  out["essential"] = BoolOf(c, "essential", true);
  Json mappings = Json::array();
  for (const Json& mapping : ListOf(c, "portMappings")) {
    mappings.push_back(NormalizePortMapping(reg, mapping));
  }
  out["portMappings"] = std::move(mappings);
  out["environment"] = NormalizeEnvironment(ListOf(c, "environment"));
  for (const char* key : {"mountPoints", "volumesFrom", "systemControls"}) {
    out[key] = ListOf(c, key);
  }
  if (const Json* check = Find(c, "healthCheck"); check != nullptr) {
    out["healthCheck"] = NormalizeHealthCheck(*check);
  }
  return out;
}

// Attributes a container instance must have to run the task, as ECS derives them. The order
// is the one AWS's responses show.
Json RequiresAttributes(const Registration& reg) {
  static const char* const kOrder[] = {"com.amazonaws.ecs.capability.docker-remote-api.1.24",
                                       "ecs.capability.execution-role-awslogs",
                                       "com.amazonaws.ecs.capability.ecr-auth",
                                       "com.amazonaws.ecs.capability.docker-remote-api.1.19",
                                       "com.amazonaws.ecs.capability.task-iam-role",
                                       "ecs.capability.pid-ipc-namespace-sharing",
                                       "ecs.capability.aws-appmesh",
                                       "ecs.capability.container-ordering",
                                       "ecs.capability.container-health-check",
                                       "ecs.capability.execution-role-ecr-pull",
                                       "com.amazonaws.ecs.capability.docker-remote-api.1.18",
                                       "ecs.capability.task-eni",
                                       "com.amazonaws.ecs.capability.docker-remote-api.1.29"};
  std::vector<std::string> drivers;
  std::set<std::string> wanted;
  for (const Json& c : reg.containers) {
    if (const Json* log = Find(c, "logConfiguration"); log != nullptr) {
      std::string driver = StringOf(*log, "logDriver");
      if (std::find(drivers.begin(), drivers.end(), driver) == drivers.end()) {
        drivers.push_back(driver);
      }
      if (driver == "awslogs") {
        wanted.insert("com.amazonaws.ecs.capability.docker-remote-api.1.19");
        if (reg.execution_role) {
          wanted.insert("ecs.capability.execution-role-awslogs");
        }
      }
    }
    if (const Json* check = Find(c, "healthCheck"); check != nullptr) {
      wanted.insert("ecs.capability.container-health-check");
      wanted.insert(IntOf(*check, "startPeriod")
                        ? "com.amazonaws.ecs.capability.docker-remote-api.1.29"
                        : "com.amazonaws.ecs.capability.docker-remote-api.1.24");
    }
    if (IsEcrImage(StringOf(c, "image"))) {
      wanted.insert("com.amazonaws.ecs.capability.ecr-auth");
      if (reg.execution_role) {
        wanted.insert("ecs.capability.execution-role-ecr-pull");
      }
    }
    if (NonEmptyList(c, "dependsOn")) {
      wanted.insert("ecs.capability.container-ordering");
    }
  }
  if (HasString(reg.request, "taskRoleArn")) {
    wanted.insert("com.amazonaws.ecs.capability.task-iam-role");
  }
  if (Find(reg.request, "pidMode") != nullptr || Find(reg.request, "ipcMode") != nullptr) {
    wanted.insert("ecs.capability.pid-ipc-namespace-sharing");
  }
  if (Find(reg.request, "proxyConfiguration") != nullptr) {
    wanted.insert("ecs.capability.aws-appmesh");
  }
  if (reg.network_mode == "awsvpc") {
    wanted.insert("com.amazonaws.ecs.capability.docker-remote-api.1.18");
    wanted.insert("ecs.capability.task-eni");
  }

  Json out = Json::array();
  for (const std::string& driver : drivers) {
    out.push_back(
        Json::object({{"name", "com.amazonaws.ecs.capability.logging-driver." + driver}}));
  }
  for (const char* name : kOrder) {
    if (wanted.count(name) != 0) {
      out.push_back(Json::object({{"name", name}}));
    }
  }
  return out;
}

Json Compatibilities(const Registration& reg) {
  if (reg.fargate || FargateCompatible(reg)) {
    return Json::array({"EC2", "FARGATE"});
  }
  // ECS Anywhere (EXTERNAL) runs every network mode except awsvpc.
  if (reg.network_mode == "awsvpc") {
    return Json::array({"EC2"});
  }
  return Json::array({"EXTERNAL", "EC2"});
}

Json BuildTaskDefinition(const Registration& reg) {
  const Json& request = reg.request;
  Json out = Json::object();
  out["family"] = StringOf(request, "family");
  Json containers = Json::array();
  for (const Json& c : reg.containers) {
    containers.push_back(NormalizeContainer(reg, c));
  }
  out["containerDefinitions"] = std::move(containers);
  for (const char* key : {"taskRoleArn", "executionRoleArn", "networkMode",
                          "requiresCompatibilities", "pidMode", "ipcMode", "proxyConfiguration",
                          "inferenceAccelerators", "ephemeralStorage", "runtimePlatform"}) {
    if (const Json* value = Find(request, key); value != nullptr) {
      out[key] = *value;
    }
  }
  out["volumes"] = ListOf(request, "volumes");
  out["placementConstraints"] = ListOf(request, "placementConstraints");
  if (reg.cpu) {
    out["cpu"] = std::to_string(*reg.cpu);
  }
  if (reg.memory) {
    out["memory"] = std::to_string(*reg.memory);
  }
  out["compatibilities"] = Compatibilities(reg);
  Json attributes = RequiresAttributes(reg);
  if (!attributes.empty()) {
    out["requiresAttributes"] = std::move(attributes);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public interface.

Result<int> ParseTaskCpu(std::string_view text) {
  std::optional<int64_t> units = ParseScaled(text, {{"vcpu", 1024}});
  if (!units) {
    return Client("Invalid 'cpu' setting for task.");
  }
  return static_cast<int>(*units);
}

Result<int> ParseTaskMemory(std::string_view text) {
  std::optional<int64_t> mib =
      ParseScaled(text, {{"gb", 1024}, {"gib", 1024}, {"mb", 1}, {"mib", 1}});
  if (!mib) {
    return Client("Invalid 'memory' setting for task.");
  }
  return static_cast<int>(*mib);
}

bool IsValidFargateSize(int cpu, int memory_mib) {
  struct Row {
    int cpu;
    int min;
    int max;
    int step;
  };

  static constexpr Row kRows[] = {{512, 1024, 4096, 1024},    {1024, 2048, 8192, 1024},
                                  {2048, 4096, 16384, 1024},  {4096, 8192, 30720, 1024},
                                  {8192, 16384, 61440, 4096}, {16384, 32768, 122880, 8192}};
  if (cpu == 256) {
    return memory_mib == 512 || memory_mib == 1024 || memory_mib == 2048;
  }
  for (const Row& row : kRows) {
    if (row.cpu == cpu) {
      return memory_mib >= row.min && memory_mib <= row.max &&
             (memory_mib - row.min) % row.step == 0;
    }
  }
  return false;
}

Result<Json> NormalizeTaskDefinition(const Json& request) {
  if (!request.is_object()) {
    return Client("Container list cannot be empty.");
  }
  if (request.dump().size() > kMaxTaskDefinitionBytes) {
    return Client("Task definition size exceeds the maximum allowed size of 64 KiB.");
  }
  BERTH_TRY(CheckFamily(request));
  const Json& containers = ListOf(request, "containerDefinitions");
  BERTH_TRY(CheckContainerList(containers));
  BERTH_TRY(CheckContainerIdentities(containers));
  BERTH_TRY(CheckEnums(request));

  Registration reg(request, containers);
  reg.fargate = Contains(ListOf(request, "requiresCompatibilities"), "FARGATE");
  reg.network_mode = StringOf(request, "networkMode");
  reg.execution_role = HasString(request, "executionRoleArn");
  for (const Json& volume : ListOf(request, "volumes")) {
    reg.volume_names.insert(StringOf(volume, "name"));
  }
  BERTH_TRY(ParseTaskSize(reg));
  if (reg.fargate) {
    BERTH_TRY(CheckFargateTask(reg));
  }
  BERTH_TRY(CheckEphemeralStorage(request));
  BERTH_TRY(CheckEssential(containers));

  for (const Json& c : containers) {
    BERTH_TRY(CheckContainer(reg, c));
    if (reg.fargate) {
      BERTH_TRY(CheckFargateContainer(reg, c));
    }
  }
  BERTH_TRY(CheckTaskSums(reg));
  BERTH_TRY(CheckHostPorts(reg));
  BERTH_TRY(CheckDependencyTargets(reg));
  BERTH_TRY(CheckDependencyCycles(reg));
  return BuildTaskDefinition(reg);
}

Status ValidateContainerOverrides(const Json& task_definition, const Json& overrides) {
  if (!overrides.is_object()) {
    return Ok();
  }
  std::set<std::string> names;
  for (const Json& c : ListOf(task_definition, "containerDefinitions")) {
    names.insert(StringOf(c, "name"));
  }
  for (const Json& override_entry : ListOf(overrides, "containerOverrides")) {
    std::string name = StringOf(override_entry, "name");
    if (name.empty()) {
      // An empty override is allowed; anything else must say which container it changes.
      if (override_entry.is_object() && !override_entry.empty()) {
        return InvalidParameter("Container override must specify the name of a container.");
      }
      continue;
    }
    if (names.count(name) == 0) {
      return InvalidParameter("Override for container named " + name +
                              " is not a container in the TaskDefinition.");
    }
  }

  if (!Contains(ListOf(task_definition, "requiresCompatibilities"), "FARGATE")) {
    return Ok();
  }
  std::string cpu_text =
      HasString(overrides, "cpu") ? StringOf(overrides, "cpu") : StringOf(task_definition, "cpu");
  std::string memory_text = HasString(overrides, "memory") ? StringOf(overrides, "memory")
                                                           : StringOf(task_definition, "memory");
  auto cpu = ParseTaskCpu(cpu_text);
  BERTH_TRY(cpu);
  auto memory = ParseTaskMemory(memory_text);
  BERTH_TRY(memory);
  return CheckFargateSize(*cpu, *memory, IsWindows(task_definition));
}

}  // namespace berth::ecs
