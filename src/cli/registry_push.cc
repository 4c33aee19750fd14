// SPDX-License-Identifier: Apache-2.0
#include "cli/registry_push.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/aws_client.h"
#include "cli/format.h"
#include "cli/http_client.h"

namespace berth::cli {

namespace {

using Clock = std::chrono::steady_clock;

bool ValidRepositoryChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
         c == '/';
}

// A file region read for a chunk's body.
class FileReader {
 public:
  explicit FileReader(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}

  ~FileReader() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  bool ok() const { return fd_ >= 0; }

  // Reads up to `size` bytes at `offset`; -1 on error.
  ssize_t ReadAt(char* buf, size_t size, uint64_t offset) const {
    while (true) {
      ssize_t n = ::pread(fd_, buf, size, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return n;
    }
  }

 private:
  int fd_;
};

class TerminalProgress : public PushProgress {
 public:
  explicit TerminalProgress(std::FILE* out) : out_(out) {}

  void Exists(const BlobToPush& blob) override {
    std::fprintf(out_, "%s  %-10s  already exists\n", ShortDigest(blob.digest).c_str(),
                 blob.label.c_str());
  }

  void Start(const BlobToPush& blob) override {
    label_ = ShortDigest(blob.digest) + "  " + Pad(blob.label);
    total_ = blob.size;
    last_draw_ = {};
    Advance(0);
  }

  void Advance(uint64_t done) override {
    auto now = Clock::now();
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(80)) {
      return;
    }
    last_draw_ = now;
    std::fprintf(out_, "\r%s\x1b[K", RenderProgress(label_, done, total_, 30).c_str());
    std::fflush(out_);
  }

  void Resume(uint64_t offset, const std::string& reason) override {
    std::fprintf(out_, "\r\x1b[K%s  interrupted (%s); resuming at %s\n", label_.c_str(),
                 reason.c_str(), FormatBytes(offset).c_str());
    last_draw_ = {};
    Advance(offset);
  }

  void Done(double seconds) override {
    last_draw_ = {};
    Advance(total_);
    std::fprintf(out_, "  %.1fs\n", seconds);
  }

  void Note(const std::string& line) override { std::fprintf(out_, "%s\n", line.c_str()); }

 private:
  static std::string Pad(const std::string& s) {
    return s.size() >= 10 ? s : s + std::string(10 - s.size(), ' ');
  }

  std::FILE* out_;
  std::string label_;
  uint64_t total_ = 0;
  Clock::time_point last_draw_;
};

class LineProgress : public PushProgress {
 public:
  explicit LineProgress(std::FILE* out) : out_(out) {}

  void Exists(const BlobToPush& blob) override {
    std::fprintf(out_, "%s %s: already exists\n", blob.label.c_str(),
                 ShortDigest(blob.digest).c_str());
  }

  void Start(const BlobToPush& blob) override {
    prefix_ = blob.label + " " + ShortDigest(blob.digest);
    total_ = blob.size;
    std::fprintf(out_, "%s: pushing %s\n", prefix_.c_str(), FormatBytes(blob.size).c_str());
    std::fflush(out_);
  }

  void Advance(uint64_t) override {}

  void Resume(uint64_t offset, const std::string& reason) override {
    std::fprintf(out_, "%s: interrupted (%s); resuming at byte %llu\n", prefix_.c_str(),
                 reason.c_str(), static_cast<unsigned long long>(offset));
    std::fflush(out_);
  }

  void Done(double seconds) override {
    std::fprintf(out_, "%s: pushed %s in %.1fs\n", prefix_.c_str(), FormatBytes(total_).c_str(),
                 seconds);
    std::fflush(out_);
  }

  void Note(const std::string& line) override {
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  std::string prefix_;
  uint64_t total_ = 0;
};

std::string WithQuery(const std::string& url, const std::string& param) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
}

std::string Describe(const Error& e) {
  if (e.code == "TransportError") {
    return e.message;
  }
  return "HTTP " + std::to_string(e.status) + " " + DescribeError(e);
}

}  // namespace

Result<PushTarget> PushTarget::Parse(const std::string& text) {
  if (text.find('@') != std::string::npos) {
    return LocalError("'" + text + "': push by digest is not supported; give a tag (repo:tag)");
  }
  std::string rest = text;
  size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    std::string first = rest.substr(0, slash);
    if (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
        first == "localhost") {
      rest = rest.substr(slash + 1);
    }
  }
  PushTarget t;
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    t.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  t.repository = rest;
  bool valid = !rest.empty() && std::all_of(rest.begin(), rest.end(), ValidRepositoryChar) &&
               rest.front() != '/' && rest.back() != '/';
  if (!valid) {
    return LocalError("invalid repository name in '" + text +
                      "' (lower-case letters, digits, '.', '_', '-' and '/')");
  }
  bool tag_ok =
      !t.tag.empty() && t.tag.size() <= 128 && t.tag[0] != '.' && t.tag[0] != '-' &&
      std::all_of(t.tag.begin(), t.tag.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
  if (!tag_ok) {
    return LocalError("invalid tag in '" + text + "'");
  }
  return t;
}

std::unique_ptr<PushProgress> MakePushProgress(std::FILE* out, bool terminal) {
  if (terminal) {
    return std::make_unique<TerminalProgress>(out);
  }
  return std::make_unique<LineProgress>(out);
}

Error ParseRegistryError(long status, const std::string& body) {
  Error e{static_cast<int>(status), "", "", {}};
  try {
    Json j = Json::parse(body);
    if (j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
      const Json& first = j["errors"][0];
      e.code = first.value("code", "");
      e.message = first.value("message", "");
    }
  } catch (const Json::exception&) {
  }
  if (e.code.empty()) {
    e.code = "HTTP" + std::to_string(status);
    e.message = status == 401 ? "authentication failed" : "unexpected answer from the registry";
  }
  return e;
}

std::optional<uint64_t> OffsetFromRange(const std::string& range, bool zero_zero_is_one) {
  std::string r = range;
  if (r.rfind("bytes=", 0) == 0) {
    r = r.substr(6);
  }
  size_t dash = r.find('-');
  if (dash == std::string::npos) {
    return std::nullopt;
  }
  try {
    uint64_t first = std::stoull(r.substr(0, dash));
    uint64_t last = std::stoull(r.substr(dash + 1));
    if (first != 0 || last < first) {
      return std::nullopt;
    }
    if (last == 0) {
      return zero_zero_is_one ? 1 : 0;
    }
    return last + 1;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

RegistryPusher::RegistryPusher(std::string endpoint, std::string repository,
                               std::string authorization, PushOptions options,
                               PushProgress& progress)
    : endpoint_(std::move(endpoint)),
      repository_(std::move(repository)),
      authorization_(std::move(authorization)),
      options_(options),
      progress_(progress) {}

std::string RegistryPusher::BlobsUrl() const {
  return endpoint_ + "/v2/" + repository_ + "/blobs/";
}

Result<bool> RegistryPusher::HasBlob(const std::string& digest) {
  HttpRequest req;
  req.method = "HEAD";
  req.url = BlobsUrl() + digest;
  req.headers = {{"Authorization", authorization_}};
  req.timeout_ms = 30000;
  auto resp = Perform(req);
  if (!resp.ok()) {
    return Error{0,
                 "TransportError",
                 "cannot reach the registry at " + endpoint_ + ": " + resp.error().message,
                 {}};
  }
  if (resp->status == 200) {
    return true;
  }
  if (resp->status == 404) {
    return false;
  }
  // A HEAD answer has no body to read an error from; its status has to do.
  if (resp->status == 401) {
    return Error{401, "UNAUTHORIZED", "the registry refused the ECR token", {}};
  }
  return Error{static_cast<int>(resp->status),
               "HTTP" + std::to_string(resp->status),
               "HEAD " + digest + " failed",
               {}};
}

Result<std::string> RegistryPusher::StartUpload() {
  HttpRequest req;
  req.method = "POST";
  req.url = BlobsUrl() + "uploads/";
  req.headers = {{"Authorization", authorization_}};
  req.timeout_ms = 30000;
  auto resp = Perform(req);
  if (!resp.ok()) {
    return Error{0,
                 "TransportError",
                 "cannot reach the registry at " + endpoint_ + ": " + resp.error().message,
                 {}};
  }
  if (resp->status != 202 || resp->Header("Location").empty()) {
    return ParseRegistryError(resp->status, resp->body);
  }
  return ResolveLocation(endpoint_, resp->Header("Location"));
}

Result<uint64_t> RegistryPusher::QueryOffset(const std::string& location,
                                             std::string& new_location) {
  HttpRequest req;
  req.method = "GET";
  req.url = location;
  req.headers = {{"Authorization", authorization_}};
  req.timeout_ms = 30000;
  auto resp = Perform(req);
  if (!resp.ok()) {
    return Error{0, "TransportError", resp.error().message, {}};
  }
  if (resp->status != 204 && resp->status != 200) {
    return ParseRegistryError(resp->status, resp->body);
  }
  auto offset = OffsetFromRange(resp->Header("Range"));
  if (!offset) {
    return Error{static_cast<int>(resp->status),
                 "RANGE_INVALID",
                 "the upload status has no usable Range header",
                 {}};
  }
  if (!resp->Header("Location").empty()) {
    new_location = ResolveLocation(endpoint_, resp->Header("Location"));
  }
  return *offset;
}

struct RegistryPusher::Upload {
  Upload(const BlobToPush& b, int delay) : blob(b), file(b.path), delay_ms(delay) {}

  const BlobToPush& blob;
  FileReader file;
  std::string url;
  uint64_t offset = 0;
  int failures = 0;  // consecutive ones
  int delay_ms;
  bool restarted = false;

  void Backoff() {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    delay_ms = std::min(delay_ms * 2, 3000);
  }
};

Status RegistryPusher::UploadBlob(const BlobToPush& blob) {
  Upload up(blob, options_.retry_delay_ms);
  if (!up.file.ok()) {
    return LocalError("cannot read " + blob.path + ": " + std::strerror(errno));
  }
  auto started = Clock::now();
  progress_.Start(blob);
  auto location = StartUpload();
  if (!location.ok()) {
    return location.error();
  }
  up.url = *location;
  while (up.offset < blob.size) {
    BERTH_TRY(SendChunk(up));
  }
  BERTH_TRY(CloseUpload(up));
  progress_.Done(std::chrono::duration<double>(Clock::now() - started).count());
  return Ok();
}

Status RegistryPusher::Recover(Upload& up, const std::string& reason, bool zero_zero_is_one) {
  ++up.failures;
  if (up.failures >= options_.max_attempts) {
    return Error{0,
                 "TransportError",
                 "push " + ShortDigest(up.blob.digest) + ": giving up after " +
                     std::to_string(up.failures) + " failed attempts: " + reason,
                 {}};
  }
  up.Backoff();
  std::string moved;
  auto at = QueryOffset(up.url, moved);
  if (!at.ok()) {
    if (at.error().code == "BLOB_UPLOAD_UNKNOWN" && !up.restarted) {
      // The upload is gone (collected, or the daemon lost it): start over once.
      auto fresh = StartUpload();
      if (!fresh.ok()) {
        return fresh.error();
      }
      up.restarted = true;
      up.url = *fresh;
      up.offset = 0;
      progress_.Resume(0, reason + "; the upload was lost, starting over");
      return Ok();
    }
    if (at.error().code == "TransportError") {
      return Ok();  // send the chunk again; if that fails too, ask again
    }
    return at.error();
  }
  up.offset = (*at == 0 && zero_zero_is_one) ? 1 : *at;
  if (!moved.empty()) {
    up.url = moved;
  }
  ++resumes_;
  progress_.Resume(up.offset, reason);
  return Ok();
}

Status RegistryPusher::SendChunk(Upload& up) {
  const uint64_t start = up.offset;
  const uint64_t length = std::min<uint64_t>(options_.chunk_size, up.blob.size - start);
  uint64_t cursor = 0;
  HttpRequest req;
  req.method = "PATCH";
  req.url = up.url;
  req.headers = {
      {"Authorization", authorization_},
      {"Content-Type", "application/octet-stream"},
      {"Content-Range", std::to_string(start) + "-" + std::to_string(start + length - 1)}};
  req.body_size = length;
  req.timeout_ms = 0;
  req.body_reader = [&](char* buf, size_t size) -> size_t {
    size_t want = static_cast<size_t>(std::min<uint64_t>(size, length - cursor));
    if (options_.fail_after_bytes > 0 && !failure_injected_) {
      if (body_bytes_sent_ >= options_.fail_after_bytes) {
        failure_injected_ = true;
        return kAbortUpload;
      }
      want = static_cast<size_t>(
          std::min<uint64_t>(want, options_.fail_after_bytes - body_bytes_sent_));
    }
    if (want == 0) {
      return 0;
    }
    ssize_t n = up.file.ReadAt(buf, want, start + cursor);
    if (n <= 0) {
      return kAbortUpload;
    }
    cursor += static_cast<uint64_t>(n);
    body_bytes_sent_ += static_cast<uint64_t>(n);
    progress_.Advance(start + cursor);
    return static_cast<size_t>(n);
  };
  auto resp = Perform(req);
  if (!resp.ok()) {
    return Recover(up, resp.error().message, false);
  }
  if (resp->status == 202) {
    up.failures = 0;
    up.delay_ms = options_.retry_delay_ms;
    up.offset = start + length;
    auto said = OffsetFromRange(resp->Header("Range"), up.offset == 1);
    if (said && *said != up.offset) {
      up.offset = *said;  // the registry knows best what it holds
    }
    if (!resp->Header("Location").empty()) {
      up.url = ResolveLocation(endpoint_, resp->Header("Location"));
    }
    return Ok();
  }
  Error e = ParseRegistryError(resp->status, resp->body);
  bool retryable = resp->status == 416 || resp->status == 409 || resp->status >= 500 ||
                   e.code == "BLOB_UPLOAD_UNKNOWN";
  if (!retryable) {
    return e;
  }
  // A 416 for a chunk sent from byte 0 with "0-0" back means one byte is there.
  bool one_byte = resp->status == 416 && start == 0 && resp->Header("Range") == "0-0";
  return Recover(up, Describe(e), one_byte);
}

Status RegistryPusher::CloseUpload(Upload& up) {
  for (;;) {
    HttpRequest req;
    req.method = "PUT";
    req.url = WithQuery(up.url, "digest=" + up.blob.digest);
    req.headers = {{"Authorization", authorization_}, {"Content-Type", "application/octet-stream"}};
    req.timeout_ms = 120000;
    auto resp = Perform(req);
    if (resp.ok() && resp->status == 201) {
      return Ok();
    }
    if (resp.ok() && resp->status < 500 && resp->status != 409) {
      return ParseRegistryError(resp->status, resp->body);
    }
    // The answer was lost or the daemon failed: the blob may be complete already.
    auto present = HasBlob(up.blob.digest);
    if (present.ok() && *present) {
      return Ok();
    }
    if (++up.failures >= options_.max_attempts) {
      return resp.ok() ? ParseRegistryError(resp->status, resp->body)
                       : Error{0,
                               "TransportError",
                               "push " + ShortDigest(up.blob.digest) + ": " + resp.error().message,
                               {}};
    }
    up.Backoff();
  }
}

Result<std::string> RegistryPusher::PutManifest(const ManifestToPush& manifest,
                                                const std::string& reference) {
  HttpRequest req;
  req.method = "PUT";
  req.url = endpoint_ + "/v2/" + repository_ + "/manifests/" + reference;
  req.headers = {{"Authorization", authorization_}, {"Content-Type", manifest.media_type}};
  req.body = manifest.body;
  req.timeout_ms = 60000;
  auto resp = Perform(req);
  if (!resp.ok()) {
    return Error{0,
                 "TransportError",
                 "cannot reach the registry at " + endpoint_ + ": " + resp.error().message,
                 {}};
  }
  if (resp->status != 201) {
    return ParseRegistryError(resp->status, resp->body);
  }
  std::string digest = resp->Header("Docker-Content-Digest");
  return digest.empty() ? manifest.digest : digest;
}

}  // namespace berth::cli
