// SPDX-License-Identifier: Apache-2.0
#include "agent/image_config.h"

#include <optional>
#include <set>
#include <utility>

namespace berth::agent {
namespace {

using Json = nlohmann::json;

// A JSON array of strings; nullopt when the key is absent, null or not an
// array. Non-string members are skipped.
std::optional<std::vector<std::string>> StringList(const Json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_array()) {
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const Json& v : obj[key]) {
    if (v.is_string()) {
      out.push_back(v.get<std::string>());
    }
  }
  return out;
}

std::string StringField(const Json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_string()) {
    return obj[key].get<std::string>();
  }
  return "";
}

std::string EnvName(const std::string& entry) {
  return entry.substr(0, entry.find('='));
}

// ECS `environment` lists ({name, value}) as "NAME=value", later entries
// replacing earlier ones of the same name in place.
void ApplyEcsEnvironment(const Json& obj, std::vector<std::string>* env) {
  if (!obj.is_object() || !obj.contains("environment") || !obj["environment"].is_array()) {
    return;
  }
  for (const Json& pair : obj["environment"]) {
    std::string name = StringField(pair, "name");
    if (name.empty()) {
      continue;
    }
    std::string entry = name + "=" + StringField(pair, "value");
    bool replaced = false;
    for (auto& existing : *env) {
      if (EnvName(existing) == name) {
        existing = entry;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      env->push_back(std::move(entry));
    }
  }
}

}  // namespace

ProcessConfig MergeImageConfig(const Json& image_config, const Json& container_definition,
                               const Json& container_override) {
  const Json& image = image_config.is_object() && image_config.contains("config") &&
                              image_config["config"].is_object()
                          ? image_config["config"]
                          : image_config;
  ProcessConfig out;

  // Entrypoint and command.
  std::optional<std::vector<std::string>> entrypoint =
      StringList(container_definition, "entryPoint");
  std::optional<std::vector<std::string>> command = StringList(container_definition, "command");
  if (auto override_command = StringList(container_override, "command")) {
    command = std::move(override_command);
  }
  std::vector<std::string> cmd = command.value_or(std::vector<std::string>{});
  if (!entrypoint || entrypoint->empty()) {
    if (cmd.empty()) {
      cmd = StringList(image, "Cmd").value_or(std::vector<std::string>{});
    }
    if (!entrypoint) {
      entrypoint = StringList(image, "Entrypoint");
    }
  }
  out.args = entrypoint.value_or(std::vector<std::string>{});
  out.args.insert(out.args.end(), cmd.begin(), cmd.end());

  // Environment: the task's variables, then the image's it does not set.
  std::vector<std::string> task_env;
  ApplyEcsEnvironment(container_definition, &task_env);
  ApplyEcsEnvironment(container_override, &task_env);
  std::vector<std::string> merged = task_env;
  std::set<std::string> task_names;
  for (const auto& e : task_env) {
    task_names.insert(EnvName(e));
  }
  for (const auto& e : StringList(image, "Env").value_or(std::vector<std::string>{})) {
    if (task_names.count(EnvName(e)) == 0) {
      merged.push_back(e);
    }
  }
  std::string path_entry = std::string("PATH=") + kDefaultPath;
  bool path_unset = false;
  for (const auto& e : merged) {
    if (EnvName(e) == "PATH") {
      if (e.find('=') == std::string::npos) {
        path_unset = true;
      } else {
        path_entry = e;
      }
    }
  }
  if (!path_unset) {
    out.env.push_back(path_entry);
  }
  for (const auto& e : merged) {
    if (e.find('=') != std::string::npos && EnvName(e) != "PATH") {
      out.env.push_back(e);
    }
  }

  // Working directory and user.
  out.cwd = StringField(container_definition, "workingDirectory");
  if (out.cwd.empty()) {
    out.cwd = StringField(image, "WorkingDir");
  }
  if (out.cwd.empty()) {
    out.cwd = "/";
  }
  out.user = StringField(container_definition, "user");
  if (out.user.empty()) {
    out.user = StringField(image, "User");
  }
  return out;
}

}  // namespace berth::agent
