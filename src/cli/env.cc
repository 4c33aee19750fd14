// SPDX-License-Identifier: Apache-2.0
// `berth env`: the shell lines that point the AWS CLI and SDKs at this berth.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/format.h"

namespace berth::cli {

namespace {

const char* const kOverriding[] = {"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                   "AWS_SESSION_TOKEN"};

}  // namespace

Status RunEnv(const GlobalFlags& flags, const EnvOptions& options) {
  EnvFn env = ProcessEnv();
  Settings s = ResolveLocation(flags, env);
  std::error_code ec;
  std::string data_dir = std::filesystem::absolute(s.data_dir, ec).lexically_normal().string();
  if (ec) {
    data_dir = s.data_dir;
  }
  const std::string credentials = data_dir + "/credentials";
  const std::string config = data_dir + "/config";
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"BERTH_ENDPOINT", s.endpoint},   {"BERTH_DATA_DIR", data_dir},
      {"AWS_ENDPOINT_URL", s.endpoint}, {"AWS_SHARED_CREDENTIALS_FILE", credentials},
      {"AWS_CONFIG_FILE", config},      {"AWS_REGION", s.region},
      {"AWS_DEFAULT_REGION", s.region},
  };

  if (options.unset) {
    for (const auto& [name, value] : vars) {
      std::printf("unset %s\n", name.c_str());
    }
    return Ok();
  }
  for (const auto& [name, value] : vars) {
    std::printf("export %s=%s\n", name.c_str(), ShellQuote(value).c_str());
  }
  // Keys or a profile in the environment win over the credentials file.
  std::string overriding;
  for (const char* name : kOverriding) {
    if (env(name)) {
      overriding += std::string(overriding.empty() ? "" : " ") + name;
    }
  }
  if (!overriding.empty()) {
    std::printf("# These would take precedence over berth's credentials file:\n");
    std::printf("unset %s\n", overriding.c_str());
  }
  std::printf("# AWS CLIs and SDKs that predate AWS_ENDPOINT_URL take the endpoint as a flag:\n");
  std::printf("#   aws --endpoint-url %s ecs list-clusters\n", ShellQuote(s.endpoint).c_str());
  std::string again = "berth env";
  if (!flags.endpoint_url.empty()) {
    again += " --endpoint-url " + ShellQuote(s.endpoint);
  }
  if (!flags.data_dir.empty()) {
    again += " --data-dir " + ShellQuote(data_dir);
  }
  if (!flags.region.empty()) {
    again += " --region " + ShellQuote(s.region);
  }
  std::printf("# To configure this shell, run:\n#   eval \"$(%s)\"\n", again.c_str());

  if (::access(credentials.c_str(), R_OK) != 0) {
    std::fprintf(stderr,
                 "berth: warning: cannot read %s; is berthd's data dir elsewhere? "
                 "(--data-dir or BERTH_DATA_DIR)\n",
                 credentials.c_str());
  }
  return Ok();
}

}  // namespace berth::cli
