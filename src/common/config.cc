#include "common/config.h"

#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <type_traits>

namespace berth {

namespace {

std::string Strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

namespace {

using Setter = std::function<bool(Config&, const std::string&)>;

template <typename T>
Setter Set(T Config::*member) {
  return [member](Config& c, const std::string& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      c.*member = v;
      return true;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (v == "true" || v == "1" || v == "yes") {
        c.*member = true;
      } else if (v == "false" || v == "0" || v == "no") {
        c.*member = false;
      } else {
        return false;
      }
      return true;
    } else {
      std::istringstream in(v);
      T parsed{};
      if (!(in >> parsed) || !in.eof()) {
        return false;
      }
      c.*member = parsed;
      return true;
    }
  };
}

// Every key a config file may hold: the flags' names without their dashes.
const std::map<std::string, Setter>& Keys() {
  static const std::map<std::string, Setter> keys = {
      {"listen", Set(&Config::listen)},
      {"data-dir", Set(&Config::data_dir)},
      {"region", Set(&Config::region)},
      {"account-id", Set(&Config::account_id)},
      {"log-level", Set(&Config::log_level)},
      {"credentials-file", Set(&Config::credentials_file)},
      {"registry-host", Set(&Config::registry_host)},
      {"registry-gc-interval", Set(&Config::registry_gc_interval)},
      {"registry-gc-grace", Set(&Config::registry_gc_grace)},
      {"agent", Set(&Config::agent)},
      {"bridge", Set(&Config::bridge)},
      {"subnet", Set(&Config::subnet)},
      {"allocation-factor", Set(&Config::allocation_factor)},
      {"runtime", Set(&Config::runtime)},
      {"cgroup-parent", Set(&Config::cgroup_parent)},
      {"metadata-port", Set(&Config::metadata_port)},
      {"init-binary", Set(&Config::init_binary)},
      {"shim-binary", Set(&Config::shim_binary)},
      {"registry-auth", Set(&Config::registry_auth_file)},
      {"image-gc-interval", Set(&Config::image_gc_interval)},
      {"image-gc-grace", Set(&Config::image_gc_grace)},
      {"stop-tasks-on-exit", Set(&Config::stop_tasks_on_exit)},
      {"node-timeout", Set(&Config::node_timeout_seconds)},
      {"lb-bind-address", Set(&Config::lb_bind_address)},
      {"lb-threads", Set(&Config::lb_threads)},
  };
  return keys;
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
    const std::string where = path + ":" + std::to_string(n) + ": ";
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return ClientError("ConfigError", where + "expected key = value");
    }
    std::string key = Strip(line.substr(0, eq));
    std::string value = Strip(line.substr(eq + 1));
    for (auto& c : key) {
      if (c == '_') c = '-';
    }
    auto setter = Keys().find(key);
    if (setter == Keys().end()) {
      return ClientError("ConfigError", where + "unknown key " + key);
    }
    if (!setter->second(config, value)) {
      return ClientError("ConfigError", where + "bad value for " + key + ": " + value);
    }
  }
  return Ok();
}

}  // namespace berth
