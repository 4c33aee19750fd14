// berthd serve: every plane in one process, wired together.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/result.h"

namespace berth {

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();

  // Opens the data dir and the store, binds the listener, starts serving.
  Status Start();
  // Stops serving and releases everything; safe to call twice.
  void Stop();

  // The bound listen address (after Start).
  const std::string& address() const { return address_; }

 private:
  struct Impl;
  Config config_;
  std::string address_;
  std::unique_ptr<Impl> impl_;
};

// Configures spdlog for berthd: one line per event, to stderr.
void SetUpLogging(const std::string& level);

}  // namespace berth
