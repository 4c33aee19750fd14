#include "registry/ecr_api.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "common/paging.h"
#include "common/time_util.h"
#include "registry/digest.h"
#include "registry/lifecycle.h"
#include "registry/names.h"

namespace berth::registry {

namespace {

constexpr int64_t kPartSize = 10 << 20;
constexpr auto kTokenLifetime = std::chrono::hours(12);
constexpr auto kDownloadLifetime = std::chrono::hours(1);

Error InvalidParameter(const std::string& message) {
  return ClientError("InvalidParameterException", message);
}

Status CheckRepositoryName(const Json& in, const char* field = "repositoryName") {
  std::string name = in.value(field, "");
  if (!ValidRepositoryName(name)) {
    return InvalidParameter("Invalid parameter at '" + std::string(field) +
                            "' failed to satisfy constraint: 'must satisfy regular expression '" +
                            std::string(kRepositoryNamePattern) + "''");
  }
  return Ok();
}

Status CheckMaxResults(const Json& in) {
  if (in.contains("maxResults")) {
    int64_t n = in["maxResults"].get<int64_t>();
    if (n < 1 || n > 1000) {
      return InvalidParameter(
          "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have "
          "value less than or equal to 1000 and greater than or equal to 1'");
    }
  }
  return Ok();
}

Result<size_t> PageStart(const Json& in) {
  if (!in.contains("nextToken")) {
    return size_t{0};
  }
  auto pos = DecodePageToken(in["nextToken"].get<std::string>());
  if (!pos || pos->rfind("i:", 0) != 0) {
    return InvalidParameter(
        "Invalid parameter at 'nextToken' failed to satisfy constraint: "
        "'Invalid NextToken'");
  }
  try {
    return static_cast<size_t>(std::stoull(pos->substr(2)));
  } catch (const std::exception&) {
    return InvalidParameter(
        "Invalid parameter at 'nextToken' failed to satisfy constraint: "
        "'Invalid NextToken'");
  }
}

Status CheckTags(const Json& tags) {
  if (tags.size() > 50) {
    return ClientError("TooManyTagsException",
                       "The repository can have at most 50 tags; the request would exceed it.");
  }
  for (const auto& t : tags) {
    std::string key = t.value("Key", "");
    if (key.empty() || key.size() > 128) {
      return ClientError("InvalidTagParameterException",
                         "A tag key must be between 1 and 128 characters long.");
    }
    if (t.value("Value", "").size() > 256) {
      return ClientError("InvalidTagParameterException",
                         "A tag value can be at most 256 characters long.");
    }
    if (key.rfind("aws:", 0) == 0) {
      return ClientError("InvalidTagParameterException",
                         "Tag keys starting with 'aws:' are reserved for AWS use.");
    }
  }
  return Ok();
}

std::string OrNull(const std::string& s) {
  return s.empty() ? "null" : s;
}

Json ImageIdJson(const std::string& digest, const std::string& tag) {
  Json id = Json::object();
  if (!digest.empty()) {
    id["imageDigest"] = digest;
  }
  if (!tag.empty()) {
    id["imageTag"] = tag;
  }
  return id;
}

Json Failure(const Json& image_id, const std::string& code, const std::string& reason) {
  return Json{{"imageId", image_id}, {"failureCode", code}, {"failureReason", reason}};
}

// Finds the image an ImageIdentifier names; returns the digest, or a failure
// entry (failureCode, failureReason) when it names none.
struct Lookup {
  std::string digest;
  std::string tag;
  std::string failure_code;
  std::string failure_reason;
};

Lookup FindImage(const Json& id, const std::map<std::string, const Image*>& by_digest,
                 const std::map<std::string, std::string>& tags) {
  Lookup out;
  std::string digest = id.value("imageDigest", "");
  std::string tag = id.value("imageTag", "");
  out.tag = tag;
  if (digest.empty() && tag.empty()) {
    out.failure_code = "MissingDigestAndTag";
    out.failure_reason = "Invalid request parameters: both tag and digest cannot be null";
    return out;
  }
  if (!digest.empty() && !LooksLikeDigest(digest)) {
    out.failure_code = "InvalidImageDigest";
    out.failure_reason =
        "Invalid request parameters: image digest should satisfy the regex "
        "'[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'";
    return out;
  }
  if (!tag.empty()) {
    auto it = tags.find(tag);
    if (it == tags.end()) {
      out.failure_code = "ImageNotFound";
      out.failure_reason = "Requested image not found";
      return out;
    }
    if (!digest.empty() && it->second != digest) {
      out.failure_code = "ImageTagDoesNotMatchDigest";
      out.failure_reason = "Invalid request parameters: the image tag does not match the digest";
      return out;
    }
    out.digest = it->second;
    return out;
  }
  if (by_digest.count(digest) == 0) {
    out.failure_code = "ImageNotFound";
    out.failure_reason = "Requested image not found";
    return out;
  }
  out.digest = digest;
  return out;
}

struct RepoImages {
  std::vector<Image> images;
  std::map<std::string, const Image*> by_digest;
  std::map<std::string, std::string> tags;  // tag -> digest
};

Result<RepoImages> LoadImages(Registry& registry, const std::string& repo) {
  RepoImages out;
  auto images = registry.ListImages(repo);
  if (!images.ok()) {
    return images.error();
  }
  out.images = std::move(*images);
  for (const auto& image : out.images) {
    out.by_digest[image.manifest.digest] = &image;
    for (const auto& t : image.tags) {
      out.tags[t] = image.manifest.digest;
    }
  }
  return out;
}

Json ImageDetail(const Image& image, const std::string& repo, const std::string& account) {
  const ManifestRecord& m = image.manifest;
  Json detail = {{"registryId", account},        {"repositoryName", repo},
                 {"imageDigest", m.digest},      {"imageSizeInBytes", m.image_size},
                 {"imagePushedAt", m.pushed_at}, {"imageManifestMediaType", m.media_type}};
  if (!image.tags.empty()) {
    detail["imageTags"] = image.tags;
  }
  if (!m.artifact_type.empty()) {
    detail["artifactMediaType"] = m.artifact_type;
  }
  return detail;
}

}  // namespace

std::shared_ptr<api::JsonService> EcrApi::MakeService() {
  auto svc = std::make_shared<api::JsonService>("AmazonEC2ContainerRegistry_V20150921", "ecr");
  using Method = Result<Json> (EcrApi::*)(const Json&, const api::CallContext&);
  const std::pair<const char*, Method> ops[] = {
      {"CreateRepository", &EcrApi::CreateRepository},
      {"DescribeRepositories", &EcrApi::DescribeRepositories},
      {"DeleteRepository", &EcrApi::DeleteRepository},
      {"PutImageTagMutability", &EcrApi::PutImageTagMutability},
      {"ListImages", &EcrApi::ListImages},
      {"DescribeImages", &EcrApi::DescribeImages},
      {"BatchGetImage", &EcrApi::BatchGetImage},
      {"BatchDeleteImage", &EcrApi::BatchDeleteImage},
      {"PutImage", &EcrApi::PutImage},
      {"BatchCheckLayerAvailability", &EcrApi::BatchCheckLayerAvailability},
      {"GetDownloadUrlForLayer", &EcrApi::GetDownloadUrlForLayer},
      {"InitiateLayerUpload", &EcrApi::InitiateLayerUpload},
      {"UploadLayerPart", &EcrApi::UploadLayerPart},
      {"CompleteLayerUpload", &EcrApi::CompleteLayerUpload},
      {"GetAuthorizationToken", &EcrApi::GetAuthorizationToken},
      {"TagResource", &EcrApi::TagResource},
      {"UntagResource", &EcrApi::UntagResource},
      {"ListTagsForResource", &EcrApi::ListTagsForResource},
      {"PutLifecyclePolicy", &EcrApi::PutLifecyclePolicy},
      {"GetLifecyclePolicy", &EcrApi::GetLifecyclePolicy},
      {"DeleteLifecyclePolicy", &EcrApi::DeleteLifecyclePolicy},
  };
  for (const auto& [name, method] : ops) {
    svc->Add(name, [this, method = method](const Json& in, const api::CallContext& ctx) {
      return (this->*method)(in, ctx);
    });
  }
  return svc;
}

Json EcrApi::RepositoryJson(const Repository& repo) const {
  const Json& d = repo.doc;
  return Json{
      {"repositoryArn", registry_.RepositoryArn(repo.name)},
      {"registryId", registry_.account().account_id},
      {"repositoryName", repo.name},
      {"repositoryUri", registry_.RepositoryUri(repo.name)},
      {"createdAt", d.value("createdAt", 0.0)},
      {"imageTagMutability", d.value("imageTagMutability", "MUTABLE")},
      {"imageScanningConfiguration",
       d.value("imageScanningConfiguration", Json{{"scanOnPush", false}})},
      {"encryptionConfiguration",
       d.value("encryptionConfiguration", Json{{"encryptionType", "AES256"}})},
  };
}

Result<std::string> EcrApi::RepositoryFromArn(const std::string& arn) {
  const std::string prefix = "arn:aws:ecr:" + registry_.account().region + ":" +
                             registry_.account().account_id + ":repository/";
  if (arn.rfind(prefix, 0) != 0 || !ValidRepositoryName(arn.substr(prefix.size()))) {
    return InvalidParameter(
        "Invalid parameter at 'resourceArn' failed to satisfy constraint: "
        "'Invalid ARN'");
  }
  std::string name = arn.substr(prefix.size());
  BERTH_TRY(registry_.GetRepository(name, Surface::kEcr));
  return name;
}

Result<Json> EcrApi::CreateRepository(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string name = in["repositoryName"].get<std::string>();
  std::string mutability = in.value("imageTagMutability", "MUTABLE");
  if (mutability != "MUTABLE" && mutability != "IMMUTABLE") {
    return InvalidParameter(
        "Invalid parameter at 'imageTagMutability' failed to satisfy "
        "constraint: 'Member must satisfy enum value set: [MUTABLE, "
        "IMMUTABLE]'");
  }
  Json tags = in.value("tags", Json::array());
  BERTH_TRY(CheckTags(tags));
  Json encryption = in.value("encryptionConfiguration", Json{{"encryptionType", "AES256"}});
  std::string enc_type = encryption.value("encryptionType", "");
  if (enc_type != "AES256" && enc_type != "KMS") {
    return InvalidParameter(
        "Invalid parameter at 'encryptionType' failed to satisfy constraint: "
        "'Member must satisfy enum value set: [AES256, KMS]'");
  }
  if (enc_type == "AES256" && encryption.contains("kmsKey")) {
    return InvalidParameter("Invalid parameter: kmsKey can be given only with encryptionType KMS");
  }
  Json scanning =
      Json{{"scanOnPush",
            in.value("imageScanningConfiguration", Json::object()).value("scanOnPush", false)}};
  Json doc = {{"createdAt", NowEpochSeconds()},
              {"imageTagMutability", mutability},
              {"imageScanningConfiguration", scanning},
              {"encryptionConfiguration", encryption},
              {"tags", tags}};
  auto repo = registry_.CreateRepository(name, doc);
  if (!repo.ok()) {
    return repo.error();
  }
  return Json{{"repository", RepositoryJson(*repo)}};
}

Result<Json> EcrApi::DescribeRepositories(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckMaxResults(in));
  Json out = Json::array();
  if (in.contains("repositoryNames")) {
    if (in.contains("maxResults") || in.contains("nextToken")) {
      return InvalidParameter(
          "Invalid parameter: maxResults and nextToken cannot be used with "
          "repositoryNames");
    }
    for (const auto& n : in["repositoryNames"]) {
      std::string name = n.get<std::string>();
      if (!ValidRepositoryName(name)) {
        return InvalidParameter(
            "Invalid parameter at 'repositoryNames' failed to satisfy "
            "constraint: 'must satisfy regular expression '" +
            std::string(kRepositoryNamePattern) + "''");
      }
      auto repo = registry_.GetRepository(name, Surface::kEcr);
      if (!repo.ok()) {
        return repo.error();
      }
      out.push_back(RepositoryJson(*repo));
    }
    return Json{{"repositories", out}};
  }
  size_t max = in.value("maxResults", 100);
  std::string after;
  if (in.contains("nextToken")) {
    auto pos = DecodePageToken(in["nextToken"].get<std::string>());
    if (!pos) {
      return InvalidParameter(
          "Invalid parameter at 'nextToken' failed to satisfy constraint: "
          "'Invalid NextToken'");
    }
    after = *pos;
  }
  auto repos = registry_.ListRepositories(after, max + 1);
  if (!repos.ok()) {
    return repos.error();
  }
  Json result;
  for (size_t i = 0; i < repos->size() && i < max; ++i) {
    out.push_back(RepositoryJson((*repos)[i]));
  }
  result["repositories"] = out;
  if (repos->size() > max) {
    result["nextToken"] = EncodePageToken((*repos)[max - 1].name);
  }
  return result;
}

Result<Json> EcrApi::DeleteRepository(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  auto repo =
      registry_.DeleteRepository(in["repositoryName"].get<std::string>(), in.value("force", false));
  if (!repo.ok()) {
    return repo.error();
  }
  return Json{{"repository", RepositoryJson(*repo)}};
}

Result<Json> EcrApi::PutImageTagMutability(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string mutability = in["imageTagMutability"].get<std::string>();
  if (mutability != "MUTABLE" && mutability != "IMMUTABLE") {
    return InvalidParameter(
        "Invalid parameter at 'imageTagMutability' failed to satisfy "
        "constraint: 'Member must satisfy enum value set: [MUTABLE, "
        "IMMUTABLE]'");
  }
  std::string name = in["repositoryName"].get<std::string>();
  auto repo = registry_.UpdateRepository(name, [&](Json& doc) {
    doc["imageTagMutability"] = mutability;
    return Ok();
  });
  if (!repo.ok()) {
    return repo.error();
  }
  return Json{{"registryId", registry_.account().account_id},
              {"repositoryName", name},
              {"imageTagMutability", mutability}};
}

Result<Json> EcrApi::ListImages(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  BERTH_TRY(CheckMaxResults(in));
  std::string repo = in["repositoryName"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  std::string status = in.value("filter", Json::object()).value("tagStatus", "ANY");
  auto images = registry_.ListImages(repo);
  if (!images.ok()) {
    return images.error();
  }
  Json ids = Json::array();
  for (const auto& image : *images) {
    if (image.tags.empty()) {
      if (status != "TAGGED") {
        ids.push_back(ImageIdJson(image.manifest.digest, ""));
      }
      continue;
    }
    if (status == "UNTAGGED") {
      continue;
    }
    for (const auto& t : image.tags) {
      ids.push_back(ImageIdJson(image.manifest.digest, t));
    }
  }
  auto start = PageStart(in);
  if (!start.ok()) {
    return start.error();
  }
  size_t max = in.value("maxResults", 100);
  Json page = Json::array();
  for (size_t i = *start; i < ids.size() && page.size() < max; ++i) {
    page.push_back(ids[i]);
  }
  Json out = {{"imageIds", page}};
  if (*start + page.size() < ids.size()) {
    out["nextToken"] = EncodePageToken("i:" + std::to_string(*start + page.size()));
  }
  return out;
}

Result<Json> EcrApi::DescribeImages(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  BERTH_TRY(CheckMaxResults(in));
  std::string repo = in["repositoryName"].get<std::string>();
  const std::string& account = registry_.account().account_id;
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  auto loaded = LoadImages(registry_, repo);
  if (!loaded.ok()) {
    return loaded.error();
  }
  Json details = Json::array();
  if (in.contains("imageIds")) {
    if (in.contains("maxResults") || in.contains("nextToken")) {
      return InvalidParameter(
          "Invalid parameter: maxResults and nextToken cannot be used with "
          "imageIds");
    }
    std::set<std::string> seen;
    for (const auto& id : in["imageIds"]) {
      Lookup found = FindImage(id, loaded->by_digest, loaded->tags);
      if (found.failure_code == "InvalidImageDigest" ||
          found.failure_code == "MissingDigestAndTag") {
        return InvalidParameter(found.failure_reason);
      }
      if (!found.failure_code.empty()) {
        return ClientError("ImageNotFoundException",
                           "The image with imageId {imageDigest:'" +
                               OrNull(id.value("imageDigest", "")) + "', imageTag:'" +
                               OrNull(id.value("imageTag", "")) +
                               "'} does not exist within the repository with name '" + repo +
                               "' in the registry with id '" + account + "'");
      }
      if (seen.insert(found.digest).second) {
        details.push_back(ImageDetail(*loaded->by_digest.at(found.digest), repo, account));
      }
    }
    return Json{{"imageDetails", details}};
  }
  std::string status = in.value("filter", Json::object()).value("tagStatus", "ANY");
  std::vector<const Image*> selected;
  for (const auto& image : loaded->images) {
    if ((status == "TAGGED" && image.tags.empty()) ||
        (status == "UNTAGGED" && !image.tags.empty())) {
      continue;
    }
    selected.push_back(&image);
  }
  auto start = PageStart(in);
  if (!start.ok()) {
    return start.error();
  }
  size_t max = in.value("maxResults", 100);
  size_t i = *start;
  for (; i < selected.size() && details.size() < max; ++i) {
    details.push_back(ImageDetail(*selected[i], repo, account));
  }
  Json out = {{"imageDetails", details}};
  if (i < selected.size()) {
    out["nextToken"] = EncodePageToken("i:" + std::to_string(i));
  }
  return out;
}

Result<Json> EcrApi::BatchGetImage(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  auto loaded = LoadImages(registry_, repo);
  if (!loaded.ok()) {
    return loaded.error();
  }
  std::set<std::string> accepted;
  for (const auto& t : in.value("acceptedMediaTypes", Json::array())) {
    accepted.insert(t.get<std::string>());
  }
  Json images = Json::array();
  Json failures = Json::array();
  for (const auto& id : in["imageIds"]) {
    Lookup found = FindImage(id, loaded->by_digest, loaded->tags);
    if (!found.failure_code.empty()) {
      failures.push_back(Failure(id, found.failure_code, found.failure_reason));
      continue;
    }
    const ManifestRecord& m = loaded->by_digest.at(found.digest)->manifest;
    // LIMITATION: ECR converts between some manifest formats on the way out;
    // berth answers with the manifest as pushed or not at all.
    if (!accepted.empty() && accepted.count(m.media_type) == 0) {
      failures.push_back(Failure(id, "ImageNotFound",
                                 "Requested image's media type " + m.media_type +
                                     " is not among the accepted media types"));
      continue;
    }
    auto body = registry_.ReadManifest(m.digest);
    if (!body.ok()) {
      return body.error();
    }
    images.push_back({{"registryId", registry_.account().account_id},
                      {"repositoryName", repo},
                      {"imageId", ImageIdJson(m.digest, found.tag)},
                      {"imageManifest", *body},
                      {"imageManifestMediaType", m.media_type}});
  }
  return Json{{"images", images}, {"failures", failures}};
}

Result<Json> EcrApi::BatchDeleteImage(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  Json deleted = Json::array();
  Json failures = Json::array();
  for (const auto& id : in["imageIds"]) {
    // Each item sees the effect of the ones before it.
    auto loaded = LoadImages(registry_, repo);
    if (!loaded.ok()) {
      return loaded.error();
    }
    Lookup found = FindImage(id, loaded->by_digest, loaded->tags);
    if (!found.failure_code.empty()) {
      failures.push_back(Failure(id, found.failure_code, found.failure_reason));
      continue;
    }
    if (!found.tag.empty()) {
      auto removed = registry_.DeleteTag(repo, found.tag, true);
      if (!removed.ok()) {
        if (removed.error().code == "MANIFEST_UNKNOWN") {
          failures.push_back(Failure(id, "ImageNotFound", "Requested image not found"));
          continue;
        }
        return removed.error();
      }
      deleted.push_back(ImageIdJson(found.digest, found.tag));
      continue;
    }
    auto listed_by = registry_.IndexesListing(repo, found.digest);
    if (!listed_by.ok()) {
      return listed_by.error();
    }
    if (!listed_by->empty()) {
      std::string list;
      for (const auto& d : *listed_by) {
        list += (list.empty() ? "" : ", ") + d;
      }
      failures.push_back(Failure(id, "ImageReferencedByManifestList",
                                 "Requested image referenced by manifest list: [" + list + "]"));
      continue;
    }
    const Image& image = *loaded->by_digest.at(found.digest);
    Status st = registry_.DeleteManifest(repo, found.digest);
    if (!st.ok()) {
      if (st.error().code == "MANIFEST_UNKNOWN") {
        failures.push_back(Failure(id, "ImageNotFound", "Requested image not found"));
        continue;
      }
      return st.error();
    }
    if (image.tags.empty()) {
      deleted.push_back(ImageIdJson(found.digest, ""));
    }
    for (const auto& t : image.tags) {
      deleted.push_back(ImageIdJson(found.digest, t));
    }
  }
  return Json{{"imageIds", deleted}, {"failures", failures}};
}

Result<Json> EcrApi::PutImage(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  PutManifestRequest put;
  put.repository = in["repositoryName"].get<std::string>();
  put.body = in["imageManifest"].get<std::string>();
  put.media_type = in.value("imageManifestMediaType", "");
  put.tag = in.value("imageTag", "");
  put.expected_digest = in.value("imageDigest", "");
  put.surface = Surface::kEcr;
  if (put.body.empty()) {
    return InvalidParameter(
        "Invalid parameter at 'imageManifest' failed to satisfy constraint: "
        "'Member must have length greater than or equal to 1'");
  }
  auto done = registry_.PutManifest(put);
  if (!done.ok()) {
    return done.error();
  }
  return Json{{"image",
               {{"registryId", registry_.account().account_id},
                {"repositoryName", put.repository},
                {"imageId", ImageIdJson(done->digest, put.tag)},
                {"imageManifest", put.body},
                {"imageManifestMediaType", done->media_type}}}};
}

Result<Json> EcrApi::BatchCheckLayerAvailability(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  auto images = registry_.ListImages(repo);
  if (!images.ok()) {
    return images.error();
  }
  Json layers = Json::array();
  Json failures = Json::array();
  for (const auto& d : in["layerDigests"]) {
    std::string digest = d.get<std::string>();
    if (!ValidateDigest(digest).ok()) {
      failures.push_back({{"layerDigest", digest},
                          {"failureCode", "InvalidLayerDigest"},
                          {"failureReason", "Invalid layer digest"}});
      continue;
    }
    auto size = registry_.BlobSize(repo, digest);
    if (!size.ok()) {
      return size.error();
    }
    if (!*size) {
      failures.push_back({{"layerDigest", digest},
                          {"failureCode", "MissingLayerDigest"},
                          {"failureReason", "Could not find layer"}});
      continue;
    }
    Json layer = {
        {"layerDigest", digest}, {"layerAvailability", "AVAILABLE"}, {"layerSize", **size}};
    for (const auto& image : *images) {
      auto t = image.manifest.blob_types.find(digest);
      if (t != image.manifest.blob_types.end() && !t->get<std::string>().empty()) {
        layer["mediaType"] = *t;
        break;
      }
    }
    layers.push_back(std::move(layer));
  }
  return Json{{"layers", layers}, {"failures", failures}};
}

Result<Json> EcrApi::GetDownloadUrlForLayer(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  std::string digest = in["layerDigest"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  if (!ValidateDigest(digest).ok()) {
    return InvalidParameter(
        "Invalid parameter at 'layerDigest' failed to satisfy constraint: "
        "'must satisfy regular expression '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+''");
  }
  auto size = registry_.BlobSize(repo, digest);
  if (!size.ok()) {
    return size.error();
  }
  if (!*size) {
    return ClientError("LayersNotFoundException",
                       "The layer with digest '" + digest +
                           "' does not exist within the repository with name '" + repo +
                           "' in the registry with id '" + registry_.account().account_id + "'");
  }
  // LIMITATION: AWS answers with a presigned S3 URL; berth's URL points at its
  // own registry, signed for this one blob for an hour.
  int64_t expires = std::chrono::duration_cast<std::chrono::seconds>(
                        (std::chrono::system_clock::now() + kDownloadLifetime).time_since_epoch())
                        .count();
  std::string url = "http://" + registry_.registry_host() + "/v2/" + repo + "/blobs/" + digest +
                    "?X-Berth-Expires=" + std::to_string(expires) +
                    "&X-Berth-Signature=" + registry_.tokens().SignDownload(repo, digest, expires);
  return Json{{"downloadUrl", url}, {"layerDigest", digest}};
}

Result<Json> EcrApi::InitiateLayerUpload(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  auto id = registry_.StartUpload(repo);
  if (!id.ok()) {
    return id.error();
  }
  return Json{{"uploadId", *id}, {"partSize", kPartSize}};
}

namespace {

Error UploadNotFound(const std::string& id, const std::string& repo, const std::string& account) {
  return ClientError("UploadNotFoundException", "The upload with id '" + id +
                                                    "' does not exist within the repository "
                                                    "with name '" +
                                                    repo + "' in the registry with id '" + account +
                                                    "'");
}

}  // namespace

Result<Json> EcrApi::UploadLayerPart(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  std::string id = in["uploadId"].get<std::string>();
  const std::string& account = registry_.account().account_id;
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  auto data = Base64Decode(in["layerPartBlob"].get<std::string>());
  if (!data) {
    return InvalidParameter("Invalid parameter at 'layerPartBlob': not valid base64");
  }
  int64_t first = in["partFirstByte"].get<int64_t>();
  int64_t last = in["partLastByte"].get<int64_t>();
  auto writer = registry_.OpenUpload(repo, id);
  if (!writer.ok()) {
    if (writer.error().code == "BLOB_UPLOAD_UNKNOWN") {
      return UploadNotFound(id, repo, account);
    }
    return ClientError("InvalidLayerPartException", writer.error().message);
  }
  int64_t size = static_cast<int64_t>((*writer)->size());
  if (first != size) {
    return ClientError("InvalidLayerPartException",
                       "The part starts at byte " + std::to_string(first) +
                           " but the upload holds " + std::to_string(size) +
                           " bytes; the last byte received is " + std::to_string(size - 1));
  }
  if (last - first + 1 != static_cast<int64_t>(data->size())) {
    return ClientError("InvalidLayerPartException",
                       "The part's byte range " + std::to_string(first) + "-" +
                           std::to_string(last) + " does not match its " +
                           std::to_string(data->size()) + " bytes");
  }
  BERTH_TRY((*writer)->Write(data->data(), data->size()));
  return Json{{"registryId", account},
              {"repositoryName", repo},
              {"uploadId", id},
              {"lastByteReceived", last}};
}

Result<Json> EcrApi::CompleteLayerUpload(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  std::string id = in["uploadId"].get<std::string>();
  const std::string& account = registry_.account().account_id;
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  const Json& digests = in["layerDigests"];
  if (digests.empty()) {
    return InvalidParameter(
        "Invalid parameter at 'layerDigests' failed to satisfy constraint: "
        "'Member must have length greater than or equal to 1'");
  }
  std::string digest = digests[0].get<std::string>();
  if (!ValidateDigest(digest).ok()) {
    return ClientError("InvalidLayerException",
                       "The layer digest '" + digest + "' is not a valid sha256 digest");
  }
  auto writer = registry_.OpenUpload(repo, id);
  if (!writer.ok()) {
    if (writer.error().code == "BLOB_UPLOAD_UNKNOWN") {
      return UploadNotFound(id, repo, account);
    }
    return ClientError("InvalidLayerException", writer.error().message);
  }
  if ((*writer)->size() == 0) {
    return ClientError("EmptyUploadException",
                       "The upload with id '" + id + "' holds no layer parts");
  }
  auto held = registry_.BlobSize(repo, digest);
  if (!held.ok()) {
    return held.error();
  }
  if (*held) {
    writer->reset();
    (void)registry_.CancelUpload(repo, id);
    return ClientError("LayerAlreadyExistsException",
                       "The layer with digest '" + digest +
                           "' already exists in the repository with name '" + repo +
                           "' in the registry with id '" + account + "'");
  }
  auto done = registry_.CompleteUpload(repo, id, **writer, digest);
  if (!done.ok()) {
    if (done.error().code == "DIGEST_INVALID") {
      return ClientError("InvalidLayerException",
                         "The calculated digest of the uploaded layer does not match the "
                         "layer digest '" +
                             digest + "'");
    }
    return done.error();
  }
  return Json{{"registryId", account},
              {"repositoryName", repo},
              {"uploadId", id},
              {"layerDigest", done->digest}};
}

Result<Json> EcrApi::GetAuthorizationToken(const Json& in, const api::CallContext& ctx) {
  auto expires = std::chrono::system_clock::now() + kTokenLifetime;
  // Whole seconds: the token carries the expiry in seconds.
  expires = std::chrono::time_point_cast<std::chrono::seconds>(expires);
  std::string token = registry_.tokens().Issue(expires, ctx.access_key_id);
  double expires_at = std::chrono::duration<double>(expires.time_since_epoch()).count();
  Json entry = {{"authorizationToken", Base64Encode("AWS:" + token)},
                {"expiresAt", expires_at},
                {"proxyEndpoint", "http://" + registry_.registry_host()}};
  Json data = Json::array();
  size_t count = std::max<size_t>(1, in.value("registryIds", Json::array()).size());
  for (size_t i = 0; i < count; ++i) {
    data.push_back(entry);
  }
  return Json{{"authorizationData", data}};
}

Result<Json> EcrApi::TagResource(const Json& in, const api::CallContext& ctx) {
  auto name = RepositoryFromArn(in["resourceArn"].get<std::string>());
  if (!name.ok()) {
    return name.error();
  }
  const Json& add = in["tags"];
  auto repo = registry_.UpdateRepository(*name, [&](Json& doc) -> Status {
    Json tags = doc.value("tags", Json::array());
    for (const auto& t : add) {
      std::string key = t.value("Key", "");
      auto it = std::find_if(tags.begin(), tags.end(),
                             [&](const Json& e) { return e.value("Key", "") == key; });
      Json entry = {{"Key", key}, {"Value", t.value("Value", "")}};
      if (it != tags.end()) {
        *it = entry;
      } else {
        tags.push_back(entry);
      }
    }
    BERTH_TRY(CheckTags(tags));
    doc["tags"] = tags;
    return Ok();
  });
  if (!repo.ok()) {
    return repo.error();
  }
  return Json::object();
}

Result<Json> EcrApi::UntagResource(const Json& in, const api::CallContext& ctx) {
  auto name = RepositoryFromArn(in["resourceArn"].get<std::string>());
  if (!name.ok()) {
    return name.error();
  }
  std::set<std::string> keys;
  for (const auto& k : in["tagKeys"]) {
    keys.insert(k.get<std::string>());
  }
  auto repo = registry_.UpdateRepository(*name, [&](Json& doc) -> Status {
    Json kept = Json::array();
    for (const auto& t : doc.value("tags", Json::array())) {
      if (keys.count(t.value("Key", "")) == 0) {
        kept.push_back(t);
      }
    }
    doc["tags"] = kept;
    return Ok();
  });
  if (!repo.ok()) {
    return repo.error();
  }
  return Json::object();
}

Result<Json> EcrApi::ListTagsForResource(const Json& in, const api::CallContext& ctx) {
  auto name = RepositoryFromArn(in["resourceArn"].get<std::string>());
  if (!name.ok()) {
    return name.error();
  }
  auto repo = registry_.GetRepository(*name, Surface::kEcr);
  if (!repo.ok()) {
    return repo.error();
  }
  return Json{{"tags", repo->doc.value("tags", Json::array())}};
}

Result<Json> EcrApi::PutLifecyclePolicy(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  std::string text = in["lifecyclePolicyText"].get<std::string>();
  BERTH_TRY(registry_.GetRepository(repo, Surface::kEcr));
  auto policy = ParseLifecyclePolicy(text);
  if (!policy.ok()) {
    return policy.error();
  }
  BERTH_TRY(registry_.PutLifecyclePolicy(repo, text));
  return Json{{"registryId", registry_.account().account_id},
              {"repositoryName", repo},
              {"lifecyclePolicyText", text}};
}

namespace {

Error PolicyNotFound(const std::string& repo, const std::string& account) {
  return ClientError("LifecyclePolicyNotFoundException",
                     "Lifecycle policy does not exist for the repository with name '" + repo +
                         "' in the registry with id '" + account + "'");
}

}  // namespace

Result<Json> EcrApi::GetLifecyclePolicy(const Json& in, const api::CallContext& ctx) {
  BERTH_TRY(CheckRepositoryName(in));
  std::string repo = in["repositoryName"].get<std::string>();
  auto policy = registry_.GetLifecyclePolicy(repo);
  if (!policy.ok()) {
    return policy.error();
  }
  if (!*policy) {
    return PolicyNotFound(repo, registry_.account().account_id);
  }
  Json out = {{"registryId", registry_.account().account_id},
              {"repositoryName", repo},
              {"lifecyclePolicyText", (*policy)->first}};
  if ((*policy)->second > 0) {
    out["lastEvaluatedAt"] = (*policy)->second;
  }
  return out;
}

Result<Json> EcrApi::DeleteLifecyclePolicy(const Json& in, const api::CallContext& ctx) {
  auto out = GetLifecyclePolicy(in, ctx);
  if (!out.ok()) {
    return out.error();
  }
  BERTH_TRY(registry_.DeleteLifecyclePolicy(in["repositoryName"].get<std::string>()));
  return out;
}

}  // namespace berth::registry
