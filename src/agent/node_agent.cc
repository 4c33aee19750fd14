#include "agent/node_agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include "agent/cgroups.h"
#include "agent/cni.h"
#include "agent/image_config.h"
#include "agent/image_store.h"
#include "agent/netns.h"
#include "agent/oci_spec.h"
#include "agent/reaper.h"
#include "agent/registry_auth.h"
#include "agent/registry_client.h"
#include "agent/rootfs.h"
#include "agent/runc.h"
#include "common/time_util.h"

namespace berth::agent {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Json TaskReport::ToJson() const {
  Json containers_json = Json::array();
  for (const auto& c : containers) {
    Json j = {{"name", c.name},
              {"lastStatus", c.last_status},
              {"healthStatus", c.health_status},
              {"runtimeId", c.runtime_id}};
    if (c.exit_code) {
      j["exitCode"] = *c.exit_code;
    }
    if (!c.reason.empty()) {
      j["reason"] = c.reason;
    }
    if (!c.image_digest.empty()) {
      j["imageDigest"] = c.image_digest;
    }
    containers_json.push_back(std::move(j));
  }
  Json j = {{"taskId", task_id},         {"cluster", cluster},
            {"seq", seq},                {"lastStatus", last_status},
            {"healthStatus", health_status}, {"containers", containers_json}};
  if (!private_ip.empty()) {
    j["privateIpv4Address"] = private_ip;
    j["macAddress"] = mac_address;
  }
  if (!stop_code.empty()) {
    j["stopCode"] = stop_code;
  }
  if (!stopped_reason.empty()) {
    j["stoppedReason"] = stopped_reason;
  }
  auto ts = [&](const char* name, double v) {
    if (v > 0) {
      j[name] = v;
    }
  };
  ts("pullStartedAt", pull_started_at);
  ts("pullStoppedAt", pull_stopped_at);
  ts("startedAt", started_at);
  ts("executionStoppedAt", execution_stopped_at);
  return j;
}

struct NodeAgent::Shared {
  NodeAgentOptions options;
  std::unique_ptr<CgroupManager> cgroups;
  std::unique_ptr<CniNetwork> cni;
  std::unique_ptr<ImageStore> images;
  std::unique_ptr<Runc> runc;
  // One pull of an image at a time keeps layer fetches single; image collection takes it too.
  std::mutex pull_mu;
  std::mutex url_mu;
  std::string metadata_base_url;  // guarded by url_mu

  std::string MetadataBaseUrl() {
    std::lock_guard lock(url_mu);
    return metadata_base_url;
  }
};

namespace {

constexpr size_t kMaxEventBytes = 256 * 1024 - 26;

std::string HostnameForIp(const std::string& ip) {
  std::string h = "ip-" + ip;
  std::replace(h.begin(), h.end(), '.', '-');
  return h + ".ec2.internal";
}

// Follows a container's output file and cuts it into log events.
struct OutputTail {
  std::string path;
  off_t offset = 0;
  std::string partial;

  std::vector<std::pair<int64_t, std::string>> Read(bool flush) {
    std::vector<std::pair<int64_t, std::string>> out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[64 * 1024];
      while (true) {
        ssize_t n = ::pread(fd, buf, sizeof(buf), offset);
        if (n <= 0) {
          break;
        }
        offset += n;
        partial.append(buf, static_cast<size_t>(n));
      }
      ::close(fd);
    }
    int64_t now = NowEpochMillis();
    size_t start = 0;
    while (true) {
      size_t nl = partial.find('\n', start);
      if (nl == std::string::npos) {
        break;
      }
      std::string line = partial.substr(start, nl - start);
      for (size_t i = 0; i < line.size() || i == 0; i += kMaxEventBytes) {
        out.emplace_back(now, line.substr(i, kMaxEventBytes));
        if (line.size() <= kMaxEventBytes) {
          break;
        }
      }
      start = nl + 1;
    }
    partial.erase(0, start);
    while (partial.size() >= kMaxEventBytes) {
      out.emplace_back(now, partial.substr(0, kMaxEventBytes));
      partial.erase(0, kMaxEventBytes);
    }
    if (flush && !partial.empty()) {
      out.emplace_back(now, partial);
      partial.clear();
    }
    return out;
  }
};

// One cgroup's usage in the shape of Docker's stats (the metadata /stats answer).
Json DockerStatsJson(const CgroupStats& st, const std::string& name) {
  Json percpu = Json::array();
  for (auto v : st.cpu_usage_per_cpu_ns) {
    percpu.push_back(v);
  }
  return Json{
      {"read", NowEpochSeconds()},
      {"name", name},
      {"cpu_stats",
       {{"cpu_usage",
         {{"total_usage", st.cpu_usage_total_ns},
          {"usage_in_usermode", st.cpu_usage_user_ns},
          {"usage_in_kernelmode", st.cpu_usage_system_ns},
          {"percpu_usage", percpu}}},
        {"online_cpus", sysconf(_SC_NPROCESSORS_ONLN)},
        {"throttling_data",
         {{"periods", st.cpu_periods},
          {"throttled_periods", st.cpu_throttled_periods},
          {"throttled_time", st.cpu_throttled_time_ns}}}}},
      {"memory_stats",
       {{"usage", st.memory_usage_bytes},
        {"max_usage", st.memory_max_usage_bytes},
        {"limit", st.memory_limit_bytes},
        {"stats", st.memory_stat}}},
      {"pids_stats", {{"current", st.pids_current}, {"limit", st.pids_limit}}}};
}

}  // namespace

class NodeAgent::TaskRun : public std::enable_shared_from_this<NodeAgent::TaskRun> {
 public:
  TaskRun(std::shared_ptr<Shared> shared, DesiredTask desired, ReportFn report, LogFn logs)
      : shared_(std::move(shared)),
        desired_(std::move(desired)),
        report_fn_(std::move(report)),
        logs_fn_(std::move(logs)) {
    report_.task_id = desired_.task_id;
    report_.cluster = desired_.cluster;
    report_.last_status = "PENDING";
    report_.seq = desired_.seq;
    for (const auto& c : desired_.task_definition.value("containerDefinitions", Json::array())) {
      Container ct;
      ct.def = c;
      ct.name = c.value("name", "");
      ct.essential = c.value("essential", true);
      ct.runtime_id = desired_.task_id + "-" + ct.name;
      ct.report.name = ct.name;
      ct.report.runtime_id = ct.runtime_id;
      containers_.push_back(std::move(ct));
    }
    task_dir_ = shared_->options.state_dir + "/tasks/" + desired_.task_id;
    netns_name_ = "berth-" + desired_.task_id;
  }

  // The record a restarted agent takes the task back from.
  Json StateJson() {
    std::lock_guard lock(mu_);
    Json cs = Json::array();
    for (const auto& c : containers_) {
      Json cj = {{"name", c.name},          {"pid", c.pid},
                 {"started", c.started},    {"exited", c.exited},
                 {"dir", c.dir},            {"outOffset", c.out.offset},
                 {"errOffset", c.err.offset}, {"report", Json::object()}};
      cj["exitFile"] = c.exit_file;
      cj["image"] = PulledImageRecord(c.image);
      cj["report"] = {{"lastStatus", c.report.last_status},
                      {"reason", c.report.reason},
                      {"healthStatus", c.report.health_status},
                      {"imageDigest", c.report.image_digest}};
      if (c.report.exit_code) {
        cj["report"]["exitCode"] = *c.report.exit_code;
      }
      cs.push_back(std::move(cj));
    }
    return Json{{"taskId", desired_.task_id},
                {"taskArn", desired_.task_arn},
                {"cluster", desired_.cluster},
                {"desiredStatus", desired_.desired_status},
                {"taskDefinition", desired_.task_definition},
                {"overrides", desired_.overrides},
                {"netnsPath", netns_path_},
                {"cgroupCreated", cgroup_created_},
                {"etc", {{"hosts", etc_.hosts}, {"hostname", etc_.hostname},
                         {"resolvConf", etc_.resolv_conf}}},
                {"cpu", cpu_units_},
                {"memory", memory_mib_},
                {"report", report_.ToJson()},
                {"containers", cs}};
  }

  void Persist() {
    std::string path = task_dir_ + "/state.json";
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      if (!out) {
        return;
      }
      out << StateJson().dump();
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
  }

  // Restores a task from its record; returns false when the record is unusable.
  bool Restore(const Json& st) {
    try {
      netns_path_ = st.value("netnsPath", "");
      cgroup_created_ = st.value("cgroupCreated", false);
      const Json etc = st.value("etc", Json::object());
      etc_.hosts = etc.value("hosts", "");
      etc_.hostname = etc.value("hostname", "");
      etc_.resolv_conf = etc.value("resolvConf", "");
      cpu_units_ = st.value("cpu", 256);
      memory_mib_ = st.value("memory", 512);
      const Json r = st.value("report", Json::object());
      report_.seq = std::max<uint64_t>(report_.seq, r.value("seq", 0ull));
      report_.last_status = r.value("lastStatus", "PENDING");
      report_.health_status = r.value("healthStatus", "UNKNOWN");
      report_.private_ip = r.value("privateIpv4Address", "");
      report_.mac_address = r.value("macAddress", "");
      report_.stop_code = r.value("stopCode", "");
      report_.stopped_reason = r.value("stoppedReason", "");
      report_.pull_started_at = r.value("pullStartedAt", 0.0);
      report_.pull_stopped_at = r.value("pullStoppedAt", 0.0);
      report_.started_at = r.value("startedAt", 0.0);
      report_.execution_stopped_at = r.value("executionStoppedAt", 0.0);
      for (const auto& cj : st.value("containers", Json::array())) {
        for (auto& c : containers_) {
          if (c.name != cj.value("name", "")) {
            continue;
          }
          c.pid = cj.value("pid", -1);
          c.started = cj.value("started", false);
          c.exited = cj.value("exited", false);
          c.dir = cj.value("dir", "");
          c.out.path = c.dir + "/stdout.log";
          c.err.path = c.dir + "/stderr.log";
          c.out.offset = cj.value("outOffset", 0);
          c.err.offset = cj.value("errOffset", 0);
          c.exit_file = cj.value("exitFile", "");
          if (cj.contains("image")) {
            // A bad image record leaves the image unknown, which holds off image collection
            // rather than giving up the task.
            auto image = PulledImageFromRecord(cj["image"], *shared_->images);
            if (image.ok()) {
              c.image = std::move(image.value());
              c.image_known = true;
            } else {
              spdlog::warn("event=task_image_record_unusable task={} container={} error=\"{}\"",
                           desired_.task_id, c.name, image.error().message);
            }
          }
          const Json cr = cj.value("report", Json::object());
          c.report.last_status = cr.value("lastStatus", "PENDING");
          c.report.reason = cr.value("reason", "");
          c.report.health_status = cr.value("healthStatus", "UNKNOWN");
          c.report.image_digest = cr.value("imageDigest", "");
          if (cr.contains("exitCode")) {
            c.report.exit_code = cr["exitCode"].get<int>();
          }
          c.adopted = c.started && !c.exited;
          c.started_at = Clock::now();
          c.next_check = Clock::now();
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("event=task_record_unusable task={} error=\"{}\"", desired_.task_id,
                   e.what());
      return false;
    }
    adopted_ = true;
    return true;
  }

  const std::string& task_id() const { return desired_.task_id; }

  void Start() {
    auto self = shared_from_this();
    thread_ = std::thread([self] { self->Run(); });
  }

  void Join() {
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  void RequestStop(const std::string& code, const std::string& reason) {
    std::lock_guard lock(mu_);
    if (!stop_requested_) {
      stop_requested_ = true;
      stop_code_ = code.empty() ? "UserInitiated" : code;
      stop_reason_ = reason;
    }
    cv_.notify_all();
  }

  void Detach() {
    std::lock_guard lock(mu_);
    detached_ = true;
    cv_.notify_all();
  }

  bool Finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }

  TaskReport CurrentReport() {
    std::lock_guard lock(mu_);
    return report_;
  }

  std::string ip() {
    std::lock_guard lock(mu_);
    return report_.private_ip;
  }

  Json Metadata(const std::string& what) {
    std::lock_guard lock(mu_);
    Json containers = Json::array();
    for (const auto& c : containers_) {
      Json cj = {{"DockerId", c.runtime_id},
                 {"Name", c.name},
                 {"DockerName", c.runtime_id},
                 {"Image", c.def.value("image", "")},
                 {"ImageID", c.report.image_digest},
                 {"DesiredStatus", desired_.desired_status},
                 {"KnownStatus", c.report.last_status},
                 {"Limits", {{"CPU", c.def.value("cpu", 0)}, {"Memory", c.def.value("memory", 0)}}},
                 {"Type", "NORMAL"},
                 {"ContainerARN", "arn:aws:ecs:" + shared_->options.region + ":" +
                                      shared_->options.account_id + ":container/" +
                                      desired_.cluster + "/" + desired_.task_id + "/" + c.name},
                 {"Networks",
                  Json::array({{{"NetworkMode", "awsvpc"},
                                {"IPv4Addresses", Json::array({report_.private_ip})},
                                {"MACAddress", report_.mac_address}}})}};
      if (c.report.exit_code) {
        cj["ExitCode"] = *c.report.exit_code;
      }
      if (c.def.contains("healthCheck")) {
        cj["Health"] = {{"status", c.report.health_status}};
      }
      containers.push_back(std::move(cj));
    }
    const auto& td = desired_.task_definition;
    Json task = {{"Cluster", desired_.cluster},
                 {"TaskARN", desired_.task_arn},
                 {"Family", td.value("family", "")},
                 {"Revision", std::to_string(td.value("revision", 0))},
                 {"DesiredStatus", desired_.desired_status},
                 {"KnownStatus", report_.last_status},
                 {"Limits",
                  {{"CPU", cpu_units_ / 1024.0}, {"Memory", memory_mib_}}},
                 {"LaunchType", "FARGATE"},
                 {"AvailabilityZone", shared_->options.region + "a"},
                 {"Containers", containers}};
    if (what == "task") {
      return task;
    }
    // The container's own view: the first container unless one is named.
    for (auto& c : containers) {
      if (c["Name"] == what) {
        return c;
      }
    }
    return containers.empty() ? Json::object() : containers[0];
  }

  Json Stats(const std::string& container) {
    auto one = [&](const std::string& name) -> Json {
      auto st = shared_->cgroups->ContainerStats(desired_.task_id, name);
      if (!st.ok()) {
        return nullptr;
      }
      return DockerStatsJson(*st, desired_.task_id + "-" + name);
    };
    if (!container.empty()) {
      return one(container);
    }
    Json all = Json::object();
    for (const auto& c : containers_) {
      all[c.runtime_id] = one(c.name);
    }
    return all;
  }

  // Usage of the whole task (its cgroup), in the shape of one container's stats.
  std::optional<Json> TaskStats() {
    auto st = shared_->cgroups->Stats(desired_.task_id);
    if (!st.ok()) {
      return std::nullopt;
    }
    return DockerStatsJson(*st, desired_.task_id);
  }

 private:
  struct Container {
    std::string name;
    Json def;
    bool essential = true;
    std::string runtime_id;
    pid_t pid = -1;
    bool started = false;
    bool exited = false;
    bool killed = false;
    Clock::time_point kill_deadline;
    ContainerReport report;
    PulledImage image;
    std::string dir;
    OutputTail out;
    OutputTail err;
    // health
    Clock::time_point started_at;
    Clock::time_point next_check;
    int failures = 0;
    // Started by an earlier run of the agent: not our child, so without a shim its exit is
    // seen by polling runc and its exit code is lost.
    bool adopted = false;
    // Where berth-shim records the init's exit status; "" when started without the shim.
    std::string exit_file;
    // Whether `image` says which store digests the container uses (always, unless it was
    // taken back from a record that does not say).
    bool image_known = false;
    // Polling runc about a container whose shim has not reported (see ContainerEnded).
    Clock::time_point next_state_check;
    std::optional<Clock::time_point> gone_since;
  };

  void Publish() {
    TaskReport copy;
    {
      std::lock_guard lock(mu_);
      report_.seq++;
      report_.containers.clear();
      for (const auto& c : containers_) {
        report_.containers.push_back(c.report);
      }
      copy = report_;
    }
    Persist();
    report_fn_(copy);
  }

  void SetStatus(const std::string& status) {
    {
      std::lock_guard lock(mu_);
      report_.last_status = status;
    }
    Publish();
  }

  bool StopWanted() {
    std::lock_guard lock(mu_);
    return stop_requested_;
  }

  void Fail(const std::string& code, const std::string& reason) {
    std::lock_guard lock(mu_);
    if (report_.stop_code.empty()) {
      report_.stop_code = code;
      report_.stopped_reason = reason;
    }
    stop_requested_ = true;
  }

  Result<PulledImage> PullImage(const std::string& image) {
    auto ref = ImageRef::Parse(image);
    if (!ref.ok()) {
      return ref.error();
    }
    const auto& opt = shared_->options;
    auto same_host = [](std::string a, std::string b) {
      for (std::string* s : {&a, &b}) {
        if (s->rfind("localhost:", 0) == 0) {
          *s = "127.0.0.1" + s->substr(9);
        }
      }
      return a == b;
    };
    bool local = ref->registry.empty() || ParseEcrRegistry(ref->registry).has_value() ||
                 same_host(ref->registry, opt.local_registry);
    RegistryClientOptions ropts;
    Credentials creds;
    if (local) {
      ref->registry = opt.local_registry;
      ropts.plain_http = true;
      creds.username = "AWS";
      creds.password = opt.registry_password ? opt.registry_password() : "";
    } else {
      if (ref->registry.rfind("127.", 0) == 0 || ref->registry.rfind("localhost", 0) == 0) {
        ropts.plain_http = true;
      }
      // LIMITATION: a container definition's repositoryCredentials.credentialsParameter (a
      // Secrets Manager ARN) is not read, since berth serves no Secrets Manager; credentials
      // for other registries come from the node's registry auth file.
      if (!opt.registry_auth_file.empty()) {
        auto auths = LoadRegistryAuth(opt.registry_auth_file);
        if (!auths.ok()) {
          return Error{500, "CannotPullContainerError", auths.error().message, {}};
        }
        if (auto found = FindRegistryCredentials(*auths, ref->registry)) {
          creds = *found;
        }
      }
    }
    RegistryClient client(ropts);
    return client.Pull(*ref, *shared_->images, creds);
  }

  // Pulls the container's image and makes it the container's, both under the agent's pull
  // lock: an image collection (which takes that lock too) then sees every pulled image either
  // still being pulled or owned by its task, never in between.
  Status PullInto(Container& c) {
    std::lock_guard pull_lock(shared_->pull_mu);
    auto img = PullImage(c.def.value("image", ""));
    if (!img.ok()) {
      return img.error();
    }
    shared_->images->MarkUsed(img->StoreDigests());
    std::lock_guard lock(mu_);
    c.image = std::move(img.value());
    c.report.image_digest = c.image.digest;
    c.image_known = true;
    return Ok();
  }

 public:
  // The store digests this task's containers use; nullopt when a container taken back from
  // an older record may have a rootfs on layers nobody knows.
  std::optional<std::set<std::string>> ImageDigests() {
    std::lock_guard lock(mu_);
    std::set<std::string> digests;
    for (const auto& c : containers_) {
      if (!c.image_known) {
        if (adopted_ && (c.started || !c.dir.empty())) {
          return std::nullopt;
        }
        continue;
      }
      auto mine = c.image.StoreDigests();
      digests.insert(mine.begin(), mine.end());
    }
    return digests;
  }

 private:
  Status SetUpNetwork() {
    auto path = CreateNetns(netns_name_, shared_->options.netns_dir);
    if (!path.ok()) {
      return path.error();
    }
    netns_path_ = *path;
    auto att = shared_->cni->Add(desired_.task_id, netns_path_);
    if (!att.ok()) {
      return att.error();
    }
    std::lock_guard lock(mu_);
    report_.private_ip = att->ip;
    report_.mac_address = att->mac;
    return Ok();
  }

  Status StartContainer(Container& c) {
    c.dir = task_dir_ + "/containers/" + c.name;
    std::error_code ec;
    fs::create_directories(c.dir, ec);
    Json override_json = Json::object();
    for (const auto& o : desired_.overrides.value("containerOverrides", Json::array())) {
      if (o.value("name", "") == c.name) {
        override_json = o;
      }
    }
    ProcessConfig pc = MergeImageConfig(c.image.config, c.def, override_json);
    if (pc.args.empty()) {
      return ClientError("CannotStartContainerError",
                         "CannotStartContainerError: no command specified");
    }
    const auto& opt = shared_->options;
    pc.env.push_back("AWS_EXECUTION_ENV=AWS_ECS_FARGATE");
    pc.env.push_back("AWS_REGION=" + opt.region);
    pc.env.push_back("AWS_DEFAULT_REGION=" + opt.region);
    std::string base = shared_->MetadataBaseUrl();
    if (!base.empty()) {
      pc.env.push_back("ECS_CONTAINER_METADATA_URI_V4=" + base + "/v4/" + desired_.task_id +
                       "/" + c.name);
      pc.env.push_back("ECS_CONTAINER_METADATA_URI=" + base + "/v3/" + desired_.task_id + "/" +
                       c.name);
    }
    std::vector<std::string> lowers;
    for (const auto& l : c.image.layers) {
      lowers.push_back(l.path);
    }
    auto rootfs = MountRootfs(lowers, c.dir, false);
    if (!rootfs.ok()) {
      return rootfs.error();
    }
    auto user = ResolveContainerUser(*rootfs, pc.user);
    if (!user.ok()) {
      return user.error();
    }
    ContainerRuntimeSpec spec;
    spec.args = pc.args;
    spec.env = pc.env;
    spec.cwd = pc.cwd.empty() ? "/" : pc.cwd;
    spec.uid = user->uid;
    spec.gid = user->gid;
    spec.additional_gids = user->additional_gids;
    spec.hostname = HostnameForIp(report_.private_ip);
    spec.rootfs = *rootfs;
    spec.readonly_rootfs = c.def.value("readonlyRootFilesystem", false);
    spec.netns_path = netns_path_;
    spec.cgroups_path = shared_->cgroups->ContainerCgroupPath(desired_.task_id, c.name);
    int cpu = c.def.value("cpu", 0);
    if (cpu > 0) {
      spec.cpu_shares = static_cast<uint64_t>(std::max(cpu, 2));
    }
    int64_t memory = c.def.value("memory", 0);
    if (memory > 0) {
      spec.memory_limit_bytes = memory << 20;
    }
    int64_t reservation = c.def.value("memoryReservation", 0);
    if (reservation > 0) {
      spec.memory_reservation_bytes = reservation << 20;
    }
    for (const auto& u : c.def.value("ulimits", Json::array())) {
      std::string name = u.value("name", "");
      std::string upper;
      for (char ch : name) {
        upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
      }
      OciRlimit rl{"RLIMIT_" + upper, u.value("softLimit", 0ull), u.value("hardLimit", 0ull)};
      bool replaced = false;
      for (auto& existing : spec.rlimits) {
        if (existing.type == rl.type) {
          existing = rl;
          replaced = true;
        }
      }
      if (!replaced) {
        spec.rlimits.push_back(rl);
      }
    }
    const Json lp = c.def.value("linuxParameters", Json::object());
    if (lp.value("initProcessEnabled", false) && !opt.init_binary.empty()) {
      spec.init_process_enabled = true;
      spec.init_binary = opt.init_binary;
    }
    if (lp.contains("capabilities")) {
      for (const auto& a : lp["capabilities"].value("add", Json::array())) {
        spec.cap_add.push_back(a.get<std::string>());
      }
      for (const auto& d : lp["capabilities"].value("drop", Json::array())) {
        spec.cap_drop.push_back(d.get<std::string>());
      }
    }
    for (const auto& t : lp.value("tmpfs", Json::array())) {
      spec.extra_mounts.push_back(
          OciMount::Tmpfs(t.value("containerPath", ""), uint64_t(t.value("size", 64)) << 20));
    }
    spec.hosts_file = etc_.hosts;
    spec.hostname_file = etc_.hostname;
    spec.resolv_conf_file = etc_.resolv_conf;
    auto config = BuildOciSpec(spec);
    if (!config.ok()) {
      return config.error();
    }
    std::string bundle = c.dir + "/bundle";
    fs::create_directories(bundle, ec);
    BERTH_TRY(WriteOciBundle(bundle, *config));
    c.out.path = c.dir + "/stdout.log";
    c.err.path = c.dir + "/stderr.log";
    std::string exit_file = c.dir + "/exit";
    auto pid = shared_->runc->Run(c.runtime_id, bundle, c.out.path, c.err.path, exit_file);
    if (!pid.ok()) {
      return pid.error();
    }
    std::lock_guard lock(mu_);
    c.pid = *pid;
    c.exit_file = shared_->runc->UsesShim() ? exit_file : std::string();
    c.started = true;
    c.started_at = Clock::now();
    int start_period = c.def.value("healthCheck", Json::object()).value("startPeriod", 0);
    c.next_check = c.started_at + std::chrono::seconds(1);
    (void)start_period;
    c.report.last_status = "RUNNING";
    if (c.def.contains("healthCheck")) {
      c.report.health_status = "UNKNOWN";
    }
    return Ok();
  }

  // Whether every dependsOn condition of `c` holds; sets `failed` when one never can.
  bool DependenciesMet(const Container& c, std::string* failed) {
    for (const auto& d : c.def.value("dependsOn", Json::array())) {
      std::string name = d.value("containerName", "");
      std::string cond = d.value("condition", "START");
      const Container* dep = nullptr;
      for (const auto& other : containers_) {
        if (other.name == name) {
          dep = &other;
        }
      }
      if (dep == nullptr) {
        continue;
      }
      if (cond == "START") {
        if (!dep->started) return false;
      } else if (cond == "COMPLETE") {
        if (!dep->exited) return false;
      } else if (cond == "SUCCESS") {
        if (!dep->exited) return false;
        if (dep->report.exit_code.value_or(1) != 0) {
          *failed = "dependency " + name + " exited with code " +
                    std::to_string(dep->report.exit_code.value_or(-1));
          return false;
        }
      } else if (cond == "HEALTHY") {
        if (dep->report.health_status != "HEALTHY") {
          if (dep->exited) {
            *failed = "dependency " + name + " exited before it was healthy";
          }
          return false;
        }
      }
    }
    return true;
  }

  void RunHealthChecks() {
    for (auto& c : containers_) {
      if (!c.started || c.exited || !c.def.contains("healthCheck")) {
        continue;
      }
      const Json hc = c.def["healthCheck"];
      auto now = Clock::now();
      if (now < c.next_check) {
        continue;
      }
      int interval = hc.value("interval", 30);
      int timeout = hc.value("timeout", 5);
      int retries = hc.value("retries", 3);
      int start_period = hc.value("startPeriod", 0);
      std::vector<std::string> cmd;
      const Json command = hc.value("command", Json::array());
      if (!command.empty()) {
        std::string kind = command[0].get<std::string>();
        if (kind == "CMD-SHELL") {
          std::string joined;
          for (size_t i = 1; i < command.size(); ++i) {
            joined += (i > 1 ? " " : "") + command[i].get<std::string>();
          }
          cmd = {"/bin/sh", "-c", joined};
        } else {
          for (size_t i = (kind == "CMD" ? 1 : 0); i < command.size(); ++i) {
            cmd.push_back(command[i].get<std::string>());
          }
        }
      }
      auto code = shared_->runc->Exec(c.runtime_id, cmd, {}, std::chrono::seconds(timeout));
      bool ok = code.ok() && !code->timed_out && code->exit_code == 0;
      bool in_grace = now < c.started_at + std::chrono::seconds(start_period);
      std::string before = c.report.health_status;
      {
        std::lock_guard lock(mu_);
        if (ok) {
          c.failures = 0;
          c.report.health_status = "HEALTHY";
        } else if (!in_grace) {
          if (++c.failures >= retries) {
            c.report.health_status = "UNHEALTHY";
          }
        }
        c.next_check = Clock::now() + std::chrono::seconds(interval);
      }
      if (before != c.report.health_status) {
        UpdateTaskHealth();
        Publish();
      }
    }
  }

  void UpdateTaskHealth() {
    std::lock_guard lock(mu_);
    bool any_check = false;
    bool all_healthy = true;
    bool unhealthy = false;
    for (const auto& c : containers_) {
      if (!c.essential || !c.def.contains("healthCheck")) {
        continue;
      }
      any_check = true;
      if (c.report.health_status == "UNHEALTHY") {
        unhealthy = true;
      }
      if (c.report.health_status != "HEALTHY") {
        all_healthy = false;
      }
    }
    report_.health_status = unhealthy ? "UNHEALTHY" : (any_check && all_healthy ? "HEALTHY"
                                                                                 : "UNKNOWN");
  }

  void ShipLogs(bool flush) {
    bool shipped = false;
    for (auto& c : containers_) {
      if (!c.started) {
        continue;
      }
      const Json lc = c.def.value("logConfiguration", Json::object());
      std::vector<std::pair<int64_t, std::string>> events;
      for (OutputTail* t : {&c.out, &c.err}) {
        auto got = t->Read(flush);
        events.insert(events.end(), got.begin(), got.end());
      }
      if (events.empty() || lc.value("logDriver", "") != "awslogs" || !logs_fn_) {
        continue;
      }
      std::stable_sort(events.begin(), events.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      const Json o = lc.value("options", Json::object());
      ShippedLog log;
      log.group = o.value("awslogs-group", "");
      std::string prefix = o.value("awslogs-stream-prefix", "");
      log.stream = (prefix.empty() ? "" : prefix + "/") + c.name + "/" + desired_.task_id;
      log.create_group = o.value("awslogs-create-group", "") == "true";
      log.events = std::move(events);
      logs_fn_(log);
      shipped = true;
    }
    if (shipped) {
      Persist();  // the shipped offsets, so a restarted agent ships nothing twice
    }
  }

  // Whether the container's init process has ended; sets `code` when its exit status is known.
  bool ContainerEnded(Container& c, std::optional<int>* code) {
    if (!c.exit_file.empty()) {
      auto recorded = ReadExitFile(c.exit_file);
      if (!recorded.ok()) {
        spdlog::warn("event=exit_file_unreadable task={} container={} error=\"{}\"",
                     desired_.task_id, c.name, recorded.error().message);
        return true;
      }
      if (recorded->has_value()) {
        *code = (*recorded)->exit_code;
        return true;
      }
      // The shim writes the record as soon as it has reaped the init. Only if the shim itself
      // was killed will nothing ever write it: ask runc now and then, which costs a process.
      return RuntimeSaysGone(c, std::chrono::seconds(1), std::chrono::seconds(2));
    }
    if (c.adopted) {
      return RuntimeSaysGone(c, Clock::duration::zero(), Clock::duration::zero());
    }
    auto exit = Reaper::Instance().Peek(c.pid);
    if (!exit) {
      return false;
    }
    *code = exit->exit_code;
    return true;
  }

  // Asks runc, at most once per `every`, whether the container's init is gone; true once it
  // has been gone for `settle` (time for its shim to write the exit record).
  bool RuntimeSaysGone(Container& c, Clock::duration every, Clock::duration settle) {
    auto now = Clock::now();
    if (now < c.next_state_check) {
      return false;
    }
    c.next_state_check = now + every;
    auto state = shared_->runc->State(c.runtime_id);
    bool alive = state.ok() && state->status != ContainerStatus::kStopped && state->pid > 0;
    if (alive) {
      c.gone_since.reset();
      return false;
    }
    if (!c.gone_since) {
      c.gone_since = now;
    }
    return now - *c.gone_since >= settle;
  }

  // Reaps exited containers; returns true when an essential one exited.
  bool CollectExits(bool* any_exited = nullptr) {
    bool essential_exited = false;
    for (auto& c : containers_) {
      if (!c.started || c.exited) {
        continue;
      }
      std::optional<int> code;
      if (!ContainerEnded(c, &code)) {
        continue;
      }
      std::string reason;
      auto oom = shared_->cgroups->OomKilled(desired_.task_id, c.name);
      if (oom.ok() && *oom && code.value_or(137) == 137) {
        reason = "OutOfMemoryError: Container killed due to memory usage";
      } else if (!code) {
        reason = "The container exited while the node agent was restarting; its exit code is "
                 "unknown.";
      }
      {
        std::lock_guard lock(mu_);
        c.exited = true;
        c.report.last_status = "STOPPED";
        c.report.exit_code = code;
        if (!reason.empty()) {
          c.report.reason = reason;
        }
      }
      spdlog::info("event=container_exited task={} container={} exit_code={}", desired_.task_id,
                   c.name, code ? std::to_string(*code) : "unknown");
      if (c.essential) {
        essential_exited = true;
      }
      if (any_exited != nullptr) {
        *any_exited = true;
      }
    }
    return essential_exited;
  }

  void StopContainers() {
    auto now = Clock::now();
    for (auto& c : containers_) {
      if (!c.started || c.exited) {
        continue;
      }
      int timeout = c.def.value("stopTimeout", 30);
      (void)shared_->runc->Kill(c.runtime_id, SIGTERM);
      c.kill_deadline = now + std::chrono::seconds(timeout);
    }
    while (true) {
      CollectExits();
      ShipLogs(false);
      bool all = true;
      for (auto& c : containers_) {
        if (!c.started || c.exited) {
          continue;
        }
        all = false;
        if (!c.killed && Clock::now() >= c.kill_deadline) {
          (void)shared_->runc->Kill(c.runtime_id, SIGKILL);
          c.killed = true;
        }
      }
      if (all) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void TearDown() {
    for (auto& c : containers_) {
      if (c.started) {
        (void)shared_->runc->Delete(c.runtime_id, true);
      }
      if (!c.dir.empty()) {
        Status st = UnmountRootfs(c.dir);
        if (!st.ok()) {
          spdlog::warn("event=unmount_failed task={} error=\"{}\"", desired_.task_id,
                       st.error().message);
        }
      }
    }
    if (cgroup_created_) {
      (void)shared_->cgroups->DestroyTask(desired_.task_id, true);
    }
    if (!netns_path_.empty()) {
      Status st = shared_->cni->Del(desired_.task_id, netns_path_);
      if (!st.ok()) {
        spdlog::warn("event=cni_del_failed task={} error=\"{}\"", desired_.task_id,
                     st.error().message);
      }
      (void)DeleteNetns(netns_name_, shared_->options.netns_dir);
    }
    std::error_code ec;
    fs::remove_all(task_dir_, ec);
    // The images stay cached for the grace period from now, for the next task that wants them.
    if (auto digests = ImageDigests()) {
      shared_->images->MarkUsed(*digests);
    }
  }

  void Run() {
    spdlog::info("event=task_start task={}", desired_.task_id);
    if (!adopted_) {
      Publish();
    }
    std::error_code ec;
    fs::create_directories(task_dir_, ec);
    const auto& td = desired_.task_definition;
    if (!adopted_) {
      cpu_units_ = std::atoi(td.value("cpu", "256").c_str());
      memory_mib_ = std::atoi(td.value("memory", "512").c_str());
    }
    if (!adopted_ && desired_.overrides.contains("cpu")) {
      cpu_units_ = std::atoi(desired_.overrides["cpu"].get<std::string>().c_str());
    }
    if (!adopted_ && desired_.overrides.contains("memory")) {
      memory_mib_ = std::atoi(desired_.overrides["memory"].get<std::string>().c_str());
    }

    bool started_ok = false;
    if (adopted_) {
      started_ok = true;
      spdlog::info("event=task_adopted task={} last_status={}", desired_.task_id,
                   report_.last_status);
    }
    do {
      if (adopted_) {
        break;
      }
      Status net = SetUpNetwork();
      if (!net.ok()) {
        Fail("TaskFailedToStart", "ResourceInitializationError: failed to set up the task "
                                  "network: " + net.error().message);
        break;
      }
      {
        std::lock_guard lock(mu_);
        report_.pull_started_at = NowEpochSeconds();
      }
      SetStatus("ACTIVATING");
      bool pulled = true;
      for (auto& c : containers_) {
        Status st = PullInto(c);
        if (!st.ok()) {
          std::lock_guard lock(mu_);
          c.report.reason = "CannotPullContainerError: " + st.error().message;
          report_.stop_code = "TaskFailedToStart";
          report_.stopped_reason = c.report.reason;
          stop_requested_ = true;
          pulled = false;
          break;
        }
      }
      {
        std::lock_guard lock(mu_);
        report_.pull_stopped_at = NowEpochSeconds();
      }
      Persist();  // the images, which a restarted agent must keep for this task
      if (!pulled) {
        break;
      }
      Status cg = shared_->cgroups->CreateTask(desired_.task_id,
                                               TaskCgroupLimits{static_cast<uint32_t>(cpu_units_),
                                                                static_cast<uint64_t>(memory_mib_),
                                                                4096});
      if (!cg.ok()) {
        Fail("TaskFailedToStart",
             "ResourceInitializationError: failed to create the task cgroup: " +
                 cg.error().message);
        break;
      }
      cgroup_created_ = true;
      TaskEtcSpec etc;
      etc.hostname = HostnameForIp(report_.private_ip);
      etc.ip = report_.private_ip;
      auto files = WriteTaskEtcFiles(task_dir_ + "/etc", etc);
      if (!files.ok()) {
        Fail("TaskFailedToStart", "ResourceInitializationError: " + files.error().message);
        break;
      }
      etc_ = *files;
      started_ok = true;
    } while (false);

    bool running_reported = adopted_ && report_.last_status == "RUNNING";
    if (adopted_) {
      Publish();
    }
    while (started_ok) {
      {
        std::unique_lock lock(mu_);
        if (detached_) {
          return;
        }
        if (stop_requested_) {
          break;
        }
      }
      // Start what can start.
      bool all_started = true;
      for (auto& c : containers_) {
        if (c.started) {
          continue;
        }
        std::string failed;
        if (!DependenciesMet(c, &failed)) {
          all_started = false;
          if (!failed.empty()) {
            Fail("TaskFailedToStart", "DependencyConditionFailed: " + failed);
          }
          continue;
        }
        Status st = StartContainer(c);
        if (!st.ok()) {
          std::lock_guard lock(mu_);
          c.report.reason = st.error().message;
          c.report.last_status = "STOPPED";
          report_.stop_code = "TaskFailedToStart";
          report_.stopped_reason = "CannotStartContainerError: " + st.error().message;
          stop_requested_ = true;
          break;
        }
        Publish();
      }
      if (all_started && !running_reported && !StopWanted()) {
        {
          std::lock_guard lock(mu_);
          report_.started_at = NowEpochSeconds();
        }
        SetStatus("RUNNING");
        running_reported = true;
      }
      bool any_exited = false;
      if (CollectExits(&any_exited)) {
        Fail("EssentialContainerExited", "Essential container in task exited");
      }
      if (any_exited) {
        Publish();
      }
      RunHealthChecks();
      ShipLogs(false);
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }

    {
      std::lock_guard lock(mu_);
      if (report_.stop_code.empty()) {
        report_.stop_code = stop_code_;
        report_.stopped_reason = stop_reason_;
      }
    }
    SetStatus("STOPPING");
    StopContainers();
    ShipLogs(true);
    {
      std::lock_guard lock(mu_);
      report_.execution_stopped_at = NowEpochSeconds();
      for (auto& c : containers_) {
        c.report.last_status = "STOPPED";
      }
    }
    SetStatus("DEPROVISIONING");
    TearDown();
    SetStatus("STOPPED");
    spdlog::info("event=task_stopped task={} stop_code={}", desired_.task_id, report_.stop_code);
    std::lock_guard lock(mu_);
    finished_ = true;
  }

  std::shared_ptr<Shared> shared_;
  DesiredTask desired_;
  ReportFn report_fn_;
  LogFn logs_fn_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  TaskReport report_;
  std::vector<Container> containers_;
  std::string task_dir_;
  std::string netns_name_;
  std::string netns_path_;
  TaskEtcFiles etc_;
  bool cgroup_created_ = false;
  bool adopted_ = false;
  bool stop_requested_ = false;
  bool detached_ = false;
  bool finished_ = false;
  std::string stop_code_;
  std::string stop_reason_;
  int cpu_units_ = 256;
  int memory_mib_ = 512;
};

NodeAgent::NodeAgent(NodeAgentOptions options, ReportFn report, LogFn logs)
    : options_(std::move(options)),
      report_(std::move(report)),
      logs_(std::move(logs)),
      shared_(std::make_shared<Shared>()) {
  shared_->options = options_;
}

NodeAgent::~NodeAgent() { Detach(); }

Status NodeAgent::Init() {
  std::error_code ec;
  fs::create_directories(options_.state_dir + "/tasks", ec);
  if (ec) {
    return ServerError("cannot create " + options_.state_dir + ": " + ec.message());
  }
  BERTH_TRY(Reaper::SetSubreaper(true));
  CgroupOptions cg;
  cg.parent = options_.cgroup_parent;
  auto mgr = NewCgroupManager(cg);
  if (!mgr.ok()) {
    return mgr.error();
  }
  shared_->cgroups = std::move(mgr.value());
  CniOptions cni;
  cni.plugin_dir = options_.cni_plugin_dir;
  cni.bridge = options_.bridge;
  cni.subnet = options_.subnet;
  cni.data_dir = options_.state_dir + "/cni";
  shared_->cni = std::make_unique<CniNetwork>(cni);
  shared_->images = std::make_unique<ImageStore>(options_.state_dir + "/images");
  BERTH_TRY(shared_->images->Init());
  RuncOptions ropts;
  ropts.binary = options_.runtime;
  ropts.state_root = options_.state_dir + "/runc";
  ropts.shim_binary = options_.shim_binary;
  shared_->runc = std::make_unique<Runc>(ropts);

  // Take back what a previous run left: every task record in the state dir.
  for (const auto& entry : fs::directory_iterator(options_.state_dir + "/tasks", ec)) {
    std::ifstream in(entry.path() / "state.json");
    if (!in) {
      continue;
    }
    Json st;
    try {
      in >> st;
    } catch (const std::exception&) {
      continue;
    }
    DesiredTask d;
    d.task_id = st.value("taskId", "");
    d.task_arn = st.value("taskArn", "");
    d.cluster = st.value("cluster", "");
    d.desired_status = st.value("desiredStatus", "RUNNING");
    d.task_definition = st.value("taskDefinition", Json::object());
    d.overrides = st.value("overrides", Json::object());
    if (d.task_id.empty()) {
      continue;
    }
    auto run = std::make_shared<TaskRun>(shared_, d, report_, logs_);
    if (!run->Restore(st)) {
      continue;
    }
    std::lock_guard lock(mu_);
    tasks_[d.task_id] = run;
    run->Start();
  }
  StartImageCollector();
  return Ok();
}

std::optional<std::set<std::string>> NodeAgent::InUseImageDigests() {
  std::lock_guard lock(mu_);
  std::set<std::string> digests;
  for (auto& [id, run] : tasks_) {
    if (run->Finished()) {
      continue;
    }
    auto mine = run->ImageDigests();
    if (!mine) {
      return std::nullopt;
    }
    digests.insert(mine->begin(), mine->end());
  }
  return digests;
}

Result<CollectStats> NodeAgent::CollectImages() {
  std::lock_guard pull_lock(shared_->pull_mu);
  auto in_use = InUseImageDigests();
  if (!in_use) {
    return Error{409, "ImagesInUseUnknown",
                 "a task taken back from an older record does not say which images it uses",
                 {}};
  }
  return shared_->images->CollectUnused(*in_use, options_.image_gc_grace,
                                        std::chrono::system_clock::now());
}

void NodeAgent::StartImageCollector() {
  if (options_.image_gc_interval.count() <= 0 || gc_thread_.joinable()) {
    return;
  }
  gc_thread_ = std::thread([this] {
    std::unique_lock lock(gc_mu_);
    while (!gc_cv_.wait_for(lock, options_.image_gc_interval, [this] { return gc_stop_; })) {
      lock.unlock();
      auto stats = CollectImages();
      if (!stats.ok()) {
        spdlog::warn("event=image_collection_failed error=\"{}\"", stats.error().message);
      } else if (stats->layers_removed + stats->blobs_removed > 0) {
        spdlog::info("event=images_collected layers_removed={} blobs_removed={} kept_in_use={} "
                     "kept_recent={}",
                     stats->layers_removed, stats->blobs_removed, stats->kept_in_use,
                     stats->kept_recent);
      } else {
        spdlog::debug("event=images_collected layers_removed=0 blobs_removed=0 kept_in_use={} "
                      "kept_recent={}",
                      stats->kept_in_use, stats->kept_recent);
      }
      lock.lock();
    }
  });
}

void NodeAgent::StopImageCollector() {
  {
    std::lock_guard lock(gc_mu_);
    gc_stop_ = true;
  }
  gc_cv_.notify_all();
  if (gc_thread_.joinable()) {
    gc_thread_.join();
  }
}

void NodeAgent::Apply(const std::vector<DesiredTask>& tasks) {
  std::lock_guard lock(mu_);
  std::set<std::string> named;
  for (const auto& t : tasks) {
    named.insert(t.task_id);
  }
  for (auto& [id, run] : tasks_) {
    if (!named.count(id)) {
      run->RequestStop("TaskFailedToStart", "The task is no longer placed on this node.");
    }
  }
  for (const auto& t : tasks) {
    auto it = tasks_.find(t.task_id);
    if (it == tasks_.end()) {
      if (t.desired_status == "STOPPED") {
        continue;
      }
      auto run = std::make_shared<TaskRun>(shared_, t, report_, logs_);
      tasks_[t.task_id] = run;
      run->Start();
    } else if (t.desired_status == "STOPPED") {
      it->second->RequestStop(t.stop_code, t.stopped_reason);
    }
  }
  // Forget finished runs.
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (it->second->Finished()) {
      it->second->Join();
      it = tasks_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<TaskReport> NodeAgent::Report(const std::string& task_id) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) {
    return std::nullopt;
  }
  return it->second->CurrentReport();
}

std::optional<Json> NodeAgent::MetadataForIp(const std::string& ip, const std::string& what) {
  std::lock_guard lock(mu_);
  for (auto& [id, run] : tasks_) {
    if (run->ip() == ip) {
      return run->Metadata(what);
    }
  }
  return std::nullopt;
}

std::optional<Json> NodeAgent::StatsForIp(const std::string& ip, const std::string& container) {
  std::shared_ptr<TaskRun> found;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, run] : tasks_) {
      if (run->ip() == ip) {
        found = run;
      }
    }
  }
  if (!found) {
    return std::nullopt;
  }
  return found->Stats(container);
}

std::optional<Json> NodeAgent::StatsForTask(const std::string& task_id) {
  std::shared_ptr<TaskRun> found;
  {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) {
      return std::nullopt;
    }
    found = it->second;
  }
  return found->TaskStats();
}

Result<std::string> NodeAgent::EnsureBridge() {
  const std::string& subnet = options_.subnet;
  size_t slash = subnet.find('/');
  std::string net = subnet.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "16" : subnet.substr(slash + 1);
  std::string gateway = net.substr(0, net.rfind('.')) + ".1";
  auto run = [](std::vector<std::string> argv) -> Status {
    ProcessOptions p;
    p.argv = std::move(argv);
    p.timeout = std::chrono::seconds(10);
    auto r = RunProcess(p);
    if (!r.ok()) {
      return r.error();
    }
    if (r->exit.exit_code != 0) {
      return ServerError(r->stderr_data);
    }
    return Ok();
  };
  if (!fs::exists("/sys/class/net/" + options_.bridge)) {
    BERTH_TRY(run({"ip", "link", "add", "name", options_.bridge, "type", "bridge"}));
  }
  BERTH_TRY(run({"ip", "addr", "replace", gateway + "/" + prefix, "dev", options_.bridge}));
  BERTH_TRY(run({"ip", "link", "set", options_.bridge, "up"}));
  return gateway;
}

void NodeAgent::SetMetadataBaseUrl(const std::string& url) {
  std::lock_guard lock(shared_->url_mu);
  shared_->metadata_base_url = url;
}

void NodeAgent::StopAll() {
  StopImageCollector();
  std::vector<std::shared_ptr<TaskRun>> runs;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, run] : tasks_) {
      run->RequestStop("UserInitiated", "berth agent shutting down");
      runs.push_back(run);
    }
  }
  for (auto& r : runs) {
    r->Join();
  }
  std::lock_guard lock(mu_);
  tasks_.clear();
}

void NodeAgent::Detach() {
  StopImageCollector();
  std::vector<std::shared_ptr<TaskRun>> runs;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, run] : tasks_) {
      run->Detach();
      runs.push_back(run);
    }
    tasks_.clear();
  }
  for (auto& r : runs) {
    r->Join();
  }
}

size_t NodeAgent::TaskCount() {
  std::lock_guard lock(mu_);
  return tasks_.size();
}

}  // namespace berth::agent
