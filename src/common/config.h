// berthd's settings: command-line flags, optionally read from a config file
// holding the same keys (`key = value` lines).
#pragma once

#include <string>

#include "common/result.h"

namespace berth {

struct Config {
  std::string listen = "127.0.0.1:4566";
  std::string data_dir = "/var/lib/berth";
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  std::string log_level = "info";
  // Additional access keys, in the AWS CLI's credentials file format.
  std::string credentials_file;
  // The host:port clients use to reach the registry; "" derives it from listen
  // ("localhost:<port>").
  std::string registry_host;
  // Seconds between registry garbage collections, and how long an idle upload
  // or an unreferenced blob is kept before one removes it.
  int registry_gc_interval = 3600;
  int registry_gc_grace = 86400;
  // Node agent settings (all-in-one mode).
  bool agent = true;
  std::string bridge = "berth0";
  std::string subnet = "172.31.0.0/16";
  double allocation_factor = 1.0;
  std::string runtime = "runc";
  // The cgroup (under each controller's root) that task cgroups go in.
  std::string cgroup_parent = "berth";
  // The static init bind-mounted for initProcessEnabled ("" finds berth-init
  // next to berthd).
  std::string init_binary;
  // berth-shim, the parent of each container's init that records its exit status ("" finds
  // it next to berthd, or in ../libexec/berth).
  std::string shim_binary;
  // Credentials for pulling from registries other than berth's own: a docker-style
  // config.json / auth.json ({"auths": {"host:port": {"auth": base64("user:password")}}}).
  std::string registry_auth_file;
  // Seconds between collections of the node's image cache (0: never), and how long a layer
  // no task uses any more is kept.
  int image_gc_interval = 600;
  int image_gc_grace = 3600;
  // Port of the task metadata endpoint on the bridge address.
  int metadata_port = 51679;
  // Stop every task when the daemon exits. By default tasks keep running and
  // a restarted daemon takes them back.
  bool stop_tasks_on_exit = false;
  // Control plane: a node whose agent is silent this long is declared lost and
  // its tasks are stopped.
  double node_timeout_seconds = 60;
  // Load balancer data plane: the address listeners bind on, and its worker
  // threads (0: one per CPU).
  std::string lb_bind_address = "127.0.0.1";
  int lb_threads = 0;
};

// Applies `key = value` lines from `path` to `config` (keys as the flags, with
// dashes or underscores). Unknown keys and values that do not parse are errors.
Status LoadConfigFile(const std::string& path, Config& config);

}  // namespace berth
