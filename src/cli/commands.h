// SPDX-License-Identifier: Apache-2.0
//
// The berth client's commands. Each takes its parsed options and the global
// flags, writes its output to stdout (progress and notes to stderr) and
// returns an Error for main to print as "berth: <message>".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/settings.h"
#include "common/result.h"

namespace berth::cli {

struct ImagePushOptions {
  std::string source;  ///< OCI layout dir or docker-archive file, optionally ":<ref>"
  std::string target;  ///< "repo[:tag]"
  std::string chunk_size = "8MiB";
  bool quiet = false;
};

Status RunImagePush(const GlobalFlags& flags, const ImagePushOptions& options);

struct PsOptions {
  std::string cluster;
  bool all = false;
  bool quiet = false;  ///< task ids only
};

Status RunPs(const GlobalFlags& flags, const PsOptions& options);

struct LogsOptions {
  std::string task;
  bool follow = false;
  std::string container;
  std::string since;
  bool timestamps = false;
  std::string cluster;
};

Status RunLogs(const GlobalFlags& flags, const LogsOptions& options);

struct StatsOptions {
  std::vector<std::string> tasks;
  std::string cluster;
  bool no_stream = false;
  double interval = 1.0;  ///< seconds between the two samples of a CPU reading
};

Status RunStats(const GlobalFlags& flags, const StatsOptions& options);

struct EnvOptions {
  bool unset = false;
};

Status RunEnv(const GlobalFlags& flags, const EnvOptions& options);

/// Parses "8MiB", "512k", "1M", "1048576" into bytes (binary multiples).
std::optional<uint64_t> ParseSize(const std::string& text);

}  // namespace berth::cli
