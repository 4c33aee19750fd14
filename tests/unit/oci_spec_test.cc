// SPDX-License-Identifier: Apache-2.0
#include "agent/oci_spec.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "agent/runtime_util.h"

namespace berth::agent {
namespace {

using nlohmann::json;

bool Has(const json& array, const std::string& value) {
  return std::find(array.begin(), array.end(), value) != array.end();
}

const json* FindMount(const json& config, const std::string& destination) {
  for (const json& m : config["mounts"]) {
    if (m["destination"] == destination) {
      return &m;
    }
  }
  return nullptr;
}

ContainerRuntimeSpec BasicSpec() {
  ContainerRuntimeSpec spec;
  spec.args = {"/bin/app", "--port", "80"};
  spec.env = {"A=1"};
  spec.rootfs = "/var/lib/berth/rootfs/x";
  spec.hostname = "ip-172-31-0-5";
  spec.netns_path = "/run/netns/task1";
  spec.cgroups_path = "/berth/task1/web";
  return spec;
}

std::set<std::string> RefusedNames(const json& seccomp) {
  std::set<std::string> names;
  for (const json& rule : seccomp["syscalls"]) {
    if (rule["action"] == "SCMP_ACT_ERRNO" && !rule.contains("args")) {
      for (const json& n : rule["names"]) {
        names.insert(n.get<std::string>());
      }
    }
  }
  return names;
}

TEST(OciSpecTest, DefaultsMatchAnUnprivilegedDockerContainer) {
  auto config = BuildOciSpec(BasicSpec());
  ASSERT_TRUE(config.ok()) << config.error().message;
  const json& c = *config;

  EXPECT_EQ("1.0.2", c["ociVersion"]);
  EXPECT_EQ(json({"/bin/app", "--port", "80"}), c["process"]["args"]);
  EXPECT_EQ(true, c["process"]["noNewPrivileges"]);
  EXPECT_EQ(false, c["process"]["terminal"]);
  EXPECT_EQ("ip-172-31-0-5", c["hostname"]);
  EXPECT_EQ("/var/lib/berth/rootfs/x", c["root"]["path"]);
  EXPECT_EQ(false, c["root"]["readonly"]);

  const json& bounding = c["process"]["capabilities"]["bounding"];
  EXPECT_EQ(14u, bounding.size());
  for (const char* cap :
       {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}) {
    EXPECT_TRUE(Has(bounding, cap)) << cap;
  }
  EXPECT_FALSE(Has(bounding, "CAP_SYS_ADMIN"));
  EXPECT_EQ(bounding, c["process"]["capabilities"]["effective"]);
  EXPECT_TRUE(c["process"]["capabilities"]["inheritable"].empty());

  // PATH and HOSTNAME are supplied when the image does not set them.
  const json& env = c["process"]["env"];
  EXPECT_TRUE(Has(env, "A=1"));
  EXPECT_TRUE(Has(env, "HOSTNAME=ip-172-31-0-5"));
  EXPECT_TRUE(std::any_of(env.begin(), env.end(), [](const json& e) {
    return rtutil::StartsWith(e.get<std::string>(), "PATH=/usr/local/sbin:");
  }));
}

TEST(OciSpecTest, HasStandardMountsAndMaskedPaths) {
  auto config = BuildOciSpec(BasicSpec());
  ASSERT_TRUE(config.ok());
  for (const char* dest :
       {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}) {
    EXPECT_NE(nullptr, FindMount(*config, dest)) << dest;
  }
  EXPECT_TRUE(Has((*FindMount(*config, "/sys"))["options"], "ro"));
  EXPECT_TRUE(Has((*FindMount(*config, "/sys/fs/cgroup"))["options"], "ro"));
  EXPECT_TRUE(Has((*FindMount(*config, "/dev/shm"))["options"], "size=67108864"));

  const json& linux_section = (*config)["linux"];
  EXPECT_TRUE(Has(linux_section["maskedPaths"], "/proc/kcore"));
  EXPECT_TRUE(Has(linux_section["maskedPaths"], "/sys/firmware"));
  EXPECT_TRUE(Has(linux_section["readonlyPaths"], "/proc/sys"));
  EXPECT_TRUE(Has(linux_section["readonlyPaths"], "/proc/sysrq-trigger"));
  EXPECT_EQ("/berth/task1/web", linux_section["cgroupsPath"]);
}

TEST(OciSpecTest, JoinsTheTaskNetworkNamespaceByPath) {
  auto config = BuildOciSpec(BasicSpec());
  ASSERT_TRUE(config.ok());
  std::map<std::string, json> namespaces;
  for (const json& ns : (*config)["linux"]["namespaces"]) {
    namespaces[ns["type"]] = ns;
  }
  for (const char* type : {"pid", "mount", "uts", "ipc", "network"}) {
    EXPECT_EQ(1u, namespaces.count(type)) << type;
  }
  EXPECT_EQ("/run/netns/task1", namespaces["network"]["path"]);
  EXPECT_FALSE(namespaces["pid"].contains("path"));
}

TEST(OciSpecTest, SeccompRefusesDangerousCallsAndAllowsTheRest) {
  auto config = BuildOciSpec(BasicSpec());
  ASSERT_TRUE(config.ok());
  const json& seccomp = (*config)["linux"]["seccomp"];
  EXPECT_EQ("SCMP_ACT_ALLOW", seccomp["defaultAction"]);
  std::set<std::string> refused = RefusedNames(seccomp);
  // clang-format off
  for (const char* name : {"kexec_load", "init_module", "finit_module", "delete_module", "reboot",
                           "swapon", "swapoff", "mount", "umount2", "pivot_root", "unshare",
                           "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
                           "ptrace", "open_by_handle_at", "acct", "quotactl", "settimeofday",
                           "clock_settime", "iopl", "ioperm", "userfaultfd", "process_vm_readv",
                           "process_vm_writev", "kcmp", "move_pages", "set_mempolicy", "mbind"}) {
    // clang-format on
    EXPECT_EQ(1u, refused.count(name)) << name;
  }
  EXPECT_EQ(0u, refused.count("read"));
  EXPECT_EQ(0u, refused.count("clone"));
  // clone with CLONE_NEWUSER is refused through an argument filter.
  bool clone_filter = false;
  for (const json& rule : seccomp["syscalls"]) {
    if (rule.contains("args") && Has(rule["names"], "clone")) {
      clone_filter =
          rule["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" && rule["args"][0]["value"] == 0x10000000;
    }
  }
  EXPECT_TRUE(clone_filter);
}

TEST(OciSpecTest, AddedCapabilityUnlocksItsSyscalls) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.cap_add = {"SYS_PTRACE"};
  spec.cap_drop = {"CAP_NET_RAW"};
  auto config = BuildOciSpec(spec);
  ASSERT_TRUE(config.ok());
  const json& bounding = (*config)["process"]["capabilities"]["bounding"];
  EXPECT_TRUE(Has(bounding, "CAP_SYS_PTRACE"));
  EXPECT_FALSE(Has(bounding, "CAP_NET_RAW"));
  std::set<std::string> refused = RefusedNames((*config)["linux"]["seccomp"]);
  EXPECT_EQ(0u, refused.count("ptrace"));
  EXPECT_EQ(0u, refused.count("process_vm_readv"));
  EXPECT_EQ(1u, refused.count("mount"));
}

TEST(OciSpecTest, RejectsUnknownCapability) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.cap_add = {"FLY"};
  auto config = BuildOciSpec(spec);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(rtutil::kInvalidArgument, config.error().code);
}

TEST(OciSpecTest, NonRootUserHoldsNoCapabilities) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.uid = 1000;
  spec.gid = 1000;
  spec.additional_gids = {27};
  auto config = BuildOciSpec(spec);
  ASSERT_TRUE(config.ok());
  const json& process = (*config)["process"];
  EXPECT_EQ(1000, process["user"]["uid"]);
  EXPECT_EQ(json::array({27}), process["user"]["additionalGids"]);
  EXPECT_TRUE(process["capabilities"]["effective"].empty());
  EXPECT_EQ(14u, process["capabilities"]["bounding"].size());
}

TEST(OciSpecTest, RlimitsAreClampedToOwnHardLimit) {
  struct rlimit own;
  ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &own));
  auto config = BuildOciSpec(BasicSpec());
  ASSERT_TRUE(config.ok());
  const json& rl = (*config)["process"]["rlimits"][0];
  EXPECT_EQ("RLIMIT_NOFILE", rl["type"]);
  uint64_t expected =
      own.rlim_max == RLIM_INFINITY ? 65535 : std::min<uint64_t>(65535, own.rlim_max);
  EXPECT_EQ(expected, rl["hard"].get<uint64_t>());
  EXPECT_EQ(expected, rl["soft"].get<uint64_t>());
}

TEST(OciSpecTest, SoftLimitNeverExceedsHard) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.rlimits = {{"RLIMIT_NOFILE", 5000, 1024}, {"RLIMIT_CORE", 0, 0}};
  auto config = BuildOciSpec(spec);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(1024u, (*config)["process"]["rlimits"][0]["soft"].get<uint64_t>());
  EXPECT_EQ("RLIMIT_CORE", (*config)["process"]["rlimits"][1]["type"]);
  spec.rlimits = {{"RLIMIT_BOGUS", 1, 1}};
  EXPECT_FALSE(BuildOciSpec(spec).ok());
}

TEST(OciSpecTest, InitProcessIsMountedAndPrepended) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.init_process_enabled = true;
  spec.init_binary = "/usr/libexec/berth/berth-init";
  auto config = BuildOciSpec(spec);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(json({"/dev/init", "--", "/bin/app", "--port", "80"}), (*config)["process"]["args"]);
  const json* init = FindMount(*config, "/dev/init");
  ASSERT_NE(nullptr, init);
  EXPECT_EQ("/usr/libexec/berth/berth-init", (*init)["source"]);
  EXPECT_TRUE(Has((*init)["options"], "ro"));

  spec.init_binary.clear();
  EXPECT_FALSE(BuildOciSpec(spec).ok());
}

TEST(OciSpecTest, ResourcesCarryContainerLimits) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.cpu_shares = 256;
  spec.memory_limit_bytes = 128 << 20;
  spec.memory_reservation_bytes = 64 << 20;
  spec.pids_limit = 100;
  auto config = BuildOciSpec(spec);
  ASSERT_TRUE(config.ok());
  const json& r = (*config)["linux"]["resources"];
  EXPECT_EQ(256, r["cpu"]["shares"]);
  EXPECT_EQ(128 << 20, r["memory"]["limit"]);
  EXPECT_EQ(128 << 20, r["memory"]["swap"]);
  EXPECT_EQ(64 << 20, r["memory"]["reservation"]);
  EXPECT_EQ(100, r["pids"]["limit"]);
  EXPECT_EQ(false, r["devices"][0]["allow"]);
}

TEST(OciSpecTest, EtcFilesAndExtraMountsAreBound) {
  ContainerRuntimeSpec spec = BasicSpec();
  spec.hosts_file = "/run/berth/t/hosts";
  spec.resolv_conf_file = "/run/berth/t/resolv.conf";
  spec.readonly_rootfs = true;
  spec.extra_mounts = {OciMount::Bind("/data/vol", "/data", true),
                       OciMount::Tmpfs("/scratch", 1 << 20)};
  auto config = BuildOciSpec(spec);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(true, (*config)["root"]["readonly"]);
  ASSERT_NE(nullptr, FindMount(*config, "/etc/hosts"));
  EXPECT_EQ("/run/berth/t/hosts", (*FindMount(*config, "/etc/hosts"))["source"]);
  EXPECT_EQ(nullptr, FindMount(*config, "/etc/hostname"));
  ASSERT_NE(nullptr, FindMount(*config, "/data"));
  EXPECT_TRUE(Has((*FindMount(*config, "/data"))["options"], "ro"));
  ASSERT_NE(nullptr, FindMount(*config, "/scratch"));
  EXPECT_TRUE(Has((*FindMount(*config, "/scratch"))["options"], "size=1048576"));
}

class UserResolutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-user-test-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    rootfs_ = tmpl;
    std::filesystem::create_directories(rootfs_ + "/etc");
    std::ofstream(rootfs_ + "/etc/passwd")
        << "root:x:0:0:root:/root:/bin/sh\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
           "app:x:1000:1001:App:/home/app:/bin/sh\n";
    std::ofstream(rootfs_ + "/etc/group") << "root:x:0:root\n"
                                             "wheel:x:10:root,app\n"
                                             "appgrp:x:1001:\n"
                                             "video:x:44:app\n"
                                             "nogroup:x:65534:\n";
  }
  void TearDown() override { std::filesystem::remove_all(rootfs_); }

  std::string rootfs_;
};

TEST_F(UserResolutionTest, EmptyUserIsRootWithItsGroups) {
  auto u = ResolveContainerUser(rootfs_, "");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(0u, u->uid);
  EXPECT_EQ(0u, u->gid);
  EXPECT_EQ(std::vector<uint32_t>({10}), u->additional_gids);
  EXPECT_EQ("/root", u->home);
}

TEST_F(UserResolutionTest, NameGivesPrimaryAndSupplementaryGroups) {
  auto u = ResolveContainerUser(rootfs_, "app");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(1000u, u->uid);
  EXPECT_EQ(1001u, u->gid);
  EXPECT_EQ(std::vector<uint32_t>({10, 44}), u->additional_gids);
  EXPECT_EQ("/home/app", u->home);
}

TEST_F(UserResolutionTest, NameAndGroupNames) {
  auto u = ResolveContainerUser(rootfs_, "nobody:nogroup");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(65534u, u->uid);
  EXPECT_EQ(65534u, u->gid);
  auto v = ResolveContainerUser(rootfs_, "app:video");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(44u, v->gid);
  EXPECT_EQ(std::vector<uint32_t>({10}), v->additional_gids);
}

TEST_F(UserResolutionTest, NumbersNeedNoEntry) {
  auto u = ResolveContainerUser(rootfs_, "4242:4343");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(4242u, u->uid);
  EXPECT_EQ(4343u, u->gid);
  EXPECT_TRUE(u->additional_gids.empty());
  auto v = ResolveContainerUser(rootfs_, "1000");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(1001u, v->gid);
  auto w = ResolveContainerUser(rootfs_, "5000");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(0u, w->gid);
}

TEST_F(UserResolutionTest, UnknownNamesAndBadSyntaxFail) {
  EXPECT_EQ(rtutil::kInvalidArgument, ResolveContainerUser(rootfs_, "ghost").error().code);
  EXPECT_EQ(rtutil::kInvalidArgument, ResolveContainerUser(rootfs_, "app:ghosts").error().code);
  EXPECT_FALSE(ResolveContainerUser(rootfs_, "app:").ok());
  EXPECT_FALSE(ResolveContainerUser(rootfs_, ":10").ok());
}

TEST_F(UserResolutionTest, SymlinkCannotEscapeRootfs) {
  // An absolute link is resolved inside the rootfs, never on the host.
  std::string outside = rootfs_ + "-outside";
  std::filesystem::create_directories(outside);
  std::ofstream(outside + "/passwd") << "intruder:x:7:7::/:/bin/sh\n";
  std::filesystem::remove(rootfs_ + "/etc/passwd");
  std::filesystem::create_symlink(outside + "/passwd", rootfs_ + "/etc/passwd");
  auto u = ResolveContainerUser(rootfs_, "intruder");
  EXPECT_FALSE(u.ok());
  auto numeric = ResolveContainerUser(rootfs_, "7");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(0u, numeric->gid);
  std::filesystem::remove_all(outside);
}

TEST(TaskEtcFilesTest, RendersHostsHostnameAndResolvConf) {
  TaskEtcSpec spec;
  spec.hostname = "ip-172-31-0-5";
  spec.ip = "172.31.0.5";
  spec.extra_hosts = {{"db.local", "172.31.0.9"}};
  spec.search_domains = {"example.internal"};
  TaskEtcFiles files = RenderTaskEtcFiles(spec);
  EXPECT_EQ(
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
      "172.31.0.5\tip-172-31-0-5\n172.31.0.9\tdb.local\n",
      files.hosts);
  EXPECT_EQ("ip-172-31-0-5\n", files.hostname);
  EXPECT_EQ(std::string::npos, files.resolv_conf.find("nameserver"));
  EXPECT_NE(std::string::npos, files.resolv_conf.find("search example.internal\n"));

  spec.nameservers = {"172.31.0.1"};
  EXPECT_NE(std::string::npos,
            RenderTaskEtcFiles(spec).resolv_conf.find("nameserver 172.31.0.1\n"));
}

TEST(TaskEtcFilesTest, WritesTheFiles) {
  char tmpl[] = "/tmp/berth-etc-test-XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(tmpl));
  std::string dir = std::string(tmpl) + "/etc";
  TaskEtcSpec spec;
  spec.hostname = "h1";
  auto paths = WriteTaskEtcFiles(dir, spec);
  ASSERT_TRUE(paths.ok());
  EXPECT_EQ(dir + "/hostname", paths->hostname);
  auto text = rtutil::ReadFile(paths->hostname);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ("h1\n", *text);
  EXPECT_TRUE(rtutil::PathExists(paths->hosts));
  EXPECT_TRUE(rtutil::PathExists(paths->resolv_conf));
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace berth::agent
