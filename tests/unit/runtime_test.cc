// SPDX-License-Identifier: Apache-2.0
//
// The runtime pieces together, for real: network namespaces, the CNI bridge and loopback
// plugins, task cgroups, runc and berth-init, with a busybox rootfs built on the fly. Needs
// root, runc, the CNI plugins and a static busybox; skips with the reason otherwise.
//
// Every test uses names carrying this process's pid, a bridge and subnet of its own, and a
// fixture that removes whatever the test created even when it fails, then checks that nothing
// of it is left: no namespace file, veth, cgroup directory, runc container or mount.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "agent/cgroups.h"
#include "agent/cni.h"
#include "agent/netns.h"
#include "agent/oci_spec.h"
#include "agent/reaper.h"
#include "agent/runc.h"
#include "agent/runtime_util.h"

#ifndef BERTH_INIT_BINARY
#define BERTH_INIT_BINARY ""
#endif
#ifndef BERTH_SHIM_BINARY
#define BERTH_SHIM_BINARY ""
#endif

namespace berth::agent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kBusybox = "/bin/busybox";
constexpr long kNsfsMagic = 0x6e736673;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string ReadOr(const std::string& path) {
  auto text = rtutil::ReadFile(path);
  return text.ok() ? *text : std::string();
}

// Polls until the predicate holds or the time is up.
bool Eventually(const std::function<bool()>& predicate, milliseconds limit = milliseconds(5000)) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (predicate()) {
      return true;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return predicate();
}

std::string FindIpTool() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(p, X_OK) == 0) {
      return p;
    }
  }
  return "ip";
}

// Zombie children of `parent`, from /proc.
int CountZombieChildren(pid_t parent) {
  int zombies = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) {
      continue;
    }
    std::string stat = ReadOr(entry.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::vector<std::string> fields = rtutil::Split(stat.substr(close + 2), ' ');
    if (fields.size() > 1 && fields[0] == "Z" && fields[1] == std::to_string(parent)) {
      ++zombies;
    }
  }
  return zombies;
}

struct TestTask {
  std::string id;
  std::string netns_name;
  std::string netns_path;
  NetworkAttachment net;
  TaskEtcFiles etc;
  std::string hostname;
};

struct TestContainer {
  std::string id;
  std::string name;
  std::string bundle;
  std::string stdout_path;
  std::string stderr_path;
  std::string exit_file;  // set when started through berth-shim
  pid_t pid = 0;
};

class RuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  // A unique name for this process and test run.
  std::string NewName() {
    return "rt" + std::to_string(getpid()) + "-" + std::to_string(++counter_);
  }

  // Namespace, CNI attachment, task cgroup and /etc files: what the agent does per task.
  TestTask StartTask(uint32_t cpu_units, uint64_t memory_mib);
  // The agent's own teardown of a task: CNI DEL, namespace, cgroup.
  void StopTask(const TestTask& task);

  using SpecEdit = std::function<void(ContainerRuntimeSpec&)>;
  Result<TestContainer> RunContainer(const TestTask& task, const std::string& name,
                                     std::vector<std::string> args, const SpecEdit& edit = {},
                                     bool through_shim = false);
  void RemoveContainer(const TestContainer& c);

  // Asserts nothing created by this test is left on the machine.
  void ExpectNoLeaks();

  static std::string skip_reason_;
  static std::string root_;
  static std::string rootfs_;
  static std::unique_ptr<CniNetwork> cni_;
  static std::unique_ptr<CgroupManager> cgroups_;
  static std::unique_ptr<Runc> runc_;
  static std::unique_ptr<Runc> shim_runc_;  // the same state root, containers under berth-shim
  static int counter_;

  // Everything this test created, for the fixture's cleanup and leak check.
  std::vector<TestTask> tasks_;
  std::vector<TestContainer> containers_;
  std::set<std::string> veths_;
};

std::string RuntimeTest::skip_reason_;
std::string RuntimeTest::root_;
std::string RuntimeTest::rootfs_;
std::unique_ptr<CniNetwork> RuntimeTest::cni_;
std::unique_ptr<CgroupManager> RuntimeTest::cgroups_;
std::unique_ptr<Runc> RuntimeTest::shim_runc_;
std::unique_ptr<Runc> RuntimeTest::runc_;
int RuntimeTest::counter_ = 0;

// A rootfs of busybox applets, one copy shared read-only by all containers.
Status BuildBusyboxRootfs(const std::string& rootfs) {
  for (const char* dir : {"bin", "proc", "sys", "dev", "etc", "tmp", "www", "root"}) {
    BERTH_TRY(rtutil::MakeDirs(rootfs + "/" + dir, 0755));
  }
  std::error_code ec;
  fs::copy_file(kBusybox, rootfs + "/bin/busybox", ec);
  if (ec) {
    return rtutil::InternalError("copy busybox: " + ec.message());
  }
  ProcessOptions list;
  list.argv = {kBusybox, "--list"};
  auto applets = RunProcess(list);
  if (!applets.ok()) {
    return applets.error();
  }
  for (const std::string& applet : rtutil::Split(applets->stdout_data, '\n')) {
    if (applet != "busybox") {
      fs::create_symlink("busybox", rootfs + "/bin/" + applet, ec);
    }
  }
  std::ofstream(rootfs + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                           "nobody:x:65534:65534:nobody:/:/bin/false\n";
  std::ofstream(rootfs + "/etc/group") << "root:x:0:\nnogroup:x:65534:\n";
  // Mount points for the per-task files, so runc need not create them.
  for (const char* f : {"etc/hosts", "etc/hostname", "etc/resolv.conf"}) {
    std::ofstream(rootfs + "/" + f) << "";
  }
  std::ofstream(rootfs + "/www/index.html") << "hello from the task\n";
  return Ok();
}

// A third octet for 172.30.X.0/24 that no interface on the host uses yet.
int FreeThirdOctet(int seed) {
  ProcessOptions p;
  p.argv = {FindIpTool(), "-4", "-o", "addr", "show"};
  auto run = RunProcess(p);
  std::string used = run.ok() ? run->stdout_data : std::string();
  for (int i = 0; i < 200; ++i) {
    int octet = (seed + i) % 200 + 20;
    if (used.find("inet 172.30." + std::to_string(octet) + ".") == std::string::npos) {
      return octet;
    }
  }
  return seed % 200 + 20;
}

void RuntimeTest::SetUpTestSuite() {
  if (geteuid() != 0) {
    skip_reason_ = "needs root";
  } else if (access(kBusybox, X_OK) != 0) {
    skip_reason_ = "needs a static busybox at /bin/busybox (package busybox-static)";
  } else if (access("/usr/lib/cni/bridge", X_OK) != 0) {
    skip_reason_ = "needs the CNI plugins in /usr/lib/cni";
  } else if (access(BERTH_INIT_BINARY, X_OK) != 0) {
    skip_reason_ = "berth-init was not built";
  } else {
    ProcessOptions p;
    p.argv = {"runc", "--version"};
    auto run = RunProcess(p);
    if (!run.ok() || run->exit.exit_code != 0) {
      skip_reason_ = "needs runc in PATH";
    }
  }
  if (!skip_reason_.empty()) {
    return;
  }

  char tmpl[] = "/tmp/berth-runtime-XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  root_ = tmpl;
  chmod(root_.c_str(), 0755);
  rootfs_ = root_ + "/rootfs";
  Status built = BuildBusyboxRootfs(rootfs_);
  ASSERT_TRUE(built.ok()) << built.error().message;

  // A bridge and subnet of this run's own: parallel runs never share either.
  int unique = getpid();
  CniOptions cni;
  cni.bridge = "berthtest" + std::to_string(unique % 1000000);
  cni.subnet = "172.30." + std::to_string(FreeThirdOctet(unique)) + ".0/24";
  cni.network_name = "berth-test-" + std::to_string(unique);
  cni.data_dir = root_ + "/cni";
  cni_ = std::make_unique<CniNetwork>(cni);

  auto cgroups = NewCgroupManager();
  ASSERT_TRUE(cgroups.ok()) << cgroups.error().message;
  cgroups_ = std::move(*cgroups);

  RuncOptions runc_options;
  runc_options.state_root = root_ + "/runc-state";
  runc_ = std::make_unique<Runc>(runc_options);
  runc_options.shim_binary = BERTH_SHIM_BINARY;
  shim_runc_ = std::make_unique<Runc>(runc_options);
}

void RuntimeTest::TearDownTestSuite() {
  if (cni_) {
    Status removed = cni_->RemoveBridge();
    EXPECT_TRUE(removed.ok()) << removed.error().message;
    EXPECT_FALSE(fs::exists("/sys/class/net/" + cni_->options().bridge));
  }
  if (!root_.empty()) {
    fs::remove_all(root_);
  }
  cni_.reset();
  cgroups_.reset();
  runc_.reset();
  shim_runc_.reset();
  // Leave waitpid and orphans to the rest of the test binary again.
  Reaper::Instance().Stop();
  (void)Reaper::SetSubreaper(false);
}

void RuntimeTest::SetUp() {
  if (!skip_reason_.empty()) {
    GTEST_SKIP() << skip_reason_;
  }
  ASSERT_TRUE(cni_ && cgroups_ && runc_) << "suite setup failed";
}

void RuntimeTest::TearDown() {
  if (!skip_reason_.empty() || !runc_) {
    return;
  }
  for (const TestContainer& c : containers_) {
    EXPECT_TRUE(runc_->Delete(c.id, true).ok());
  }
  for (const TestTask& t : tasks_) {
    EXPECT_TRUE(cni_->Del(t.id, t.netns_path).ok());
    EXPECT_TRUE(DeleteNetns(t.netns_name).ok());
    Status destroyed = cgroups_->DestroyTask(t.id, true);
    EXPECT_TRUE(destroyed.ok()) << destroyed.error().message;
  }
  ExpectNoLeaks();
}

void RuntimeTest::ExpectNoLeaks() {
  auto names = ListNetns();
  ASSERT_TRUE(names.ok());
  std::string mountinfo = ReadOr("/proc/self/mountinfo");
  for (const TestTask& t : tasks_) {
    EXPECT_EQ(names->end(), std::find(names->begin(), names->end(), t.netns_name))
        << "namespace " << t.netns_name << " left behind";
    EXPECT_EQ(std::string::npos, mountinfo.find(" " + t.netns_path + " "))
        << "mount of " << t.netns_path << " left behind";
    for (const char* controller : {"cpu", "cpuacct", "cpuset", "memory", "pids", "devices",
                                   "freezer", "blkio", "systemd", "unified", ""}) {
      std::string dir = std::string("/sys/fs/cgroup/") + controller + "/berth/" + t.id;
      EXPECT_FALSE(fs::exists(dir)) << dir << " left behind";
    }
  }
  for (const std::string& veth : veths_) {
    EXPECT_FALSE(fs::exists("/sys/class/net/" + veth)) << "veth " << veth << " left behind";
  }
  EXPECT_TRUE(cni_->BridgePorts().empty());
  auto listed = runc_->List();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  EXPECT_TRUE(listed->empty()) << listed->size() << " runc containers left behind";
  EXPECT_EQ(std::string::npos, mountinfo.find(" " + root_ + "/")) << "mount below " << root_;
}

TestTask RuntimeTest::StartTask(uint32_t cpu_units, uint64_t memory_mib) {
  TestTask task;
  task.id = NewName();
  task.netns_name = task.id;
  task.hostname = "task-" + task.id;
  tasks_.push_back(task);  // registered first, so a failure below is still cleaned up

  auto path = CreateNetns(task.netns_name);
  EXPECT_TRUE(path.ok()) << path.error().message;
  if (!path.ok()) {
    return task;
  }
  task.netns_path = *path;
  tasks_.back().netns_path = *path;

  auto start = Clock::now();
  auto att = cni_->Add(task.id, task.netns_path);
  double add_ms = MillisSince(start);
  EXPECT_TRUE(att.ok()) << att.error().message;
  if (!att.ok()) {
    return task;
  }
  std::cout << "[timing] CNI ADD (loopback + bridge) " << add_ms << " ms\n";
  RecordProperty("cni_add_ms", std::to_string(add_ms));
  task.net = *att;
  veths_.insert(att->host_veth);

  Status cg = cgroups_->CreateTask(task.id, cpu_units, memory_mib, 0);
  EXPECT_TRUE(cg.ok()) << cg.error().message;

  auto etc = WriteTaskEtcFiles(root_ + "/etc/" + task.id,
                               TaskEtcSpec{task.hostname, task.net.ip, {}, {}, {}, {}});
  EXPECT_TRUE(etc.ok());
  if (etc.ok()) {
    task.etc = *etc;
  }
  tasks_.back() = task;
  return task;
}

void RuntimeTest::StopTask(const TestTask& task) {
  auto start = Clock::now();
  Status del = cni_->Del(task.id, task.netns_path);
  std::cout << "[timing] CNI DEL (bridge + loopback) " << MillisSince(start) << " ms\n";
  EXPECT_TRUE(del.ok()) << del.error().message;
  EXPECT_TRUE(DeleteNetns(task.netns_name).ok());
  Status destroyed = cgroups_->DestroyTask(task.id, false);
  EXPECT_TRUE(destroyed.ok()) << destroyed.error().message;
}

Result<TestContainer> RuntimeTest::RunContainer(const TestTask& task, const std::string& name,
                                                std::vector<std::string> args,
                                                const SpecEdit& edit, bool through_shim) {
  TestContainer c;
  c.name = name;
  c.id = task.id + "-" + name;
  c.bundle = root_ + "/bundles/" + c.id;
  c.stdout_path = root_ + "/logs/" + c.id + ".stdout";
  c.stderr_path = root_ + "/logs/" + c.id + ".stderr";
  BERTH_TRY(rtutil::MakeDirs(c.bundle, 0700));
  BERTH_TRY(rtutil::MakeDirs(root_ + "/logs", 0700));

  ContainerRuntimeSpec spec;
  spec.args = std::move(args);
  spec.env = {"PATH=/bin"};
  spec.hostname = task.hostname;
  spec.rootfs = rootfs_;
  spec.readonly_rootfs = true;
  spec.netns_path = task.netns_path;
  spec.cgroups_path = cgroups_->ContainerCgroupPath(task.id, name);
  spec.cpu_shares = 128;
  spec.hosts_file = task.etc.hosts;
  spec.hostname_file = task.etc.hostname;
  spec.resolv_conf_file = task.etc.resolv_conf;
  spec.init_binary = BERTH_INIT_BINARY;
  spec.extra_mounts = {OciMount::Tmpfs("/tmp", 16 << 20)};
  if (edit) {
    edit(spec);
  }
  auto config = BuildOciSpec(spec);
  if (!config.ok()) {
    return config.error();
  }
  BERTH_TRY(WriteOciBundle(c.bundle, *config));

  containers_.push_back(c);
  auto start = Clock::now();
  if (through_shim) {
    c.exit_file = c.bundle + "/exit";
  }
  Runc& runc = through_shim ? *shim_runc_ : *runc_;
  auto pid = runc.Run(c.id, c.bundle, c.stdout_path, c.stderr_path, c.exit_file);
  double run_ms = MillisSince(start);
  if (!pid.ok()) {
    return pid.error();
  }
  std::cout << "[timing] runc run " << (through_shim ? "(through berth-shim) " : "") << c.id
            << " " << run_ms << " ms\n";
  RecordProperty("runc_run_ms", std::to_string(run_ms));
  c.pid = *pid;
  containers_.back() = c;
  return c;
}

void RuntimeTest::RemoveContainer(const TestContainer& c) {
  Status deleted = runc_->Delete(c.id, true);
  EXPECT_TRUE(deleted.ok()) << deleted.error().message;
}

TEST_F(RuntimeTest, NamedNetnsLifecycle) {
  std::string name = NewName();
  tasks_.push_back({name, name, NetnsPath(name), {}, {}, {}});
  auto path = CreateNetns(name);
  ASSERT_TRUE(path.ok()) << path.error().message;
  EXPECT_EQ("/run/netns/" + name, *path);

  // The file is a namespace (nsfs), and not ours.
  struct statfs sfs;
  ASSERT_EQ(0, statfs(path->c_str(), &sfs));
  EXPECT_EQ(kNsfsMagic, static_cast<long>(sfs.f_type));
  struct stat ours, theirs;
  ASSERT_EQ(0, stat("/proc/self/ns/net", &ours));
  ASSERT_EQ(0, stat(path->c_str(), &theirs));
  EXPECT_NE(ours.st_ino, theirs.st_ino);

  // ip(8) sees it under its name.
  ProcessOptions p;
  p.argv = {FindIpTool(), "netns", "list"};
  auto listed = RunProcess(p);
  ASSERT_TRUE(listed.ok());
  EXPECT_NE(std::string::npos, listed->stdout_data.find(name));

  auto names = ListNetns();
  ASSERT_TRUE(names.ok());
  EXPECT_NE(names->end(), std::find(names->begin(), names->end(), name));
  EXPECT_EQ(rtutil::kAlreadyExists, CreateNetns(name).error().code);

  ASSERT_TRUE(DeleteNetns(name).ok());
  EXPECT_FALSE(fs::exists(*path));
  EXPECT_TRUE(DeleteNetns(name).ok());
  EXPECT_EQ(rtutil::kInvalidArgument, CreateNetns("../escape").error().code);
  ExpectNoLeaks();
}

TEST_F(RuntimeTest, CniAddAndIdempotentDel) {
  TestTask task = StartTask(256, 128);
  ASSERT_FALSE(task.net.ip.empty());
  const CniOptions& o = cni_->options();
  EXPECT_EQ(o.gateway, task.net.gateway);
  EXPECT_EQ(24, task.net.prefix_length);
  EXPECT_TRUE(rtutil::StartsWith(task.net.ip, o.subnet.substr(0, o.subnet.rfind('.') + 1)));
  EXPECT_EQ(17u, task.net.mac.size());
  EXPECT_EQ(std::vector<std::string>({task.net.host_veth}), cni_->BridgePorts());
  // host-local recorded the allocation in berth's data dir, not /var/lib/cni.
  std::string lease = o.data_dir + "/" + o.network_name + "/" + task.net.ip;
  EXPECT_TRUE(fs::exists(lease));
  // The gateway sits on the bridge.
  ProcessOptions p;
  p.argv = {FindIpTool(), "-4", "-o", "addr", "show", "dev", o.bridge};
  auto shown = RunProcess(p);
  ASSERT_TRUE(shown.ok());
  EXPECT_NE(std::string::npos, shown->stdout_data.find("inet " + o.gateway + "/24"));

  // A plugin's CNI error object comes back as the error message.
  auto broken = cni_->Add(task.id + "x", "/run/netns/" + task.id + "-missing");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(std::string::npos, broken.error().message.find("CNI loopback ADD failed (code"))
      << broken.error().message;

  auto start = Clock::now();
  ASSERT_TRUE(cni_->Del(task.id, task.netns_path).ok());
  std::cout << "[timing] CNI DEL " << MillisSince(start) << " ms\n";
  EXPECT_FALSE(fs::exists(lease));
  EXPECT_TRUE(cni_->BridgePorts().empty());
  EXPECT_TRUE(cni_->Del(task.id, task.netns_path).ok());
  ASSERT_TRUE(DeleteNetns(task.netns_name).ok());
  // DEL after the namespace is gone still succeeds.
  Status late = cni_->Del(task.id, task.netns_path);
  EXPECT_TRUE(late.ok()) << late.error().message;
  ASSERT_TRUE(cgroups_->DestroyTask(task.id, false).ok());
  ExpectNoLeaks();
}

TEST_F(RuntimeTest, ContainerOutputAddressAndLimits) {
  TestTask task = StartTask(256, 512);
  ASSERT_FALSE(task.net.ip.empty());
  EXPECT_EQ("25000", ReadOr(cgroups_->TaskDir(task.id, "cpu") + "/cpu.cfs_quota_us").substr(0, 5));
  EXPECT_EQ("536870912\n", ReadOr(cgroups_->TaskDir(task.id, "memory") + "/memory.limit_in_bytes"));

  auto c = RunContainer(task, "app", {"sh", "-c", "echo hello; echo err >&2; sleep 100"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(Eventually([&] { return ReadOr(c->stdout_path) == "hello\n"; }))
      << "stdout: " << ReadOr(c->stdout_path);
  EXPECT_TRUE(Eventually([&] { return ReadOr(c->stderr_path) == "err\n"; }))
      << "stderr: " << ReadOr(c->stderr_path);

  auto state = runc_->State(c->id);
  ASSERT_TRUE(state.ok()) << state.error().message;
  EXPECT_EQ(ContainerStatus::kRunning, state->status);
  EXPECT_EQ(c->pid, state->pid);

  // Inside the namespace eth0 carries the CNI address.
  auto ip = runc_->Exec(c->id, {"ip", "-4", "-o", "addr", "show", "eth0"}, {}, milliseconds(5000));
  ASSERT_TRUE(ip.ok()) << ip.error().message;
  EXPECT_EQ(0, ip->exit_code);
  std::string cidr = task.net.ip + "/" + std::to_string(task.net.prefix_length);
  EXPECT_NE(std::string::npos, ip->output.find("inet " + cidr)) << ip->output;
  ProcessOptions host_ip;
  host_ip.argv = {FindIpTool(), "-n", task.netns_name, "-4", "-o", "addr", "show", "dev", "eth0"};
  auto from_host = RunProcess(host_ip);
  ASSERT_TRUE(from_host.ok());
  EXPECT_NE(std::string::npos, from_host->stdout_data.find("inet " + cidr));

  // The task's /etc files and hostname are in place.
  auto hosts = runc_->Exec(c->id, {"cat", "/etc/hosts", "/etc/hostname"}, {}, milliseconds(5000));
  ASSERT_TRUE(hosts.ok());
  EXPECT_NE(std::string::npos, hosts->output.find(task.net.ip + "\t" + task.hostname));
  auto hostname = runc_->Exec(c->id, {"hostname"}, {}, milliseconds(5000));
  ASSERT_TRUE(hostname.ok());
  EXPECT_EQ(task.hostname + "\n", hostname->output);

  // The container runs in its cgroup below the task, with the spec's cpu shares.
  std::string container_cpu = cgroups_->TaskDir(task.id, "cpu") + "/app";
  EXPECT_EQ("128\n", ReadOr(container_cpu + "/cpu.shares"));
  auto stats = cgroups_->ContainerStats(task.id, "app");
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_GE(stats->pids_current, 1u);
  EXPECT_GT(stats->memory_usage_bytes, 0u);
  EXPECT_GT(stats->cpu_usage_total_ns, 0u);
  auto task_stats = cgroups_->Stats(task.id);
  ASSERT_TRUE(task_stats.ok());
  EXPECT_EQ(536870912u, task_stats->memory_limit_bytes);
  EXPECT_GE(task_stats->pids_current, 1u);
  auto oom = cgroups_->OomKilled(task.id, "app");
  ASSERT_TRUE(oom.ok());
  EXPECT_FALSE(*oom);

  // The agent's stop: SIGKILL, exit via the reaper, delete, tear the task down.
  ASSERT_TRUE(runc_->Kill(c->id, SIGKILL).ok());
  auto exit = Reaper::Instance().Wait(c->pid, milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(137, exit->exit_code);
  RemoveContainer(*c);
  StopTask(task);
  ExpectNoLeaks();
}

TEST_F(RuntimeTest, ContainersOfATaskTalkOverLoopback) {
  TestTask task = StartTask(512, 256);
  ASSERT_FALSE(task.net.ip.empty());
  auto server = RunContainer(task, "server", {"httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"});
  ASSERT_TRUE(server.ok()) << server.error().message;
  auto client = RunContainer(task, "client",
                             {"sh", "-c",
                              "for i in $(seq 50); do "
                              "wget -q -O - http://127.0.0.1:8080/index.html && exit 0; "
                              "sleep 0.1; done; exit 1"});
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto exit = Reaper::Instance().Wait(client->pid, milliseconds(10000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(0, exit->exit_code) << ReadOr(client->stderr_path);
  EXPECT_EQ("hello from the task\n", ReadOr(client->stdout_path));

  ASSERT_TRUE(runc_->Kill(server->id, SIGKILL).ok());
  EXPECT_TRUE(Reaper::Instance().Wait(server->pid, milliseconds(5000)).has_value());
  RemoveContainer(*server);
  RemoveContainer(*client);
  StopTask(task);
  ExpectNoLeaks();
}

TEST_F(RuntimeTest, SigtermThroughInitGives143) {
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "sleeper", {"sleep", "100"},
                        [](ContainerRuntimeSpec& s) { s.init_process_enabled = true; });
  ASSERT_TRUE(c.ok()) << c.error().message;
  // berth-init is PID 1 and sleep its child.
  ASSERT_TRUE(Eventually([&] {
    auto ps = runc_->Exec(c->id, {"cat", "/proc/1/cmdline"}, {}, milliseconds(5000));
    return ps.ok() && ps->output.find("/dev/init") == 0;
  }));
  ASSERT_TRUE(runc_->Kill(c->id, SIGTERM).ok());
  auto exit = Reaper::Instance().Wait(c->pid, milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(143, exit->exit_code);
  EXPECT_EQ(0, exit->signal);  // init exited normally, reporting the child's signal
  auto state = runc_->State(c->id);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(ContainerStatus::kStopped, state->status);
  // Signalling a stopped container is not an error.
  EXPECT_TRUE(runc_->Kill(c->id, SIGTERM).ok());
  RemoveContainer(*c);
  StopTask(task);
}

TEST_F(RuntimeTest, TermIgnoringProcessDiesOnlyToSigkill) {
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "stubborn",
                        {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(Eventually([&] { return ReadOr(c->stdout_path) == "ready\n"; }));
  ASSERT_TRUE(runc_->Kill(c->id, SIGTERM).ok());
  EXPECT_FALSE(Reaper::Instance().Wait(c->pid, milliseconds(1500)).has_value());
  auto state = runc_->State(c->id);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(ContainerStatus::kRunning, state->status);

  ASSERT_TRUE(runc_->Kill(c->id, SIGKILL).ok());
  auto exit = Reaper::Instance().Wait(c->pid, milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(137, exit->exit_code);
  EXPECT_EQ(SIGKILL, exit->signal);
  RemoveContainer(*c);
  StopTask(task);
}

TEST_F(RuntimeTest, MemoryHogIsOomKilled) {
  TestTask task = StartTask(256, 64);
  // tail keeps everything it reads from a file without newlines.
  auto c = RunContainer(task, "hog", {"tail", "/dev/zero"},
                        [](ContainerRuntimeSpec& s) { s.memory_limit_bytes = 32 << 20; });
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto exit = Reaper::Instance().Wait(c->pid, milliseconds(20000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(137, exit->exit_code);
  auto oom = cgroups_->OomKilled(task.id, "hog");
  ASSERT_TRUE(oom.ok()) << oom.error().message;
  EXPECT_TRUE(*oom);
  auto stats = cgroups_->ContainerStats(task.id, "hog");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(32u << 20, stats->memory_limit_bytes);
  EXPECT_GE(stats->oom_kill_count, 1u);
  EXPECT_GE(stats->memory_max_usage_bytes, 30u << 20);
  RemoveContainer(*c);
  StopTask(task);
}

TEST_F(RuntimeTest, ExecReturnsExitCodeAndHonoursTimeout) {
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "host", {"sleep", "100"});
  ASSERT_TRUE(c.ok()) << c.error().message;

  auto seven = runc_->Exec(c->id, {"sh", "-c", "exit 7"}, {}, milliseconds(5000));
  ASSERT_TRUE(seven.ok()) << seven.error().message;
  EXPECT_EQ(7, seven->exit_code);
  EXPECT_FALSE(seven->timed_out);

  auto env = runc_->Exec(c->id, {"sh", "-c", "echo $CHECK"}, {"CHECK=healthy"}, milliseconds(5000));
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(0, env->exit_code);
  EXPECT_EQ("healthy\n", env->output);

  auto start = Clock::now();
  auto slow = runc_->Exec(c->id, {"sleep", "30"}, {}, milliseconds(300));
  ASSERT_TRUE(slow.ok()) << slow.error().message;
  EXPECT_TRUE(slow->timed_out);
  EXPECT_EQ(137, slow->exit_code);
  EXPECT_LT(MillisSince(start), 5000.0);

  EXPECT_FALSE(runc_->Exec(c->id, {"/no/such/program"}, {}, milliseconds(5000)).ok());
  EXPECT_EQ(rtutil::kNotFound,
            runc_->Exec(task.id + "-missing", {"true"}, {}, milliseconds(5000)).error().code);

  ASSERT_TRUE(runc_->Kill(c->id, SIGKILL).ok());
  EXPECT_TRUE(Reaper::Instance().Wait(c->pid, milliseconds(5000)).has_value());
  RemoveContainer(*c);
  StopTask(task);
}

TEST_F(RuntimeTest, InitReapsZombies) {
  TestTask task = StartTask(512, 128);
  // The subshell leaves a short-lived orphan to PID 1, then PID 1 becomes (or runs) sleep.
  std::vector<std::string> args = {"sh", "-c", "(sleep 0.2 &); exec sleep 100"};
  auto plain = RunContainer(task, "plain", args);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  auto with_init = RunContainer(task, "init", args,
                                [](ContainerRuntimeSpec& s) { s.init_process_enabled = true; });
  ASSERT_TRUE(with_init.ok()) << with_init.error().message;

  // Without an init, sleep as PID 1 never waits: the orphan stays a zombie.
  EXPECT_TRUE(Eventually([&] { return CountZombieChildren(plain->pid) == 1; }));
  // With berth-init, it is collected.
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(0, CountZombieChildren(with_init->pid));
  auto ps = runc_->Exec(with_init->id, {"ps", "-o", "pid,stat,args"}, {}, milliseconds(5000));
  ASSERT_TRUE(ps.ok());
  EXPECT_EQ(std::string::npos, ps->output.find(" Z ")) << ps->output;

  for (const TestContainer* c : {&*plain, &*with_init}) {
    ASSERT_TRUE(runc_->Kill(c->id, SIGKILL).ok());
    EXPECT_TRUE(Reaper::Instance().Wait(c->pid, milliseconds(5000)).has_value());
    RemoveContainer(*c);
  }
  StopTask(task);
  ExpectNoLeaks();
}

TEST_F(RuntimeTest, ContainerIsConfinedLikeDocker) {
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "confined", {"sleep", "100"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto exec = [&](const std::string& script) {
    auto r = runc_->Exec(c->id, {"sh", "-c", script}, {}, milliseconds(5000));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : ExecResult{-1, false, ""};
  };

  // Docker's default capability set, no new privileges, a seccomp filter.
  auto status = exec("cat /proc/self/status");
  EXPECT_NE(std::string::npos, status.output.find("CapEff:\t00000000a80425fb")) << status.output;
  EXPECT_NE(std::string::npos, status.output.find("CapBnd:\t00000000a80425fb"));
  EXPECT_NE(std::string::npos, status.output.find("NoNewPrivs:\t1"));
  EXPECT_NE(std::string::npos, status.output.find("Seccomp:\t2"));

  // unshare needs no capability for a user namespace, so only the profile stops it.
  ProcessOptions host_unshare;
  host_unshare.argv = {"unshare", "-U", "true"};
  auto on_host = RunProcess(host_unshare);
  if (on_host.ok() && on_host->exit.exit_code == 0) {
    auto inside = exec("unshare -U true");
    EXPECT_NE(0, inside.exit_code);
    EXPECT_NE(std::string::npos, inside.output.find("Operation not permitted")) << inside.output;
  }

  // Masked and read-only paths, a read-only rootfs, the clamped open-files limit.
  // /proc/timer_list is readable on the host (checked here) and masked in the container.
  if (!ReadOr("/proc/timer_list").empty()) {
    EXPECT_EQ("0\n", exec("wc -c < /proc/timer_list").output);
  }
  EXPECT_NE(0, exec("echo 1 > /proc/sys/kernel/ns_last_pid").exit_code);
  EXPECT_NE(0, exec("touch /bin/new-file").exit_code);
  EXPECT_EQ(0, exec("touch /tmp/new-file").exit_code);
  struct rlimit own;
  ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &own));
  uint64_t nofile = std::min<uint64_t>(65535, own.rlim_max);
  EXPECT_EQ(std::to_string(nofile) + "\n", exec("ulimit -n").output);
  // Devices are limited to the default set.
  EXPECT_NE(0, exec("mknod /tmp/sda b 8 0 && head -c1 /tmp/sda").exit_code);

  // A user named in the image runs without capabilities.
  auto nobody = ResolveContainerUser(rootfs_, "nobody");
  ASSERT_TRUE(nobody.ok()) << nobody.error().message;
  auto unprivileged = RunContainer(task, "nobody", {"sleep", "100"}, [&](ContainerRuntimeSpec& s) {
    s.uid = nobody->uid;
    s.gid = nobody->gid;
    s.additional_gids = nobody->additional_gids;
  });
  ASSERT_TRUE(unprivileged.ok()) << unprivileged.error().message;
  auto id =
      runc_->Exec(unprivileged->id, {"sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"}, {},
                  milliseconds(5000));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ("65534\n65534\nCapEff:\t0000000000000000\n", id->output);

  for (const TestContainer* x : {&*c, &*unprivileged}) {
    ASSERT_TRUE(runc_->Kill(x->id, SIGKILL).ok());
    EXPECT_TRUE(Reaper::Instance().Wait(x->pid, milliseconds(5000)).has_value());
    RemoveContainer(*x);
  }
  StopTask(task);
}

// Field `index` (1-based, as in proc(5)) of /proc/<pid>/stat, or "".
std::string StatField(pid_t pid, size_t index) {
  std::string stat = ReadOr("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos || index < 3) {
    return {};
  }
  std::vector<std::string> fields = rtutil::Split(stat.substr(close + 2), ' ');
  return index - 3 < fields.size() ? fields[index - 3] : std::string();
}

TEST_F(RuntimeTest, ShimParentsTheContainerAndRecordsItsExitCode) {
  if (access(BERTH_SHIM_BINARY, X_OK) != 0) {
    GTEST_SKIP() << "berth-shim was not built";
  }
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "seven", {"sh", "-c", "sleep 1; exit 7"}, {}, true);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(fs::exists(c->exit_file));

  // The init's parent is the shim's waiter, in a session of its own; neither is ours.
  pid_t parent = std::stoi(StatField(c->pid, 4));
  EXPECT_NE(getpid(), parent);
  EXPECT_EQ("berth-shim\n", ReadOr("/proc/" + std::to_string(parent) + "/comm"));
  EXPECT_NE(std::to_string(getsid(0)), StatField(parent, 6));
  EXPECT_NE(std::to_string(getsid(0)), StatField(c->pid, 6));

  std::optional<ProcessExit> recorded;
  ASSERT_TRUE(Eventually(
      [&] {
        auto read = ReadExitFile(c->exit_file);
        if (read.ok() && read->has_value()) {
          recorded = **read;
        }
        return recorded.has_value();
      },
      milliseconds(10000)));
  EXPECT_EQ(7, recorded->exit_code);
  EXPECT_EQ(0, recorded->signal);
  // The exit went to the shim, not to the agent's reaper.
  EXPECT_FALSE(Reaper::Instance().Peek(c->pid).has_value());
  auto state = runc_->State(c->id);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(ContainerStatus::kStopped, state->status);
  RemoveContainer(*c);
  StopTask(task);
}

TEST_F(RuntimeTest, ShimRecordsTheSignalThatKilledTheContainer) {
  if (access(BERTH_SHIM_BINARY, X_OK) != 0) {
    GTEST_SKIP() << "berth-shim was not built";
  }
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "killed", {"sleep", "100"}, {}, true);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(runc_->Kill(c->id, SIGKILL).ok());
  std::optional<ProcessExit> recorded;
  ASSERT_TRUE(Eventually([&] {
    auto read = ReadExitFile(c->exit_file);
    if (read.ok() && read->has_value()) {
      recorded = **read;
    }
    return recorded.has_value();
  }));
  EXPECT_EQ(137, recorded->exit_code);
  EXPECT_EQ(SIGKILL, recorded->signal);
  RemoveContainer(*c);
  StopTask(task);
}

TEST_F(RuntimeTest, ShimPassesRuncFailuresThrough) {
  if (access(BERTH_SHIM_BINARY, X_OK) != 0) {
    GTEST_SKIP() << "berth-shim was not built";
  }
  TestTask task = StartTask(256, 128);
  auto bad = RunContainer(task, "bad", {"/no/such/binary"}, {}, true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string::npos, bad.error().message.find("no/such/binary")) << bad.error().message;
  EXPECT_EQ(rtutil::kNotFound, runc_->State(task.id + "-bad").error().code);
  EXPECT_FALSE(fs::exists(root_ + "/bundles/" + task.id + "-bad/exit"));
  StopTask(task);
}

TEST(ExitFileTest, ReadsTheShimsRecordAndRefusesGarbage) {
  std::string path = "/tmp/berth-exit-file-test-" + std::to_string(getpid());
  unlink(path.c_str());
  auto absent = ReadExitFile(path);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  for (const auto& [text, code, signal] :
       {std::tuple<const char*, int, int>{"7 0\n", 7, 0}, {"137 9\n", 137, 9}}) {
    ASSERT_TRUE(rtutil::WriteFileAtomic(path, text, 0644).ok());
    auto read = ReadExitFile(path);
    ASSERT_TRUE(read.ok() && read->has_value()) << text;
    EXPECT_EQ(code, (*read)->exit_code);
    EXPECT_EQ(signal, (*read)->signal);
  }
  for (const char* garbage : {"", "7", "x 0\n", "300 0\n", "7 0 1\n"}) {
    ASSERT_TRUE(rtutil::WriteFileAtomic(path, garbage, 0644).ok());
    EXPECT_FALSE(ReadExitFile(path).ok()) << garbage;
  }
  unlink(path.c_str());
}

TEST_F(RuntimeTest, RuncErrorsAreReported) {
  TestTask task = StartTask(256, 128);
  auto bad = RunContainer(task, "bad", {"/no/such/binary"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string::npos, bad.error().message.find("no/such/binary")) << bad.error().message;
  auto listed = runc_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ(rtutil::kNotFound, runc_->State(task.id + "-bad").error().code);
  EXPECT_TRUE(runc_->Delete(task.id + "-bad", false).ok());
  EXPECT_EQ(rtutil::kNotFound, runc_->Kill(task.id + "-bad", SIGTERM).error().code);
  StopTask(task);
}

TEST_F(RuntimeTest, DestroyTaskKillsWhatIsLeft) {
  TestTask task = StartTask(256, 128);
  auto c = RunContainer(task, "orphaned", {"sleep", "100"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto pids = cgroups_->TaskPids(task.id);
  ASSERT_TRUE(pids.ok());
  EXPECT_NE(pids->end(), std::find(pids->begin(), pids->end(), c->pid));
  // Without killing, a busy cgroup cannot go.
  CgroupOptions impatient;
  impatient.remove_timeout = milliseconds(200);
  auto quick = NewCgroupManager(impatient);
  ASSERT_TRUE(quick.ok());
  Status busy = (*quick)->DestroyTask(task.id, false);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(rtutil::kUnavailable, busy.error().code);
  Status killed = cgroups_->DestroyTask(task.id, true);
  ASSERT_TRUE(killed.ok()) << killed.error().message;
  auto exit = Reaper::Instance().Wait(c->pid, milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(137, exit->exit_code);
  RemoveContainer(*c);
  StopTask(task);
}

}  // namespace
}  // namespace berth::agent
