// SPDX-License-Identifier: Apache-2.0
//
// Task networking through the standard CNI plugins. Every task's network namespace gets
// `loopback` and an `eth0` from the `bridge` plugin on a bridge berth owns (berth0 by default),
// with an address from `host-local` IPAM. The bridge holds the subnet's gateway address, so
// tasks reach each other and the host; there is no masquerading.
//
// Plugins are run directly (no libcni): the network configuration goes to the plugin's stdin
// and CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH are set in its
// environment, as the CNI specification (0.4.0 and 1.0.0) describes.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

struct CniOptions {
  /// Where the plugin binaries are.
  std::string plugin_dir = "/usr/lib/cni";
  /// CNI network name; host-local keeps its allocations under <data_dir>/<network_name>.
  std::string network_name = "berth";
  /// Bridge interface name (at most 15 characters).
  std::string bridge = "berth0";
  /// Task subnet in CIDR form.
  std::string subnet = "172.31.0.0/16";
  /// Gateway address on the bridge; empty means the first address of the subnet.
  std::string gateway;
  /// host-local state directory (berth's data dir, never /var/lib/cni).
  std::string data_dir;
  /// Interface name inside the namespace.
  std::string ifname = "eth0";
  /// CNI specification version spoken to the plugins ("1.0.0" or "0.4.0").
  std::string cni_version = "1.0.0";
  /// Limit for one plugin run.
  std::chrono::milliseconds timeout{30000};
};

/// The task's network as the plugins configured it.
struct NetworkAttachment {
  std::string ip;         // "172.31.0.5"
  int prefix_length = 0;  // 16
  std::string gateway;    // "172.31.0.1"
  std::string mac;        // of the interface inside the namespace
  std::string ifname;     // "eth0"
  std::string host_veth;  // host end of the veth pair, a port of the bridge
  std::string netns_path;
};

/// Parses a CNI ADD result (0.3.x/0.4.0 or 1.0.0 layout) for the interface `ifname` in the
/// namespace. kInternal when the result has no IPv4 address for it.
Result<NetworkAttachment> ParseCniAddResult(const std::string& json, const std::string& ifname,
                                            const std::string& bridge);

/// Turns a failed plugin run into an error: the CNI error object on stdout ({code, msg,
/// details}) when there is one, else stderr.
Error CniPluginError(const std::string& plugin, const std::string& command, int exit_code,
                     const std::string& stdout_data, const std::string& stderr_data);

class CniNetwork {
 public:
  explicit CniNetwork(CniOptions options);

  /// Connects the namespace: loopback up, then eth0 on the bridge (created on first use).
  /// `task_id` is the CNI container id and must be unique among attached namespaces. On failure
  /// the partial attachment is removed again.
  Result<NetworkAttachment> Add(const std::string& task_id, const std::string& netns_path);

  /// Disconnects the namespace and releases its address. Idempotent: deleting an attachment
  /// that is already gone, or whose namespace no longer exists, succeeds.
  Status Del(const std::string& task_id, const std::string& netns_path);

  /// Deletes the bridge interface (missing is fine). For teardown and tests.
  Status RemoveBridge();

  /// Host interfaces currently attached to the bridge (empty when the bridge does not exist).
  std::vector<std::string> BridgePorts() const;

  /// The network configuration given to the bridge plugin.
  std::string BridgeConfig() const;
  /// The network configuration given to the loopback plugin.
  std::string LoopbackConfig() const;

  const CniOptions& options() const { return options_; }

 private:
  Result<std::string> Invoke(const std::string& plugin, const std::string& command,
                             const std::string& task_id, const std::string& netns_path,
                             const std::string& ifname, const std::string& config);

  CniOptions options_;
};

}  // namespace berth::agent
