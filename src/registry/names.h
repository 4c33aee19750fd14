// The naming rules of the registry: repository names, tags, byte ranges, and
// the image references task definitions carry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::registry {

// ECR's repository name rule: 2 to 256 characters matching
// (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*
bool ValidRepositoryName(std::string_view name);
inline constexpr std::string_view kRepositoryNamePattern =
    "(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*";

// The OCI tag rule: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool ValidTag(std::string_view tag);

// An inclusive byte range.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;

  uint64_t length() const { return last - first + 1; }
};

// The Content-Range of an upload chunk: "<first>-<last>" (also accepted with
// a "bytes " prefix and a "/<total>" suffix, as some clients send it).
// nullopt when malformed or when last < first.
std::optional<ByteRange> ParseContentRange(std::string_view value);

// How a GET's Range header applies to a blob of `size` bytes.
struct RangeRequest {
  enum class Kind { kWhole, kPartial, kUnsatisfiable };
  Kind kind = Kind::kWhole;
  ByteRange range;
};

// Understands one range of the forms "bytes=a-b", "bytes=a-" and "bytes=-n".
// Anything else (several ranges, other units, garbage) is ignored and the
// whole blob is served, as RFC 9110 allows.
RangeRequest ParseRangeHeader(std::string_view value, uint64_t size);

// An image reference split into its parts.
struct ImageReference {
  std::string registry;    // "localhost:4566"; "" when the reference named none
  std::string repository;  // "team/app"
  std::string tag;         // "" when a digest was given
  std::string digest;      // "" when a tag was given
};

// Parses "[registry/]repository[:tag][@digest]". The first component is a
// registry when it holds a '.' or ':' or is "localhost". A reference with
// neither tag nor digest gets tag "latest".
std::optional<ImageReference> ParseImageReference(std::string_view reference);

// Whether `host` has the AWS ECR registry form
// <12 digits>.dkr.ecr.<region>.amazonaws.com[.cn].
bool IsEcrRegistryHost(std::string_view host);

// Maps an image reference meant for AWS ECR
// ("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1") to the same image in
// berth's registry ("localhost:4566/app:1"). References to any other registry
// come back unchanged.
std::string MapEcrReference(std::string_view reference, std::string_view registry_host);

}  // namespace berth::registry
