#include "registry/registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <random>
#include <thread>

#include "common/ids.h"
#include "common/time_util.h"
#include "registry/digest.h"
#include "registry/lifecycle.h"
#include "registry/names.h"

namespace berth::registry {

namespace {

constexpr int kMaxAttempts = 64;

// Writers that lost a race on the same keys wait a short random time that
// grows with each loss, so they stop colliding in lockstep.
void PauseBeforeRetry(int attempt) {
  if (attempt == 0) {
    return;
  }
  if (attempt < 3) {
    std::this_thread::yield();
    return;
  }
  thread_local std::minstd_rand rng(std::random_device{}());
  std::uniform_int_distribution<int> micros(0, 25 << std::min(attempt, 8));
  std::this_thread::sleep_for(std::chrono::microseconds(micros(rng)));
}

const std::string kRepoPrefix = "ecr/repos/";
const std::string kLifecyclePrefix = "ecr/lifecycle/";
const std::string kManifestRoot = "ecr/manifests/";
const std::string kTagRoot = "ecr/tags/";
const std::string kLinkRoot = "ecr/blobs/";
const std::string kReferrerRoot = "ecr/referrers/";
const std::string kUploadPrefix = "ecr/uploads/";

std::string RepoKey(const std::string& name) {
  return kRepoPrefix + name;
}

std::string LifecycleKey(const std::string& name) {
  return kLifecyclePrefix + name;
}

std::string ManifestPrefix(const std::string& repo) {
  return kManifestRoot + repo + "@";
}

std::string ManifestKey(const std::string& repo, const std::string& digest) {
  return ManifestPrefix(repo) + digest;
}

std::string TagPrefix(const std::string& repo) {
  return kTagRoot + repo + ":";
}

std::string TagKey(const std::string& repo, const std::string& tag) {
  return TagPrefix(repo) + tag;
}

std::string LinkPrefix(const std::string& repo) {
  return kLinkRoot + repo + "@";
}

std::string LinkKey(const std::string& repo, const std::string& digest) {
  return LinkPrefix(repo) + digest;
}

std::string RepoReferrerPrefix(const std::string& repo) {
  return kReferrerRoot + repo + "@";
}

std::string ReferrerPrefix(const std::string& repo, const std::string& subject) {
  return RepoReferrerPrefix(repo) + subject + "/";
}

std::string UploadKey(const std::string& id) {
  return kUploadPrefix + id;
}

bool IsConflict(const Error& e) {
  return e.code == store::kConflict;
}

Error ManifestInvalid(const std::string& reason) {
  return Error{400, "MANIFEST_INVALID", "manifest invalid", reason};
}

std::string JoinDigests(const std::vector<std::string>& digests) {
  std::string out = "[";
  for (size_t i = 0; i < digests.size(); ++i) {
    if (i > 0) {
      out += ", ";
    }
    out += digests[i];
  }
  return out + "]";
}

// Several OCI errors in one answer: the renderer reads the array from `detail`.
Error OciErrors(int status, const std::vector<Json>& entries) {
  Error e{status, entries.front().value("code", ""), entries.front().value("message", ""),
          Json(entries).dump()};
  return e;
}

bool IsNonDistributable(const std::string& media_type) {
  return media_type.find("foreign") != std::string::npos ||
         media_type.find("nondistributable") != std::string::npos;
}

Result<std::string> DescriptorDigest(const Json& d, const std::string& where) {
  if (!d.is_object() || !d.contains("digest") || !d["digest"].is_string()) {
    return ManifestInvalid(where + " has no digest");
  }
  std::string digest = d["digest"].get<std::string>();
  if (!ValidateDigest(digest).ok()) {
    return ManifestInvalid(where + " has an invalid digest " + digest);
  }
  if (d.contains("size") && !d["size"].is_number_integer()) {
    return ManifestInvalid(where + " has an invalid size");
  }
  return digest;
}

}  // namespace

// --- ManifestRecord ---

Json ManifestRecord::ToJson() const {
  Json j = {{"mediaType", media_type}, {"size", size},   {"pushedAt", pushed_at},
            {"imageSize", image_size}, {"blobs", blobs}, {"children", children}};
  if (!artifact_type.empty()) {
    j["artifactType"] = artifact_type;
  }
  if (!subject.empty()) {
    j["subject"] = subject;
  }
  if (annotations.is_object() && !annotations.empty()) {
    j["annotations"] = annotations;
  }
  if (blob_types.is_object() && !blob_types.empty()) {
    j["blobTypes"] = blob_types;
  }
  return j;
}

ManifestRecord ManifestRecord::FromJson(std::string digest, const Json& doc) {
  ManifestRecord r;
  r.digest = std::move(digest);
  r.media_type = doc.value("mediaType", "");
  r.size = doc.value("size", uint64_t{0});
  r.pushed_at = doc.value("pushedAt", 0.0);
  r.image_size = doc.value("imageSize", uint64_t{0});
  r.artifact_type = doc.value("artifactType", "");
  r.subject = doc.value("subject", "");
  r.annotations = doc.value("annotations", Json());
  r.blobs = doc.value("blobs", std::vector<std::string>{});
  r.children = doc.value("children", std::vector<std::string>{});
  r.blob_types = doc.value("blobTypes", Json::object());
  return r;
}

std::string BareMediaType(std::string_view value) {
  size_t semi = value.find(';');
  std::string_view v = value.substr(0, semi);
  while (!v.empty() && v.back() == ' ') {
    v.remove_suffix(1);
  }
  while (!v.empty() && v.front() == ' ') {
    v.remove_prefix(1);
  }
  std::string out(v);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

Result<ManifestRecord> ParseManifest(std::string_view body, std::string_view declared_raw) {
  Json doc;
  try {
    doc = Json::parse(body);
  } catch (const Json::parse_error& e) {
    return ManifestInvalid("the manifest is not valid JSON");
  }
  if (!doc.is_object()) {
    return ManifestInvalid("the manifest is not a JSON object");
  }
  if (!doc.contains("schemaVersion") || doc["schemaVersion"] != 2) {
    return ManifestInvalid("only schemaVersion 2 manifests are supported");
  }
  std::string declared = BareMediaType(declared_raw);
  if (declared == "application/json" || declared == "application/octet-stream") {
    declared.clear();
  }
  std::string field;
  if (doc.contains("mediaType")) {
    if (!doc["mediaType"].is_string()) {
      return ManifestInvalid("mediaType must be a string");
    }
    field = doc["mediaType"].get<std::string>();
  }
  if (!declared.empty() && !field.empty() && declared != field) {
    return ManifestInvalid("the manifest's mediaType " + field + " does not match " + declared);
  }
  std::string media_type = !declared.empty() ? declared : field;
  if (media_type.empty()) {
    if (doc.contains("manifests")) {
      media_type = kOciIndex;
    } else if (doc.contains("config")) {
      media_type = kOciManifest;
    } else {
      return ManifestInvalid("the manifest's media type cannot be told");
    }
  }
  ManifestRecord r;
  r.media_type = media_type;
  r.size = body.size();
  if (doc.contains("annotations")) {
    if (!doc["annotations"].is_object()) {
      return ManifestInvalid("annotations must be an object");
    }
    r.annotations = doc["annotations"];
  }
  if (doc.contains("artifactType")) {
    if (!doc["artifactType"].is_string()) {
      return ManifestInvalid("artifactType must be a string");
    }
    r.artifact_type = doc["artifactType"].get<std::string>();
  }
  if (doc.contains("subject")) {
    auto subject = DescriptorDigest(doc["subject"], "subject");
    if (!subject.ok()) {
      return subject.error();
    }
    r.subject = *subject;
  }
  if (media_type == kOciManifest || media_type == kDockerManifest) {
    if (!doc.contains("config")) {
      return ManifestInvalid("an image manifest needs a config");
    }
    auto config = DescriptorDigest(doc["config"], "config");
    if (!config.ok()) {
      return config.error();
    }
    r.blobs.push_back(*config);
    r.blob_types = Json::object();
    r.blob_types[*config] = doc["config"].value("mediaType", "");
    if (r.artifact_type.empty()) {
      r.artifact_type = doc["config"].value("mediaType", "");
    }
    const Json layers = doc.value("layers", Json::array());
    if (!layers.is_array()) {
      return ManifestInvalid("layers must be an array");
    }
    if (media_type == kDockerManifest && layers.empty()) {
      return ManifestInvalid("an image manifest needs at least one layer");
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      auto digest = DescriptorDigest(layers[i], "layer " + std::to_string(i));
      if (!digest.ok()) {
        return digest.error();
      }
      r.image_size += layers[i].value("size", uint64_t{0});
      std::string layer_type = layers[i].value("mediaType", "");
      if (!IsNonDistributable(layer_type)) {
        r.blobs.push_back(*digest);
        r.blob_types[*digest] = layer_type;
      }
    }
    return r;
  }
  if (media_type == kOciIndex || media_type == kDockerManifestList) {
    if (!doc.contains("manifests") || !doc["manifests"].is_array()) {
      return ManifestInvalid("an index needs a manifests array");
    }
    const Json& list = doc["manifests"];
    for (size_t i = 0; i < list.size(); ++i) {
      auto digest = DescriptorDigest(list[i], "manifest " + std::to_string(i));
      if (!digest.ok()) {
        return digest.error();
      }
      r.children.push_back(*digest);
    }
    return r;
  }
  // LIMITATION: Docker schema 1 manifests (deprecated, signed) are refused.
  return ManifestInvalid("unsupported manifest media type " + media_type);
}

// --- Registry ---

Registry::Registry(store::Store& store, RegistryOptions options, std::unique_ptr<BlobStore> blobs,
                   std::unique_ptr<TokenAuthority> tokens)
    : store_(store),
      options_(std::move(options)),
      blobs_(std::move(blobs)),
      tokens_(std::move(tokens)) {}

Registry::~Registry() {
  StopCollector();
}

Result<std::unique_ptr<Registry>> Registry::Open(store::Store& store, RegistryOptions options) {
  auto blobs = BlobStore::Open(options.root);
  if (!blobs.ok()) {
    return blobs.error();
  }
  auto tokens = TokenAuthority::Open(options.root + "/token.key");
  if (!tokens.ok()) {
    return tokens.error();
  }
  return std::unique_ptr<Registry>(
      new Registry(store, std::move(options), std::move(*blobs), std::move(*tokens)));
}

std::string Registry::registry_host() const {
  std::lock_guard lock(host_mu_);
  return options_.registry_host;
}

void Registry::SetRegistryHost(std::string host) {
  std::lock_guard lock(host_mu_);
  options_.registry_host = std::move(host);
}

std::string Registry::RepositoryArn(const std::string& name) const {
  return "arn:aws:ecr:" + options_.account.region + ":" + options_.account.account_id +
         ":repository/" + name;
}

std::string Registry::RepositoryUri(const std::string& name) const {
  return registry_host() + "/" + name;
}

Error Registry::NotFound(const std::string& name, Surface surface) const {
  std::string message = "The repository with name '" + name +
                        "' does not exist in the registry with id '" + options_.account.account_id +
                        "'";
  if (surface == Surface::kEcr) {
    return ClientError("RepositoryNotFoundException", message);
  }
  return Error{404, "NAME_UNKNOWN", message, Json{{"name", name}}.dump()};
}

// --- repositories ---

Result<std::optional<Repository>> Registry::FindRepository(const std::string& name) {
  auto entry = store_.Get(RepoKey(name));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return std::optional<Repository>();
  }
  return std::optional<Repository>(
      Repository{name, Json::parse((*entry)->value), (*entry)->mod_revision});
}

Result<Repository> Registry::GetRepository(const std::string& name, Surface surface) {
  auto found = FindRepository(name);
  if (!found.ok()) {
    return found.error();
  }
  if (!*found) {
    return NotFound(name, surface);
  }
  return std::move(**found);
}

Result<Repository> Registry::CreateRepository(const std::string& name, Json doc) {
  store::Txn txn;
  txn.IfAbsent(RepoKey(name)).Put(RepoKey(name), doc.dump());
  auto rev = store_.Commit(txn);
  if (!rev.ok()) {
    if (IsConflict(rev.error())) {
      return ClientError("RepositoryAlreadyExistsException",
                         "The repository with name '" + name +
                             "' already exists in the registry with id '" +
                             options_.account.account_id + "'");
    }
    return rev.error();
  }
  return Repository{name, std::move(doc), *rev};
}

Result<Repository> Registry::UpdateRepository(const std::string& name,
                                              const std::function<Status(Json&)>& change) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    PauseBeforeRetry(attempt);
    auto repo = GetRepository(name, Surface::kEcr);
    if (!repo.ok()) {
      return repo.error();
    }
    BERTH_TRY(change(repo->doc));
    store::Txn txn;
    txn.IfRevision(RepoKey(name), repo->revision).Put(RepoKey(name), repo->doc.dump());
    auto rev = store_.Commit(txn);
    if (rev.ok()) {
      repo->revision = *rev;
      return std::move(*repo);
    }
    if (!IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return ServerError("repository " + name + " kept changing");
}

Result<Repository> Registry::DeleteRepository(const std::string& name, bool force) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    PauseBeforeRetry(attempt);
    auto repo = GetRepository(name, Surface::kEcr);
    if (!repo.ok()) {
      return repo.error();
    }
    auto manifests = store_.List(ManifestPrefix(name));
    if (!manifests.ok()) {
      return manifests.error();
    }
    if (!manifests->empty() && !force) {
      return ClientError("RepositoryNotEmptyException",
                         "The repository with name '" + name + "' in registry with id '" +
                             options_.account.account_id +
                             "' cannot be deleted because it still contains images");
    }
    store::Txn txn;
    txn.IfRevision(RepoKey(name), repo->revision).Delete(RepoKey(name));
    for (const auto& prefix :
         {ManifestPrefix(name), TagPrefix(name), LinkPrefix(name), RepoReferrerPrefix(name)}) {
      auto entries = store_.List(prefix);
      if (!entries.ok()) {
        return entries.error();
      }
      for (const auto& e : *entries) {
        txn.Delete(e.key);
      }
    }
    auto policy = store_.Get(LifecycleKey(name));
    if (policy.ok() && *policy) {
      txn.Delete(LifecycleKey(name));
    }
    std::vector<std::string> uploads;
    auto up = store_.List(kUploadPrefix);
    if (!up.ok()) {
      return up.error();
    }
    for (const auto& e : *up) {
      if (Json::parse(e.value).value("repository", "") == name) {
        txn.Delete(e.key);
        uploads.push_back(e.key.substr(kUploadPrefix.size()));
      }
    }
    auto rev = store_.Commit(txn);
    if (rev.ok()) {
      for (const auto& id : uploads) {
        (void)blobs_->RemoveUpload(id);
      }
      // The blobs themselves go at the next collection, once nothing else holds them.
      return std::move(*repo);
    }
    if (!IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return ServerError("repository " + name + " kept changing");
}

Result<std::vector<Repository>> Registry::ListRepositories(const std::string& after, size_t limit) {
  auto entries = store_.List(kRepoPrefix, after.empty() ? "" : RepoKey(after), limit);
  if (!entries.ok()) {
    return entries.error();
  }
  std::vector<Repository> out;
  out.reserve(entries->size());
  for (const auto& e : *entries) {
    out.push_back(
        Repository{e.key.substr(kRepoPrefix.size()), Json::parse(e.value), e.mod_revision});
  }
  return out;
}

// --- lifecycle policies ---

Result<std::optional<std::pair<std::string, double>>> Registry::GetLifecyclePolicy(
    const std::string& name) {
  BERTH_TRY(GetRepository(name, Surface::kEcr));
  auto entry = store_.Get(LifecycleKey(name));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return std::optional<std::pair<std::string, double>>();
  }
  Json doc = Json::parse((*entry)->value);
  return std::optional<std::pair<std::string, double>>(
      std::make_pair(doc.value("text", ""), doc.value("lastEvaluatedAt", 0.0)));
}

Status Registry::PutLifecyclePolicy(const std::string& name, const std::string& text) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    PauseBeforeRetry(attempt);
    auto repo = GetRepository(name, Surface::kEcr);
    if (!repo.ok()) {
      return repo.error();
    }
    // Guarded by the repository's revision so a policy never outlives a
    // concurrent DeleteRepository.
    store::Txn txn;
    txn.IfRevision(RepoKey(name), repo->revision)
        .Put(LifecycleKey(name), Json{{"text", text}}.dump());
    auto rev = store_.Commit(txn);
    if (rev.ok()) {
      return Ok();
    }
    if (!IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return ServerError("repository " + name + " kept changing");
}

Status Registry::DeleteLifecyclePolicy(const std::string& name) {
  BERTH_TRY(store_.Delete(LifecycleKey(name)));
  return Ok();
}

// --- blobs ---

Result<std::optional<uint64_t>> Registry::BlobSize(const std::string& repo,
                                                   const std::string& digest) {
  auto link = store_.Get(LinkKey(repo, digest));
  if (!link.ok()) {
    return link.error();
  }
  if (!*link) {
    return std::optional<uint64_t>();
  }
  auto st = blobs_->Stat(digest);
  if (!st) {
    return std::optional<uint64_t>();
  }
  return std::optional<uint64_t>(st->size);
}

Status Registry::UnlinkBlob(const std::string& repo, const std::string& digest) {
  auto link = store_.Get(LinkKey(repo, digest));
  if (!link.ok()) {
    return link.error();
  }
  if (!*link) {
    return Error{404, "BLOB_UNKNOWN", "blob unknown to registry", digest};
  }
  BERTH_TRY(store_.Delete(LinkKey(repo, digest)));
  return Ok();
}

Result<bool> Registry::MountBlob(const std::string& repo, const std::string& digest,
                                 const std::string& from) {
  std::shared_lock gc(gc_mu_);
  if (!from.empty()) {
    auto held = BlobSize(from, digest);
    if (!held.ok()) {
      return held.error();
    }
    if (!*held) {
      return false;
    }
  }
  auto st = blobs_->Stat(digest);
  if (!st) {
    return false;
  }
  blobs_->Touch(digest);
  Json link = {{"size", st->size}, {"linkedAt", NowEpochSeconds()}};
  BERTH_TRY(store_.Put(LinkKey(repo, digest), link.dump()));
  return true;
}

// --- uploads ---

Result<std::string> Registry::StartUpload(const std::string& repo) {
  std::string id = NewUuid();
  BERTH_TRY(blobs_->CreateUpload(id));
  Json doc = {{"repository", repo}, {"startedAt", NowEpochSeconds()}};
  auto rev = store_.Put(UploadKey(id), doc.dump());
  if (!rev.ok()) {
    (void)blobs_->RemoveUpload(id);
    return rev.error();
  }
  return id;
}

namespace {

Error UploadUnknown(const std::string& id) {
  return Error{404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", id};
}

}  // namespace

Result<uint64_t> Registry::UploadOffset(const std::string& repo, const std::string& id) {
  auto entry = store_.Get(UploadKey(id));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry || Json::parse((*entry)->value).value("repository", "") != repo) {
    return UploadUnknown(id);
  }
  auto size = blobs_->UploadSize(id);
  if (!size) {
    return UploadUnknown(id);
  }
  return *size;
}

Result<std::unique_ptr<UploadWriter>> Registry::OpenUpload(const std::string& repo,
                                                           const std::string& id) {
  auto entry = store_.Get(UploadKey(id));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry || Json::parse((*entry)->value).value("repository", "") != repo) {
    return UploadUnknown(id);
  }
  return blobs_->OpenUpload(id);
}

Result<Published> Registry::CompleteUpload(const std::string& repo, const std::string& id,
                                           UploadWriter& writer, const std::string& expected) {
  std::shared_lock gc(gc_mu_);
  auto published = writer.Publish(expected);
  if (!published.ok()) {
    if (published.error().code == "DIGEST_INVALID") {
      // A wrong digest ends the upload: nothing is stored under either digest.
      (void)CancelUpload(repo, id);
    }
    return published.error();
  }
  Json link = {{"size", published->size}, {"linkedAt", NowEpochSeconds()}};
  store::Txn txn;
  txn.Put(LinkKey(repo, published->digest), link.dump()).Delete(UploadKey(id));
  auto rev = store_.Commit(txn);
  if (!rev.ok()) {
    return rev.error();
  }
  return published;
}

Status Registry::CancelUpload(const std::string& repo, const std::string& id) {
  auto entry = store_.Get(UploadKey(id));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry || Json::parse((*entry)->value).value("repository", "") != repo) {
    return UploadUnknown(id);
  }
  BERTH_TRY(store_.Delete(UploadKey(id)));
  return blobs_->RemoveUpload(id);
}

// --- manifests ---

Result<std::optional<ManifestRecord>> Registry::FindManifest(const std::string& repo,
                                                             const std::string& digest) {
  auto entry = store_.Get(ManifestKey(repo, digest));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return std::optional<ManifestRecord>();
  }
  return std::optional<ManifestRecord>(
      ManifestRecord::FromJson(digest, Json::parse((*entry)->value)));
}

Result<std::optional<std::string>> Registry::ResolveTag(const std::string& repo,
                                                        const std::string& tag) {
  auto entry = store_.Get(TagKey(repo, tag));
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(Json::parse((*entry)->value).value("digest", ""));
}

Result<std::string> Registry::ReadManifest(const std::string& digest) {
  return blobs_->Read(digest, kMaxManifestSize);
}

Result<PutManifestResult> Registry::PutManifest(const PutManifestRequest& req) {
  const bool ecr = req.surface == Surface::kEcr;
  const std::string& repo_name = req.repository;
  const std::string& account_id = options_.account.account_id;
  auto repo = GetRepository(repo_name, req.surface);
  if (!repo.ok()) {
    return repo.error();
  }
  if (!req.tag.empty() && !ValidTag(req.tag)) {
    if (ecr) {
      return ClientError("InvalidParameterException",
                         "Invalid parameter at 'imageTag' failed to satisfy constraint: 'must "
                         "satisfy regular expression '[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}''");
    }
    return Error{400, "TAG_INVALID", "manifest tag did not match URI", req.tag};
  }
  if (req.body.size() > kMaxManifestSize) {
    if (ecr) {
      return ClientError("InvalidParameterException",
                         "Invalid parameter at 'imageManifest' failed to satisfy constraint: "
                         "'Member must have length less than or equal to 4194304'");
    }
    return Error{413, "SIZE_INVALID", "manifest is larger than 4 MiB", ""};
  }
  auto parsed = ParseManifest(req.body, req.media_type);
  if (!parsed.ok()) {
    if (ecr) {
      return ClientError("InvalidParameterException",
                         "Invalid parameter at 'ImageManifest' failed to satisfy constraint: '" +
                             parsed.error().detail + "'");
    }
    return parsed.error();
  }
  ManifestRecord record = std::move(*parsed);
  record.digest = Sha256Digest(req.body);
  if (!req.expected_digest.empty() && req.expected_digest != record.digest) {
    if (ecr) {
      return ClientError("ImageDigestDoesNotMatchException",
                         "The provided image digest '" + req.expected_digest +
                             "' does not match the digest calculated for the image manifest '" +
                             record.digest + "'");
    }
    return Error{400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                 req.expected_digest};
  }

  std::shared_lock gc(gc_mu_);
  // Every blob the manifest needs must be held by this repository.
  std::vector<std::string> missing_blobs;
  for (const auto& digest : record.blobs) {
    auto size = BlobSize(repo_name, digest);
    if (!size.ok()) {
      return size.error();
    }
    if (!*size &&
        std::find(missing_blobs.begin(), missing_blobs.end(), digest) == missing_blobs.end()) {
      missing_blobs.push_back(digest);
    }
  }
  std::vector<std::string> missing_children;
  for (const auto& digest : record.children) {
    auto child = FindManifest(repo_name, digest);
    if (!child.ok()) {
      return child.error();
    }
    if (!*child) {
      missing_children.push_back(digest);
    } else {
      record.image_size = std::max(record.image_size, (*child)->image_size);
    }
  }
  if (!missing_blobs.empty() || !missing_children.empty()) {
    if (ecr) {
      std::string where = "' required for pushing image into repository with name '" + repo_name +
                          "' in the registry with id '" + account_id + "' do not exist";
      if (!missing_blobs.empty()) {
        return ClientError("LayersNotFoundException",
                           "Layers with digests '" + JoinDigests(missing_blobs) + where);
      }
      return ClientError("ReferencedImagesNotFoundException",
                         "Images with digests '" + JoinDigests(missing_children) + where);
    }
    std::vector<Json> errors;
    for (const auto& d : missing_blobs) {
      errors.push_back({{"code", "MANIFEST_BLOB_UNKNOWN"},
                        {"message", "blob unknown to registry"},
                        {"detail", d}});
    }
    for (const auto& d : missing_children) {
      errors.push_back({{"code", "MANIFEST_BLOB_UNKNOWN"},
                        {"message", "manifest unknown to registry"},
                        {"detail", d}});
    }
    return OciErrors(400, errors);
  }

  auto stored = blobs_->Put(req.body);
  if (!stored.ok()) {
    return stored.error();
  }
  const bool immutable = repo->doc.value("imageTagMutability", "MUTABLE") == "IMMUTABLE";
  const std::string manifest_key = ManifestKey(repo_name, record.digest);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    PauseBeforeRetry(attempt);
    if (attempt > 0) {
      auto again = GetRepository(repo_name, req.surface);
      if (!again.ok()) {
        return again.error();
      }
      repo = std::move(again);
    }
    store::Txn txn;
    txn.IfRevision(RepoKey(repo_name), repo->revision);
    if (!req.tag.empty()) {
      auto tag_entry = store_.Get(TagKey(repo_name, req.tag));
      if (!tag_entry.ok()) {
        return tag_entry.error();
      }
      int64_t tag_rev = 0;
      if (*tag_entry) {
        tag_rev = (*tag_entry)->mod_revision;
        std::string current = Json::parse((*tag_entry)->value).value("digest", "");
        if (current == record.digest && ecr) {
          return ClientError("ImageAlreadyExistsException",
                             "Image with digest '" + record.digest + "' and tag '" + req.tag +
                                 "' already exists in the repository with name '" + repo_name +
                                 "' in the registry with id '" + account_id + "'");
        }
        if (immutable) {
          std::string message = "The image tag '" + req.tag + "' already exists in the '" +
                                repo_name +
                                "' repository and cannot be overwritten because the repository "
                                "is immutable.";
          if (ecr) {
            return ClientError("ImageTagAlreadyExistsException", message);
          }
          return Error{400, "TAG_INVALID", message, req.tag};
        }
      }
      txn.IfRevision(TagKey(repo_name, req.tag), tag_rev)
          .Put(TagKey(repo_name, req.tag), Json{{"digest", record.digest}}.dump());
    }
    auto existing = store_.Get(manifest_key);
    if (!existing.ok()) {
      return existing.error();
    }
    ManifestRecord to_store = record;
    if (*existing) {
      if (req.tag.empty() && ecr) {
        return ClientError("ImageAlreadyExistsException",
                           "Image with digest '" + record.digest +
                               "' already exists in the repository with name '" + repo_name +
                               "' in the registry with id '" + account_id + "'");
      }
      to_store.pushed_at = Json::parse((*existing)->value).value("pushedAt", 0.0);
      txn.IfRevision(manifest_key, (*existing)->mod_revision);
    } else {
      to_store.pushed_at = NowEpochSeconds();
      txn.IfAbsent(manifest_key);
    }
    // Rewritten even when present, so a concurrent delete of this image
    // notices the new tag through the manifest key's revision.
    txn.Put(manifest_key, to_store.ToJson().dump());
    if (!record.subject.empty()) {
      txn.Put(ReferrerPrefix(repo_name, record.subject) + record.digest, "{}");
    }
    auto rev = store_.Commit(txn);
    if (rev.ok()) {
      return PutManifestResult{record.digest, record.media_type, record.subject};
    }
    if (!IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return ServerError("repository " + repo_name + " kept changing");
}

Result<std::vector<Image>> Registry::ListImages(const std::string& repo) {
  auto manifests = store_.List(ManifestPrefix(repo));
  if (!manifests.ok()) {
    return manifests.error();
  }
  auto tags = store_.List(TagPrefix(repo));
  if (!tags.ok()) {
    return tags.error();
  }
  std::map<std::string, std::vector<std::string>> by_digest;
  const size_t tag_prefix = TagPrefix(repo).size();
  for (const auto& e : *tags) {
    by_digest[Json::parse(e.value).value("digest", "")].push_back(e.key.substr(tag_prefix));
  }
  std::vector<Image> out;
  out.reserve(manifests->size());
  const size_t manifest_prefix = ManifestPrefix(repo).size();
  for (const auto& e : *manifests) {
    std::string digest = e.key.substr(manifest_prefix);
    Image image{ManifestRecord::FromJson(digest, Json::parse(e.value)), {}};
    auto it = by_digest.find(digest);
    if (it != by_digest.end()) {
      image.tags = it->second;
    }
    out.push_back(std::move(image));
  }
  return out;
}

Result<std::vector<std::string>> Registry::ListTags(const std::string& repo,
                                                    const std::string& after, size_t limit) {
  auto entries = store_.List(TagPrefix(repo), after.empty() ? "" : TagKey(repo, after), limit);
  if (!entries.ok()) {
    return entries.error();
  }
  std::vector<std::string> out;
  out.reserve(entries->size());
  const size_t prefix = TagPrefix(repo).size();
  for (const auto& e : *entries) {
    out.push_back(e.key.substr(prefix));
  }
  return out;
}

Result<std::vector<ManifestRecord>> Registry::Referrers(const std::string& repo,
                                                        const std::string& subject) {
  auto entries = store_.List(ReferrerPrefix(repo, subject));
  if (!entries.ok()) {
    return entries.error();
  }
  std::vector<ManifestRecord> out;
  const size_t prefix = ReferrerPrefix(repo, subject).size();
  for (const auto& e : *entries) {
    auto record = FindManifest(repo, e.key.substr(prefix));
    if (!record.ok()) {
      return record.error();
    }
    if (*record) {
      out.push_back(std::move(**record));
    }
  }
  return out;
}

Result<std::vector<std::string>> Registry::IndexesListing(const std::string& repo,
                                                          const std::string& digest) {
  auto manifests = store_.List(ManifestPrefix(repo));
  if (!manifests.ok()) {
    return manifests.error();
  }
  std::vector<std::string> out;
  const size_t prefix = ManifestPrefix(repo).size();
  for (const auto& e : *manifests) {
    Json doc = Json::parse(e.value);
    for (const auto& child : doc.value("children", Json::array())) {
      if (child == digest) {
        out.push_back(e.key.substr(prefix));
        break;
      }
    }
  }
  return out;
}

Status Registry::DeleteManifest(const std::string& repo, const std::string& digest) {
  const std::string manifest_key = ManifestKey(repo, digest);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    PauseBeforeRetry(attempt);
    auto entry = store_.Get(manifest_key);
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      return Error{404, "MANIFEST_UNKNOWN", "manifest unknown to registry", digest};
    }
    ManifestRecord record = ManifestRecord::FromJson(digest, Json::parse((*entry)->value));
    store::Txn txn;
    txn.IfRevision(manifest_key, (*entry)->mod_revision).Delete(manifest_key);
    auto tags = store_.List(TagPrefix(repo));
    if (!tags.ok()) {
      return tags.error();
    }
    for (const auto& e : *tags) {
      if (Json::parse(e.value).value("digest", "") == digest) {
        txn.IfRevision(e.key, e.mod_revision).Delete(e.key);
      }
    }
    if (!record.subject.empty()) {
      txn.Delete(ReferrerPrefix(repo, record.subject) + digest);
    }
    auto rev = store_.Commit(txn);
    if (rev.ok()) {
      return Ok();
    }
    if (!IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return ServerError("image " + digest + " kept changing");
}

Result<std::string> Registry::DeleteTag(const std::string& repo, const std::string& tag,
                                        bool drop_untagged) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    PauseBeforeRetry(attempt);
    auto entry = store_.Get(TagKey(repo, tag));
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      return Error{404, "MANIFEST_UNKNOWN", "manifest unknown to registry", tag};
    }
    std::string digest = Json::parse((*entry)->value).value("digest", "");
    store::Txn txn;
    txn.IfRevision(TagKey(repo, tag), (*entry)->mod_revision).Delete(TagKey(repo, tag));
    if (drop_untagged) {
      auto tags = store_.List(TagPrefix(repo));
      if (!tags.ok()) {
        return tags.error();
      }
      bool other_tags = false;
      for (const auto& e : *tags) {
        if (e.key != TagKey(repo, tag) && Json::parse(e.value).value("digest", "") == digest) {
          other_tags = true;
          break;
        }
      }
      auto listed_by = IndexesListing(repo, digest);
      if (!listed_by.ok()) {
        return listed_by.error();
      }
      auto manifest = store_.Get(ManifestKey(repo, digest));
      if (!manifest.ok()) {
        return manifest.error();
      }
      if (!other_tags && listed_by->empty() && *manifest) {
        ManifestRecord record = ManifestRecord::FromJson(digest, Json::parse((*manifest)->value));
        txn.IfRevision(ManifestKey(repo, digest), (*manifest)->mod_revision)
            .Delete(ManifestKey(repo, digest));
        if (!record.subject.empty()) {
          txn.Delete(ReferrerPrefix(repo, record.subject) + digest);
        }
      }
    }
    auto rev = store_.Commit(txn);
    if (rev.ok()) {
      return digest;
    }
    if (!IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return ServerError("tag " + tag + " kept changing");
}

// --- garbage collection ---

Status Registry::ApplyLifecycle(double now, GcStats& stats) {
  auto policies = store_.List(kLifecyclePrefix);
  if (!policies.ok()) {
    return policies.error();
  }
  for (const auto& entry : *policies) {
    std::string repo = entry.key.substr(kLifecyclePrefix.size());
    Json doc = Json::parse(entry.value);
    auto policy = ParseLifecyclePolicy(doc.value("text", ""));
    if (!policy.ok()) {
      spdlog::warn("event=lifecycle_policy_invalid repository={} error=\"{}\"", repo,
                   policy.error().message);
      continue;
    }
    auto images = ListImages(repo);
    if (!images.ok()) {
      return images.error();
    }
    std::vector<LifecycleImage> candidates;
    std::set<std::string> listed;  // children of indexes stay while the index does
    for (const auto& image : *images) {
      for (const auto& child : image.manifest.children) {
        listed.insert(child);
      }
    }
    for (const auto& image : *images) {
      if (listed.count(image.manifest.digest) == 0) {
        candidates.push_back(
            LifecycleImage{image.manifest.digest, image.tags, image.manifest.pushed_at});
      }
    }
    for (const auto& digest : ExpiredImages(*policy, candidates, now)) {
      Status st = DeleteManifest(repo, digest);
      if (st.ok()) {
        ++stats.images_expired;
        spdlog::info("event=image_expired repository={} digest={}", repo, digest);
      } else if (st.error().code != "MANIFEST_UNKNOWN") {
        return st;
      }
    }
    doc["lastEvaluatedAt"] = now;
    store::Txn txn;
    txn.IfRevision(entry.key, entry.mod_revision).Put(entry.key, doc.dump());
    auto rev = store_.Commit(txn);
    if (!rev.ok() && !IsConflict(rev.error())) {
      return rev.error();
    }
  }
  return Ok();
}

Result<GcStats> Registry::CollectGarbage(std::chrono::system_clock::time_point now) {
  GcStats stats;
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const auto cutoff = now - options_.gc_grace;
  const double cutoff_s = now_s - static_cast<double>(options_.gc_grace.count());

  BERTH_TRY(ApplyLifecycle(now_s, stats));

  // Uploads nobody has written to within the grace period.
  {
    auto entries = store_.List(kUploadPrefix);
    if (!entries.ok()) {
      return entries.error();
    }
    std::map<std::string, UploadFile> files;
    for (auto& f : blobs_->ListUploads()) {
      files[f.id] = f;
    }
    for (const auto& e : *entries) {
      std::string id = e.key.substr(kUploadPrefix.size());
      auto file = files.find(id);
      bool stale = file == files.end() ? Json::parse(e.value).value("startedAt", 0.0) < cutoff_s
                                       : file->second.modified < cutoff;
      if (file != files.end()) {
        files.erase(file);
      }
      if (!stale) {
        continue;
      }
      store::Txn txn;
      txn.IfRevision(e.key, e.mod_revision).Delete(e.key);
      if (store_.Commit(txn).ok()) {
        (void)blobs_->RemoveUpload(id);
        ++stats.uploads_removed;
      }
    }
    // Files no upload record names: left by a crash between the two steps.
    for (const auto& [id, file] : files) {
      if (file.modified < cutoff) {
        (void)blobs_->RemoveUpload(id);
        ++stats.uploads_removed;
      }
    }
  }

  // The sweep: nothing may become referenced while it decides.
  // TODO: the sweep scans every manifest, link and blob file while holding
  // gc_mu_ exclusively. Effect: on a large registry, pushes wait for the scan.
  // Fix: find candidates without the lock, then re-check only those under it
  // (needs an index from digest to the repositories holding it).
  std::unique_lock gc(gc_mu_);
  std::set<std::string> live;          // blobs anything still needs
  std::set<std::string> needed_links;  // "<repo>@<digest>" a manifest of <repo> references
  {
    auto manifests = store_.List(kManifestRoot);
    if (!manifests.ok()) {
      return manifests.error();
    }
    for (const auto& e : *manifests) {
      std::string rest = e.key.substr(kManifestRoot.size());
      size_t at = rest.rfind('@');
      std::string repo = rest.substr(0, at);
      live.insert(rest.substr(at + 1));
      Json doc = Json::parse(e.value);
      for (const auto& blob : doc.value("blobs", std::vector<std::string>{})) {
        live.insert(blob);
        needed_links.insert(repo + "@" + blob);
      }
    }
  }
  {
    auto links = store_.List(kLinkRoot);
    if (!links.ok()) {
      return links.error();
    }
    std::map<std::string, bool> repo_exists;
    for (const auto& e : *links) {
      std::string rest = e.key.substr(kLinkRoot.size());
      size_t at = rest.rfind('@');
      std::string repo = rest.substr(0, at);
      std::string digest = rest.substr(at + 1);
      auto known = repo_exists.find(repo);
      if (known == repo_exists.end()) {
        auto found = store_.Get(RepoKey(repo));
        if (!found.ok()) {
          return found.error();
        }
        known = repo_exists.emplace(repo, found->has_value()).first;
      }
      bool drop = !known->second;
      if (!drop && needed_links.count(rest) == 0) {
        drop = Json::parse(e.value).value("linkedAt", 0.0) < cutoff_s;
      }
      if (!drop) {
        live.insert(digest);
        continue;
      }
      store::Txn txn;
      txn.IfRevision(e.key, e.mod_revision).Delete(e.key);
      auto rev = store_.Commit(txn);
      if (rev.ok()) {
        ++stats.links_removed;
      } else {
        live.insert(digest);
      }
    }
  }
  for (const auto& [digest, st] : blobs_->List()) {
    if (live.count(digest) > 0 || st.modified >= cutoff) {
      continue;
    }
    if (blobs_->Remove(digest).ok()) {
      ++stats.blobs_removed;
      stats.bytes_freed += st.size;
    }
  }
  return stats;
}

void Registry::StartCollector(std::chrono::seconds interval) {
  StopCollector();
  {
    std::lock_guard lock(collector_mu_);
    collector_stop_ = false;
  }
  collector_ = std::thread([this, interval] {
    std::unique_lock lock(collector_mu_);
    while (!collector_cv_.wait_for(lock, interval, [this] { return collector_stop_; })) {
      lock.unlock();
      auto started = std::chrono::steady_clock::now();
      auto stats = CollectGarbage(std::chrono::system_clock::now());
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
      if (!stats.ok()) {
        spdlog::warn("event=registry_gc_failed error=\"{}\"", stats.error().message);
      } else if (stats->images_expired + stats->uploads_removed + stats->links_removed +
                     stats->blobs_removed >
                 0) {
        spdlog::info(
            "event=registry_gc_done images_expired={} uploads_removed={} links_removed={} "
            "blobs_removed={} bytes_freed={} ms={:.1f}",
            stats->images_expired, stats->uploads_removed, stats->links_removed,
            stats->blobs_removed, stats->bytes_freed, ms);
      }
      lock.lock();
    }
  });
}

void Registry::StopCollector() {
  {
    std::lock_guard lock(collector_mu_);
    collector_stop_ = true;
  }
  collector_cv_.notify_all();
  if (collector_.joinable()) {
    collector_.join();
  }
}

}  // namespace berth::registry
