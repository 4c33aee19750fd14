#include "common/config.h"

#include <fstream>
#include <sstream>

namespace berth {

namespace {

std::string Strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

Status LoadConfigFile(const std::string& path, Config& config) {
  std::ifstream in(path);
  if (!in) {
    return ClientError("ConfigError", "cannot read config file " + path);
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = Strip(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return ClientError("ConfigError", path + ":" + std::to_string(n) + ": expected key = value");
    }
    std::string key = Strip(line.substr(0, eq));
    std::string value = Strip(line.substr(eq + 1));
    for (auto& c : key) {
      if (c == '_') c = '-';
    }
    if (key == "listen") {
      config.listen = value;
    } else if (key == "data-dir") {
      config.data_dir = value;
    } else if (key == "region") {
      config.region = value;
    } else if (key == "account-id") {
      config.account_id = value;
    } else if (key == "log-level") {
      config.log_level = value;
    } else if (key == "credentials-file") {
      config.credentials_file = value;
    } else if (key == "registry-host") {
      config.registry_host = value;
    } else if (key == "registry-gc-interval") {
      config.registry_gc_interval = std::stoi(value);
    } else if (key == "registry-gc-grace") {
      config.registry_gc_grace = std::stoi(value);
    } else if (key == "agent") {
      config.agent = value == "true" || value == "1" || value == "yes";
    } else if (key == "bridge") {
      config.bridge = value;
    } else if (key == "subnet") {
      config.subnet = value;
    } else if (key == "allocation-factor") {
      config.allocation_factor = std::stod(value);
    } else if (key == "runtime") {
      config.runtime = value;
    } else if (key == "cgroup-parent") {
      config.cgroup_parent = value;
    } else if (key == "metadata-port") {
      config.metadata_port = std::stoi(value);
    } else if (key == "init-binary") {
      config.init_binary = value;
    } else if (key == "shim-binary") {
      config.shim_binary = value;
    } else if (key == "registry-auth") {
      config.registry_auth_file = value;
    } else if (key == "image-gc-interval") {
      config.image_gc_interval = std::stoi(value);
    } else if (key == "image-gc-grace") {
      config.image_gc_grace = std::stoi(value);
    } else if (key == "stop-tasks-on-exit") {
      config.stop_tasks_on_exit = value == "true" || value == "1" || value == "yes";
    } else if (key == "node-timeout") {
      config.node_timeout_seconds = std::stod(value);
    } else if (key == "lb-bind-address") {
      config.lb_bind_address = value;
    } else if (key == "lb-threads") {
      config.lb_threads = std::stoi(value);
    } else {
      return ClientError("ConfigError", path + ":" + std::to_string(n) + ": unknown key " + key);
    }
  }
  return Ok();
}

}  // namespace berth
