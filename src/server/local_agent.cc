#include "server/local_agent.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "agent/reaper.h"
#include "agent/registry_auth.h"
#include "common/ids.h"
#include "ecs/agent_client.h"
#include "ecs/agent_protocol.h"
#include "server/http_server.h"
#include "server/report_queue.h"

namespace berth {

namespace {

// The node's capacity: every core (1024 cpu units each) and all memory.
std::pair<int64_t, int64_t> NodeCapacity() {
  int64_t cpu = 1024 * static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN));
  int64_t mem_mib = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE) >> 20;
  return {cpu, mem_mib};
}

std::string StableNodeId(const std::string& data_dir) {
  std::string path = data_dir + "/node-id";
  std::ifstream in(path);
  std::string id;
  if (in && std::getline(in, id) && !id.empty()) {
    return id;
  }
  id = "node-" + RandomHex(8);
  std::ofstream out(path, std::ios::trunc);
  out << id << "\n";
  return id;
}

// A helper program installed with berthd: beside it (a build tree), else in ../libexec/berth
// (an installed tree). "" when neither has it.
std::string FindHelperBinary(const std::string& name) {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return {};
  }
  for (const auto& candidate : {exe.parent_path() / name,
                                exe.parent_path().parent_path() / "libexec" / "berth" / name}) {
    if (access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return {};
}

// "172.31.0.0/16" -> "172.31.0.1"
std::string GatewayOf(const std::string& subnet) {
  std::string net = subnet.substr(0, subnet.find('/'));
  size_t dot = net.rfind('.');
  return net.substr(0, dot) + ".1";
}

agent::DesiredTask ToAgent(const ecs::DesiredTask& d) {
  agent::DesiredTask t;
  t.task_id = d.task_id;
  t.task_arn = d.task_arn;
  t.cluster = d.cluster;
  t.desired_status = d.desired_status;
  t.task_definition = d.task_definition;
  if (!d.cpu.empty()) {
    t.task_definition["cpu"] = d.cpu;
  }
  if (!d.memory.empty()) {
    t.task_definition["memory"] = d.memory;
  }
  t.overrides = d.overrides.is_object() ? d.overrides : agent::Json::object();
  t.seq = d.seq > 0 ? static_cast<uint64_t>(d.seq) : 0;
  return t;
}

ecs::TaskReport ToControlPlane(const agent::TaskReport& r, const std::string& node_id,
                               const std::string& gateway) {
  ecs::TaskReport out;
  out.node_id = node_id;
  out.cluster = r.cluster;
  out.task_id = r.task_id;
  out.seq = static_cast<int64_t>(r.seq);
  out.last_status = r.last_status;
  for (const auto& c : r.containers) {
    ecs::ContainerReport cr;
    cr.name = c.name;
    cr.last_status = c.last_status;
    cr.exit_code = c.exit_code;
    cr.reason = c.reason;
    cr.health_status = c.health_status;
    cr.runtime_id = c.runtime_id;
    cr.image_digest = c.image_digest;
    out.containers.push_back(std::move(cr));
  }
  if (!r.private_ip.empty()) {
    ecs::NetworkReport n;
    n.private_ipv4_address = r.private_ip;
    n.mac_address = r.mac_address;
    n.subnet_gateway_ipv4_address = gateway;
    out.network = n;
  }
  auto opt = [](double v) { return v > 0 ? std::optional<double>(v) : std::nullopt; };
  out.pull_started_at = opt(r.pull_started_at);
  out.pull_stopped_at = opt(r.pull_stopped_at);
  out.started_at = opt(r.started_at);
  out.execution_stopped_at = opt(r.execution_stopped_at);
  out.stop_code = r.stop_code;
  out.stopped_reason = r.stopped_reason;
  return out;
}

// Serves the task metadata endpoint (v4 and v3 paths) on the bridge address.
// A task sees only its own metadata: the caller's address picks the task.
class MetadataRoute : public http::Route {
 public:
  explicit MetadataRoute(agent::NodeAgent& agent) : agent_(agent) {}

  bool Matches(const http::Request& head) const override {
    return head.path.rfind("/v4/", 0) == 0 || head.path.rfind("/v3/", 0) == 0;
  }

  http::Response Serve(http::Request& request, http::BodySink* sink) override {
    http::Response r;
    r.SetHeader("Content-Type", "application/json");
    // /v4/<task-id>/<container>[/task][/stats|/task/stats]
    std::vector<std::string> parts;
    size_t pos = 1;
    while (pos <= request.path.size()) {
      size_t next = request.path.find('/', pos);
      parts.push_back(request.path.substr(pos, next == std::string::npos ? next : next - pos));
      if (next == std::string::npos) {
        break;
      }
      pos = next + 1;
    }
    if (parts.size() < 3) {
      r.status = 404;
      r.body = R"({"message":"not found"})";
      return r;
    }
    std::string container = parts[2];
    std::string rest;
    for (size_t i = 3; i < parts.size(); ++i) {
      rest += "/" + parts[i];
    }
    std::string what = rest == "/task" || rest == "/task/stats" ? "task" : container;
    auto md = agent_.MetadataForIp(request.remote_address, what);
    if (!md) {
      r.status = 404;
      r.body = R"({"message":"no task at this address"})";
      return r;
    }
    if (rest == "/stats" || rest == "/task/stats") {
      auto stats = agent_.StatsForIp(request.remote_address, rest == "/task/stats" ? "" : container);
      r.body = stats ? stats->dump() : "{}";
      return r;
    }
    r.body = md->dump();
    return r;
  }

 private:
  agent::NodeAgent& agent_;
};

}  // namespace

struct LocalAgent::Metadata {
  std::unique_ptr<http::Server> server;
};

LocalAgent::LocalAgent(Config config, std::string api_address, std::string node_token,
                       LocalAgentHooks hooks)
    : config_(std::move(config)),
      api_address_(std::move(api_address)),
      node_token_(std::move(node_token)),
      hooks_(std::move(hooks)) {}

LocalAgent::~LocalAgent() { Stop(false); }

Status LocalAgent::Start() {
  node_id_ = StableNodeId(config_.data_dir);
  std::string gateway = GatewayOf(config_.subnet);
  std::string port = api_address_.substr(api_address_.rfind(':') + 1);
  agent::NodeAgentOptions o;
  o.state_dir = config_.data_dir + "/agent";
  o.region = config_.region;
  o.account_id = config_.account_id;
  o.runtime = config_.runtime;
  o.bridge = config_.bridge;
  o.subnet = config_.subnet;
  o.local_registry = "127.0.0.1:" + port;
  o.registry_password = hooks_.registry_password;
  o.init_binary = config_.init_binary;
  o.shim_binary = config_.shim_binary;
  o.cgroup_parent = config_.cgroup_parent;
  o.registry_auth_file = config_.registry_auth_file;
  o.image_gc_interval = std::chrono::seconds(config_.image_gc_interval);
  o.image_gc_grace = std::chrono::seconds(config_.image_gc_grace);
  if (o.init_binary.empty()) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    auto beside = exe.parent_path() / "berth-init";
    if (!ec && std::filesystem::exists(beside)) {
      o.init_binary = beside.string();
    }
  }
  if (o.shim_binary.empty()) {
    o.shim_binary = FindHelperBinary("berth-shim");
    if (o.shim_binary.empty()) {
      spdlog::warn("event=shim_missing msg=\"berth-shim not found: the exit codes of containers "
                   "that end while berthd is down will be unknown\"");
    }
  } else if (access(o.shim_binary.c_str(), X_OK) != 0) {
    return ServerError("shim binary " + o.shim_binary + " is not executable");
  }
  if (!o.registry_auth_file.empty()) {
    auto auths = agent::LoadRegistryAuth(o.registry_auth_file);
    if (!auths.ok()) {
      return ServerError(auths.error().message);
    }
    spdlog::info("event=registry_auth_loaded file={} registries={}", o.registry_auth_file,
                 auths->size());
  }
  reports_ = std::make_unique<ReportQueue>([this, gateway](const agent::TaskReport& r) {
    ecs::AgentControlClient client("http://" + api_address_, node_token_);
    auto sent = client.Report(ToControlPlane(r, node_id_, gateway));
    if (!sent.ok()) {
      spdlog::warn("event=report_failed task={} error=\"{}\"", r.task_id, sent.error().message);
    }
  });
  agent_ = std::make_unique<agent::NodeAgent>(
      o, [this](const agent::TaskReport& r) { reports_->Push(r); }, hooks_.ship_logs);
  BERTH_TRY(agent_->Init());

  // The metadata endpoint listens on the bridge's own address, where tasks
  // reach it and nothing outside the node does.
  auto bridge_ip = agent_->EnsureBridge();
  if (bridge_ip.ok()) {
    http::ServerOptions mo;
    mo.listen = *bridge_ip + ":" + std::to_string(config_.metadata_port);
    mo.io_threads = 1;
    mo.worker_threads = 2;
    metadata_ = std::make_unique<Metadata>();
    metadata_->server = std::make_unique<http::Server>(mo);
    metadata_->server->AddRoute(std::make_shared<MetadataRoute>(*agent_));
    auto bound = metadata_->server->Listen();
    if (bound.ok()) {
      metadata_->server->Start();
      agent_->SetMetadataBaseUrl("http://" + *bound);
      spdlog::info("event=metadata_endpoint address={}", *bound);
    } else {
      spdlog::warn("event=metadata_endpoint_unavailable error=\"{}\"", bound.error().message);
      metadata_.reset();
    }
  } else {
    spdlog::warn("event=bridge_unavailable error=\"{}\"", bridge_ip.error().message);
  }

  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void LocalAgent::Loop() {
  ecs::AgentControlClient client("http://" + api_address_, node_token_,
                                 std::chrono::seconds(30));
  auto [cpu, mem] = NodeCapacity();
  ecs::NodeRegistration reg;
  reg.node_id = node_id_;
  reg.cpu = cpu;
  reg.memory = mem;
  reg.address = "local";
  bool registered = false;
  int64_t after = 0;
  while (!stop_) {
    if (!registered) {
      auto r = client.Register(reg);
      if (!r.ok()) {
        spdlog::warn("event=agent_register_failed error=\"{}\"", r.error().message);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      registered = true;
      spdlog::info("event=agent_registered node={} cpu={} memory_mib={}", node_id_, cpu, mem);
    }
    auto desired = client.Desired(node_id_, after, std::chrono::seconds(5));
    if (!desired.ok()) {
      if (stop_) {
        break;
      }
      spdlog::debug("event=desired_failed error=\"{}\"", desired.error().message);
      registered = desired.error().status != 404 && registered;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    after = desired->revision;
    std::vector<agent::DesiredTask> tasks;
    for (const auto& d : desired->tasks) {
      tasks.push_back(ToAgent(d));
    }
    agent_->Apply(tasks);
  }
}

std::optional<agent::Json> LocalAgent::StatsForTask(const std::string& task_id) {
  if (!agent_) {
    return std::nullopt;
  }
  return agent_->StatsForTask(task_id);
}

void LocalAgent::Stop(bool stop_tasks) {
  if (stop_.exchange(true)) {
    return;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  if (metadata_) {
    metadata_->server->Stop();
  }
  if (agent_) {
    if (stop_tasks) {
      agent_->StopAll();
    } else {
      agent_->Detach();
    }
  }
  if (reports_) {
    reports_->Close();
  }
}

}  // namespace berth
