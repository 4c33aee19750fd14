// SPDX-License-Identifier: Apache-2.0
#include "agent/cni.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/reaper.h"
#include "agent/runtime_util.h"

namespace berth::agent {

using nlohmann::json;
using rtutil::ErrnoError;
using rtutil::InternalError;
using rtutil::InvalidArgumentError;
using rtutil::UniqueFd;

namespace {

// Parses "a.b.c.d/n" into the network address (host order) and prefix length.
bool ParseCidr(const std::string& cidr, uint32_t* network, int* prefix) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) {
    return false;
  }
  struct in_addr addr;
  if (inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &addr) != 1) {
    return false;
  }
  int64_t n = 0;
  if (!rtutil::ParseI64(cidr.substr(slash + 1), &n) || n < 1 || n > 30) {
    return false;
  }
  *prefix = static_cast<int>(n);
  uint32_t mask = n == 0 ? 0 : ~uint32_t{0} << (32 - n);
  *network = ntohl(addr.s_addr) & mask;
  return true;
}

std::string FormatIpv4(uint32_t host_order) {
  struct in_addr addr;
  addr.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, buf, sizeof(buf));
  return buf;
}

// Deletes a network interface through rtnetlink. A missing interface is not an error.
Status DeleteLink(const std::string& name) {
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) {
    return Ok();
  }
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) {
    return ErrnoError("open rtnetlink socket", errno);
  }
  struct {
    struct nlmsghdr header;
    struct ifinfomsg info;
  } request;
  std::memset(&request, 0, sizeof(request));
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  request.header.nlmsg_type = RTM_DELLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request.header.nlmsg_seq = 1;
  request.info.ifi_family = AF_UNSPEC;
  request.info.ifi_index = static_cast<int>(index);

  struct sockaddr_nl kernel;
  std::memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), &request, request.header.nlmsg_len, 0,
             reinterpret_cast<struct sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    return ErrnoError("delete link " + name, errno);
  }
  char buf[4096];
  ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
  if (n < 0) {
    return ErrnoError("delete link " + name + ": read reply", errno);
  }
  auto* reply = reinterpret_cast<struct nlmsghdr*>(buf);
  if (!NLMSG_OK(reply, static_cast<unsigned>(n)) || reply->nlmsg_type != NLMSG_ERROR) {
    return InternalError("delete link " + name + ": unexpected netlink reply");
  }
  auto* err = static_cast<struct nlmsgerr*>(NLMSG_DATA(reply));
  if (err->error != 0 && err->error != -ENODEV) {
    return ErrnoError("delete link " + name, -err->error);
  }
  return Ok();
}

}  // namespace

Result<NetworkAttachment> ParseCniAddResult(const std::string& text, const std::string& ifname,
                                            const std::string& bridge) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return InternalError(std::string("parse CNI result: ") + e.what());
  }
  if (!doc.is_object()) {
    return InternalError("parse CNI result: not a JSON object");
  }
  NetworkAttachment att;
  att.ifname = ifname;
  int sandbox_index = -1;
  const json& interfaces = doc.value("interfaces", json::array());
  for (size_t i = 0; i < interfaces.size(); ++i) {
    const json& itf = interfaces[i];
    std::string name = itf.value("name", "");
    std::string sandbox = itf.value("sandbox", "");
    if (!sandbox.empty() && name == ifname) {
      sandbox_index = static_cast<int>(i);
      att.mac = itf.value("mac", "");
      att.netns_path = sandbox;
    } else if (sandbox.empty() && name != bridge && att.host_veth.empty()) {
      att.host_veth = name;
    }
  }
  const json& ips = doc.value("ips", json::array());
  for (const json& ip : ips) {
    std::string address = ip.value("address", "");
    // 0.3.x/0.4.0 results say "version": "4"; 1.0.0 drops the field.
    bool v4 = ip.value("version", "4") == "4" && address.find('.') != std::string::npos;
    int itf = ip.contains("interface") && ip["interface"].is_number_integer()
                  ? ip["interface"].get<int>()
                  : -1;
    if (!v4 || (sandbox_index >= 0 && itf >= 0 && itf != sandbox_index)) {
      continue;
    }
    size_t slash = address.find('/');
    int64_t prefix = 0;
    if (slash == std::string::npos || !rtutil::ParseI64(address.substr(slash + 1), &prefix)) {
      return InternalError("CNI result has a malformed address '" + address + "'");
    }
    att.ip = address.substr(0, slash);
    att.prefix_length = static_cast<int>(prefix);
    att.gateway = ip.value("gateway", "");
    return att;
  }
  return InternalError("CNI result has no IPv4 address for " + ifname);
}

Error CniPluginError(const std::string& plugin, const std::string& command, int exit_code,
                     const std::string& stdout_data, const std::string& stderr_data) {
  std::string what = "CNI " + plugin + " " + command;
  try {
    json doc = json::parse(stdout_data);
    if (doc.is_object() && doc.contains("msg")) {
      std::string message = what + " failed";
      if (doc.contains("code") && doc["code"].is_number_integer()) {
        message += " (code " + std::to_string(doc["code"].get<int>()) + ")";
      }
      message += ": " + doc.value("msg", "");
      std::string details = doc.value("details", "");
      if (!details.empty()) {
        message += ": " + details;
      }
      return InternalError(message);
    }
  } catch (const json::exception&) {
    // Not a CNI error object; fall back to stderr below.
  }
  std::string err(rtutil::Trim(stderr_data));
  if (err.empty()) {
    err = std::string(rtutil::Trim(stdout_data));
  }
  return InternalError(what + " failed with exit code " + std::to_string(exit_code) +
                       (err.empty() ? "" : ": " + err));
}

CniNetwork::CniNetwork(CniOptions options) : options_(std::move(options)) {
  if (options_.gateway.empty()) {
    uint32_t network = 0;
    int prefix = 0;
    if (ParseCidr(options_.subnet, &network, &prefix)) {
      options_.gateway = FormatIpv4(network + 1);
    }
  }
}

std::string CniNetwork::BridgeConfig() const {
  json range = {{"subnet", options_.subnet}, {"gateway", options_.gateway}};
  json ipam = {{"type", "host-local"},
               {"ranges", json::array({json::array({range})})},
               {"routes", json::array({{{"dst", "0.0.0.0/0"}}})},
               {"dataDir", options_.data_dir}};
  json conf = {{"cniVersion", options_.cni_version},
               {"name", options_.network_name},
               {"type", "bridge"},
               {"bridge", options_.bridge},
               {"isGateway", true},
               {"ipMasq", false},
               {"hairpinMode", true},
               {"ipam", ipam}};
  return conf.dump();
}

std::string CniNetwork::LoopbackConfig() const {
  json conf = {{"cniVersion", options_.cni_version},
               {"name", options_.network_name + "-loopback"},
               {"type", "loopback"}};
  return conf.dump();
}

Result<std::string> CniNetwork::Invoke(const std::string& plugin, const std::string& command,
                                       const std::string& task_id, const std::string& netns_path,
                                       const std::string& ifname, const std::string& config) {
  ProcessOptions p;
  p.argv = {options_.plugin_dir + "/" + plugin};
  p.env = std::vector<std::string>{
      "CNI_COMMAND=" + command,
      "CNI_CONTAINERID=" + task_id,
      "CNI_NETNS=" + netns_path,
      "CNI_IFNAME=" + ifname,
      "CNI_PATH=" + options_.plugin_dir,
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  };
  p.stdin_data = config;
  p.timeout = options_.timeout;
  auto run = RunProcess(p);
  if (!run.ok()) {
    return Error{run.error().status,
                 run.error().code,
                 "CNI " + plugin + " " + command + ": " + run.error().message,
                 {}};
  }
  if (run->timed_out) {
    return rtutil::MakeError(504, rtutil::kDeadlineExceeded,
                             "CNI " + plugin + " " + command + " timed out after " +
                                 std::to_string(options_.timeout.count()) + " ms");
  }
  if (run->exit.exit_code != 0) {
    return CniPluginError(plugin, command, run->exit.exit_code, run->stdout_data, run->stderr_data);
  }
  return std::move(run->stdout_data);
}

Result<NetworkAttachment> CniNetwork::Add(const std::string& task_id,
                                          const std::string& netns_path) {
  if (!rtutil::IsSafeName(task_id)) {
    return InvalidArgumentError("invalid CNI container id '" + task_id + "'");
  }
  if (options_.bridge.empty() || options_.bridge.size() > 15) {
    return InvalidArgumentError("bridge name '" + options_.bridge + "' must be 1-15 characters");
  }
  if (options_.gateway.empty()) {
    return InvalidArgumentError("invalid task subnet '" + options_.subnet + "'");
  }
  if (options_.data_dir.empty()) {
    return InvalidArgumentError("CNI data directory is not set");
  }
  BERTH_TRY(rtutil::MakeDirs(options_.data_dir, 0700));

  // The two networks touch different interfaces of the namespace, so their plugins run at
  // the same time: each is a process start, a good part of a task's launch.
  auto lo_future = std::async(std::launch::async, [&] {
    return Invoke("loopback", "ADD", task_id, netns_path, "lo", LoopbackConfig());
  });
  auto added = Invoke("bridge", "ADD", task_id, netns_path, options_.ifname, BridgeConfig());
  auto lo = lo_future.get();
  Result<NetworkAttachment> attachment =
      !lo.ok()      ? Result<NetworkAttachment>(lo.error())
      : added.ok() ? ParseCniAddResult(*added, options_.ifname, options_.bridge)
                   : Result<NetworkAttachment>(added.error());
  if (!attachment.ok()) {
    // Release the address and the veth; the original error is the one worth reporting.
    (void)Del(task_id, netns_path);
    return attachment.error();
  }
  attachment->netns_path = netns_path;
  return attachment;
}

Status CniNetwork::Del(const std::string& task_id, const std::string& netns_path) {
  if (!rtutil::IsSafeName(task_id)) {
    return InvalidArgumentError("invalid CNI container id '" + task_id + "'");
  }
  // Both plugins treat a namespace path that no longer exists as already cleaned up, and
  // host-local releasing an unknown id is a no-op, which makes DEL idempotent.
  auto lo_future = std::async(std::launch::async, [&] {
    return Invoke("loopback", "DEL", task_id, netns_path, "lo", LoopbackConfig());
  });
  auto bridge = Invoke("bridge", "DEL", task_id, netns_path, options_.ifname, BridgeConfig());
  auto lo = lo_future.get();
  if (!bridge.ok()) {
    return bridge.error();
  }
  if (!lo.ok()) {
    return lo.error();
  }
  return Ok();
}

Status CniNetwork::RemoveBridge() { return DeleteLink(options_.bridge); }

std::vector<std::string> CniNetwork::BridgePorts() const {
  std::vector<std::string> ports;
  std::string dir = "/sys/class/net/" + options_.bridge + "/brif";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return ports;
  }
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      ports.push_back(n);
    }
  }
  closedir(d);
  std::sort(ports.begin(), ports.end());
  return ports;
}

}  // namespace berth::agent
