// SPDX-License-Identifier: Apache-2.0
// `berth image push`: an OCI layout or docker-archive into berth's registry.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "cli/aws_client.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/image_source.h"
#include "cli/registry_push.h"

namespace berth::cli {

namespace {

class SilentProgress : public PushProgress {
 public:
  void Exists(const BlobToPush&) override {}

  void Start(const BlobToPush&) override {}

  void Advance(uint64_t) override {}

  void Resume(uint64_t, const std::string&) override {}

  void Done(double) override {}

  void Note(const std::string&) override {}
};

// The repository must exist already, as with docker and skopeo; the ECR
// answer names it.
Status CheckRepository(const AwsClient& ecr, const std::string& repository) {
  auto out = ecr.Call(Service::kEcr, "DescribeRepositories",
                      Json{{"repositoryNames", Json::array({repository})}});
  if (!out.ok()) {
    Error e = out.error();
    if (e.code == "RepositoryNotFoundException") {
      e.message +=
          " (create it first: aws ecr create-repository --repository-name " + repository + ")";
    }
    return e;
  }
  return Ok();
}

Result<std::string> RegistryAuthorization(const AwsClient& ecr) {
  auto out = ecr.Call(Service::kEcr, "GetAuthorizationToken", Json::object());
  if (!out.ok()) {
    return out.error();
  }
  const Json& data = (*out)["authorizationData"];
  if (!data.is_array() || data.empty() || !data[0].contains("authorizationToken")) {
    return Error{502, "InvalidResponse", "GetAuthorizationToken returned no token", {}};
  }
  // The token is already base64("AWS:<password>"), the Basic credential itself.
  return "Basic " + data[0]["authorizationToken"].get<std::string>();
}

uint64_t FailAfterBytes() {
  // Test hook: drop the connection once after this many uploaded body bytes.
  const char* v = std::getenv("BERTH_CLI_FAIL_AFTER_BYTES");
  if (v == nullptr || *v == '\0') {
    return 0;
  }
  return std::strtoull(v, nullptr, 10);
}

}  // namespace

std::optional<uint64_t> ParseSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    ++i;
  }
  if (i == 0 || i > 15) {
    return std::nullopt;
  }
  uint64_t n = std::stoull(text.substr(0, i));
  std::string unit;
  for (char c : text.substr(i)) {
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (unit.empty() || unit == "b") {
    return n;
  }
  if (unit == "k" || unit == "kb" || unit == "kib") {
    return n << 10;
  }
  if (unit == "m" || unit == "mb" || unit == "mib") {
    return n << 20;
  }
  if (unit == "g" || unit == "gb" || unit == "gib") {
    return n << 30;
  }
  return std::nullopt;
}

Status RunImagePush(const GlobalFlags& flags, const ImagePushOptions& options) {
  auto target = PushTarget::Parse(options.target);
  if (!target.ok()) {
    return target.error();
  }
  auto chunk = ParseSize(options.chunk_size);
  if (!chunk || *chunk == 0) {
    return LocalError("invalid --chunk-size '" + options.chunk_size + "'");
  }
  auto settings = ResolveSettings(flags, ProcessEnv());
  if (!settings.ok()) {
    return settings.error();
  }
  AwsClient ecr(*settings);
  BERTH_TRY(CheckRepository(ecr, target->repository));
  auto plan = LoadImage(options.source, target->tag);
  if (!plan.ok()) {
    return plan.error();
  }
  auto authorization = RegistryAuthorization(ecr);
  if (!authorization.ok()) {
    return authorization.error();
  }

  SilentProgress silent;
  auto shown = MakePushProgress(stderr, ::isatty(STDERR_FILENO) == 1);
  PushProgress& progress = options.quiet ? silent : *shown;
  PushOptions push_options;
  push_options.chunk_size = *chunk;
  push_options.fail_after_bytes = FailAfterBytes();
  RegistryPusher pusher(settings->endpoint, target->repository, *authorization, push_options,
                        progress);

  std::string where = target->repository + ":" + target->tag;
  progress.Note("Pushing " + plan->description + " to " + where);
  for (const auto& blob : plan->blobs) {
    auto present = pusher.HasBlob(blob.digest);
    if (!present.ok()) {
      return present.error();
    }
    if (*present) {
      progress.Exists(blob);
      continue;
    }
    BERTH_TRY(pusher.UploadBlob(blob));
  }
  std::string digest;
  for (const auto& m : plan->manifests) {
    auto put = pusher.PutManifest(m, m.by_tag ? target->tag : m.digest);
    if (!put.ok()) {
      return put.error();
    }
    if (m.by_tag) {
      digest = *put;
    }
  }
  progress.Note(where + ": digest: " + digest);
  std::printf("%s\n", digest.c_str());
  return Ok();
}

}  // namespace berth::cli
