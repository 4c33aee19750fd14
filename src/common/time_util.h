// Clock helpers in the units the AWS APIs use.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace berth {

// Seconds since the epoch with millisecond precision (ECS and ECR timestamps).
inline double NowEpochSeconds() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return static_cast<double>(ms) / 1000.0;
}

// Milliseconds since the epoch (CloudWatch Logs timestamps).
inline int64_t NowEpochMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace berth
