// SPDX-License-Identifier: Apache-2.0
//
// Text the berth client prints: sizes, ages, durations, aligned tables and
// the progress line of an upload.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace berth::cli {

/// Binary units as docker prints them: "512B", "1.5KiB", "12.3MiB", "2GiB".
std::string FormatBytes(uint64_t bytes);

/// A short age: "12s", "5m", "3h", "2d".
std::string FormatAge(double seconds);

/// Parses "90", "90s", "10m", "2h", "1d", "1h30m" into seconds; nullopt when malformed.
std::optional<int64_t> ParseDuration(const std::string& text);

/// "sha256:0123456789ab" (the algorithm and 12 hex characters).
std::string ShortDigest(const std::string& digest);

/// Columns padded to their widest cell, separated by three spaces; the last
/// column is not padded.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows);

/// One progress line: "<label>  [=====>    ]  1.2MiB / 2.3MiB  52%", `width`
/// characters of bar.
std::string RenderProgress(const std::string& label, uint64_t done, uint64_t total, int width);

/// A value quoted for a POSIX shell when it needs it.
std::string ShellQuote(const std::string& value);

}  // namespace berth::cli
