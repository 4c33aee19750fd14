// SPDX-License-Identifier: Apache-2.0
#include "agent/cni.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/runtime_util.h"

namespace berth::agent {
namespace {

using nlohmann::json;

TEST(CniResultTest, ParsesVersion100Result) {
  const char* result = R"({
    "cniVersion": "1.0.0",
    "interfaces": [
      {"name": "berth0", "mac": "aa:bb:cc:00:00:01"},
      {"name": "veth1a2b3c4d", "mac": "aa:bb:cc:00:00:02"},
      {"name": "eth0", "mac": "aa:bb:cc:00:00:03", "sandbox": "/run/netns/t1"}
    ],
    "ips": [{"interface": 2, "address": "172.31.0.7/16", "gateway": "172.31.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {}
  })";
  auto att = ParseCniAddResult(result, "eth0", "berth0");
  ASSERT_TRUE(att.ok()) << att.error().message;
  EXPECT_EQ("172.31.0.7", att->ip);
  EXPECT_EQ(16, att->prefix_length);
  EXPECT_EQ("172.31.0.1", att->gateway);
  EXPECT_EQ("aa:bb:cc:00:00:03", att->mac);
  EXPECT_EQ("veth1a2b3c4d", att->host_veth);
  EXPECT_EQ("eth0", att->ifname);
  EXPECT_EQ("/run/netns/t1", att->netns_path);
}

TEST(CniResultTest, ParsesVersion040ResultAndSkipsIpv6) {
  const char* result = R"({
    "cniVersion": "0.4.0",
    "interfaces": [
      {"name": "br", "mac": "aa:00:00:00:00:01"},
      {"name": "vethX", "mac": "aa:00:00:00:00:02"},
      {"name": "eth0", "mac": "aa:00:00:00:00:03", "sandbox": "/run/netns/t2"}
    ],
    "ips": [
      {"version": "6", "interface": 2, "address": "fd00::5/64", "gateway": "fd00::1"},
      {"version": "4", "interface": 2, "address": "10.9.0.5/24", "gateway": "10.9.0.1"}
    ]
  })";
  auto att = ParseCniAddResult(result, "eth0", "br");
  ASSERT_TRUE(att.ok());
  EXPECT_EQ("10.9.0.5", att->ip);
  EXPECT_EQ(24, att->prefix_length);
  EXPECT_EQ("vethX", att->host_veth);
}

TEST(CniResultTest, ResultWithoutAddressIsAnError) {
  auto att = ParseCniAddResult(R"({"cniVersion":"1.0.0","interfaces":[],"ips":[]})", "eth0", "b");
  ASSERT_FALSE(att.ok());
  EXPECT_NE(std::string::npos, att.error().message.find("no IPv4 address"));
  EXPECT_FALSE(ParseCniAddResult("not json", "eth0", "b").ok());
}

TEST(CniErrorTest, UsesTheCniErrorObject) {
  Error e = CniPluginError("bridge", "ADD", 1,
                           R"({"cniVersion":"1.0.0","code":11,"msg":"failed to allocate",)"
                           R"("details":"no IP addresses available in range set"})",
                           "");
  EXPECT_EQ(
      "CNI bridge ADD failed (code 11): failed to allocate: no IP addresses available in range "
      "set",
      e.message);
  EXPECT_EQ(500, e.status);
}

TEST(CniErrorTest, FallsBackToStderr) {
  Error e = CniPluginError("loopback", "DEL", 2, "", "panic: something\n");
  EXPECT_EQ("CNI loopback DEL failed with exit code 2: panic: something", e.message);
}

TEST(CniConfigTest, BridgeConfigFollowsOptions) {
  CniOptions o;
  o.bridge = "brtest0";
  o.subnet = "172.30.4.0/24";
  o.data_dir = "/var/lib/berth/cni";
  o.network_name = "berth-test";
  CniNetwork net(o);
  EXPECT_EQ("172.30.4.1", net.options().gateway);
  json conf = json::parse(net.BridgeConfig());
  EXPECT_EQ("1.0.0", conf["cniVersion"]);
  EXPECT_EQ("berth-test", conf["name"]);
  EXPECT_EQ("bridge", conf["type"]);
  EXPECT_EQ("brtest0", conf["bridge"]);
  EXPECT_EQ(true, conf["isGateway"]);
  EXPECT_EQ(false, conf["ipMasq"]);
  EXPECT_EQ(true, conf["hairpinMode"]);
  EXPECT_EQ("host-local", conf["ipam"]["type"]);
  EXPECT_EQ("/var/lib/berth/cni", conf["ipam"]["dataDir"]);
  EXPECT_EQ("172.30.4.0/24", conf["ipam"]["ranges"][0][0]["subnet"]);
  EXPECT_EQ("172.30.4.1", conf["ipam"]["ranges"][0][0]["gateway"]);
  EXPECT_EQ("loopback", json::parse(net.LoopbackConfig())["type"]);
}

TEST(CniConfigTest, AddValidatesBeforeRunningPlugins) {
  CniOptions o;
  o.data_dir = "/tmp/unused";
  o.bridge = "a-bridge-name-too-long";
  CniNetwork net(o);
  EXPECT_EQ(rtutil::kInvalidArgument, net.Add("t1", "/run/netns/x").error().code);
  CniNetwork bad_subnet(CniOptions{"/usr/lib/cni", "n", "br0", "banana", "", "/tmp/unused"});
  EXPECT_EQ(rtutil::kInvalidArgument, bad_subnet.Add("t1", "/run/netns/x").error().code);
  CniNetwork ok(CniOptions{"/usr/lib/cni", "n", "br0", "10.0.0.0/24", "", "/tmp/unused"});
  EXPECT_EQ(rtutil::kInvalidArgument, ok.Add("../t1", "/run/netns/x").error().code);
}

}  // namespace
}  // namespace berth::agent
