// SPDX-License-Identifier: Apache-2.0
#include "cli/image_source.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/aws_client.h"
#include "registry/digest.h"

namespace berth::cli {

namespace fs = std::filesystem;

namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return LocalError("cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<Json> ParseJson(const std::string& text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    return LocalError(what + " is not valid JSON");
  }
}

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) {
    return "";
  }
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool IsIndexType(const std::string& media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

std::string RefName(const Json& descriptor) {
  if (!descriptor.contains("annotations") || !descriptor["annotations"].is_object()) {
    return "";
  }
  return Str(descriptor["annotations"], kRefNameAnnotation);
}

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    out += (out.empty() ? "" : ", ") + s;
  }
  return out;
}

// Adds a blob once, keeping the first label it was seen with.
void AddBlob(PushPlan& plan, BlobToPush blob) {
  for (const auto& b : plan.blobs) {
    if (b.digest == blob.digest) {
      return;
    }
  }
  plan.blobs.push_back(std::move(blob));
}

// ---- OCI layout ----

class Layout {
 public:
  explicit Layout(std::string dir) : dir_(std::move(dir)) {}

  Result<std::string> BlobPath(const Json& descriptor) const {
    std::string digest = Str(descriptor, "digest");
    if (!registry::ValidateDigest(digest).ok()) {
      return LocalError(dir_ + ": unsupported or invalid digest '" + digest + "'");
    }
    std::string path = dir_ + "/blobs/sha256/" + std::string(registry::DigestHex(digest));
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec) {
      return LocalError(dir_ + ": blob " + digest + " is missing from the layout");
    }
    if (descriptor.contains("size") && descriptor["size"].is_number_unsigned() &&
        descriptor["size"].get<uint64_t>() != size) {
      return LocalError(dir_ + ": blob " + digest + " has " + std::to_string(size) +
                        " bytes, its descriptor says " +
                        std::to_string(descriptor["size"].get<uint64_t>()));
    }
    return path;
  }

  // Reads a manifest or index blob and checks its digest.
  Result<std::string> ReadDocument(const Json& descriptor) const {
    auto path = BlobPath(descriptor);
    if (!path.ok()) {
      return path.error();
    }
    auto body = ReadWholeFile(*path);
    if (!body.ok()) {
      return body.error();
    }
    if (registry::Sha256Digest(*body) != Str(descriptor, "digest")) {
      return LocalError(dir_ + ": blob " + Str(descriptor, "digest") +
                        " does not match its digest");
    }
    return body;
  }

  // Adds an image manifest's config and layers to the plan.
  Status AddImage(PushPlan& plan, const Json& manifest) const {
    if (!manifest.contains("config") || !manifest.contains("layers") ||
        !manifest["layers"].is_array()) {
      return LocalError(dir_ + ": a manifest lacks its config or layers");
    }
    auto config = BlobPath(manifest["config"]);
    if (!config.ok()) {
      return config.error();
    }
    AddBlob(plan, BlobToPush{Str(manifest["config"], "digest"), fs::file_size(*config),
                             Str(manifest["config"], "mediaType"), *config, "config"});
    const auto& layers = manifest["layers"];
    for (size_t i = 0; i < layers.size(); ++i) {
      auto path = BlobPath(layers[i]);
      if (!path.ok()) {
        return path.error();
      }
      AddBlob(plan,
              BlobToPush{Str(layers[i], "digest"), fs::file_size(*path),
                         Str(layers[i], "mediaType"), *path,
                         "layer " + std::to_string(i + 1) + "/" + std::to_string(layers.size())});
    }
    return Ok();
  }

 private:
  std::string dir_;
};

// ---- docker-archive ----

using ArchivePtr = std::unique_ptr<archive, decltype(&archive_read_free)>;

Result<ArchivePtr> OpenArchive(const std::string& file) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_all(a.get());
  if (archive_read_open_filename(a.get(), file.c_str(), 1 << 16) != ARCHIVE_OK) {
    return LocalError("cannot read " + file + ": " + archive_error_string(a.get()));
  }
  return a;
}

std::string NormalizeName(std::string name) {
  while (name.rfind("./", 0) == 0) {
    name = name.substr(2);
  }
  return name;
}

// Resolves a member name through the archive's symbolic links (docker save
// links a layer that several images share).
std::string ResolveMember(const std::string& name,
                          const std::map<std::string, std::string>& links) {
  std::string current = name;
  for (int hops = 0; hops < 16; ++hops) {
    auto it = links.find(current);
    if (it == links.end()) {
      return current;
    }
    fs::path target(it->second);
    fs::path resolved =
        target.is_absolute() ? target.relative_path() : fs::path(current).parent_path() / target;
    current = NormalizeName(resolved.lexically_normal().string());
  }
  return current;
}

Result<std::string> ReadEntry(archive* a, const std::string& file, const std::string& name,
                              size_t limit) {
  std::string out;
  char buf[65536];
  while (true) {
    la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
    if (n < 0) {
      return LocalError(file + ": cannot read " + name + ": " + archive_error_string(a));
    }
    if (n == 0) {
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) {
      return LocalError(file + ": " + name + " is too large");
    }
  }
}

// Writes a layer into `dest`, gzip-compressed unless it already is, and
// returns its media type, digest and size.
class LayerWriter {
 public:
  explicit LayerWriter(std::string dest) : dest_(std::move(dest)) {}

  ~LayerWriter() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    if (deflating_) {
      deflateEnd(&zs_);
    }
  }

  Status Open() {
    fd_ = ::open(dest_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      return LocalError("cannot write " + dest_ + ": " + std::strerror(errno));
    }
    return Ok();
  }

  Status Write(const char* data, size_t size) {
    if (!decided_) {
      head_.append(data, size);
      if (head_.size() < 4) {
        return Ok();
      }
      BERTH_TRY(Decide());
      std::string head = std::move(head_);
      return Feed(head.data(), head.size(), Z_NO_FLUSH);
    }
    return Feed(data, size, Z_NO_FLUSH);
  }

  Status Finish() {
    if (!decided_) {
      BERTH_TRY(Decide());
      std::string head = std::move(head_);
      BERTH_TRY(Feed(head.data(), head.size(), Z_NO_FLUSH));
    }
    if (deflating_) {
      BERTH_TRY(Feed(nullptr, 0, Z_FINISH));
    }
    if (::close(fd_) != 0) {
      fd_ = -1;
      return LocalError("cannot write " + dest_ + ": " + std::strerror(errno));
    }
    fd_ = -1;
    return Ok();
  }

  const std::string& media_type() const { return media_type_; }

  std::string digest() const { return hash_.Digest(); }

  uint64_t size() const { return size_; }

 private:
  Status Decide() {
    decided_ = true;
    auto byte = [&](size_t i) {
      return i < head_.size() ? static_cast<uint8_t>(head_[i]) : 0;
    };
    if (byte(0) == 0x1f && byte(1) == 0x8b) {
      media_type_ = kOciLayerGzip;
    } else if (byte(0) == 0x28 && byte(1) == 0xb5 && byte(2) == 0x2f && byte(3) == 0xfd) {
      media_type_ = kOciLayerZstd;
    } else {
      media_type_ = kOciLayerGzip;
      std::memset(&zs_, 0, sizeof(zs_));
      // windowBits 15 + 16: a gzip wrapper with a zero mtime, so the output
      // depends on the input alone.
      if (deflateInit2(&zs_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
          Z_OK) {
        return LocalError("cannot start gzip compression");
      }
      deflating_ = true;
    }
    return Ok();
  }

  Status Emit(const char* data, size_t size) {
    hash_.Update(data, size);
    size_ += size;
    while (size > 0) {
      ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return LocalError("cannot write " + dest_ + ": " + std::strerror(errno));
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return Ok();
  }

  Status Feed(const char* data, size_t size, int flush) {
    if (!deflating_) {
      return Emit(data, size);
    }
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    zs_.avail_in = static_cast<uInt>(size);
    char out[65536];
    do {
      zs_.next_out = reinterpret_cast<Bytef*>(out);
      zs_.avail_out = sizeof(out);
      int rc = deflate(&zs_, flush);
      if (rc == Z_STREAM_ERROR) {
        return LocalError("gzip compression failed");
      }
      BERTH_TRY(Emit(out, sizeof(out) - zs_.avail_out));
    } while (zs_.avail_out == 0);
    return Ok();
  }

  std::string dest_;
  int fd_ = -1;
  bool decided_ = false;
  bool deflating_ = false;
  std::string head_;
  z_stream zs_{};
  std::string media_type_;
  registry::Sha256 hash_;
  uint64_t size_ = 0;
};

struct ArchiveImage {
  std::string config;
  std::vector<std::string> layers;
  std::vector<std::string> repo_tags;
};

Result<ArchiveImage> PickArchiveImage(const Json& manifest, const std::string& file,
                                      const std::string& ref, const std::string& target_tag) {
  if (!manifest.is_array() || manifest.empty()) {
    return LocalError(file + ": manifest.json lists no images");
  }
  std::vector<ArchiveImage> images;
  for (const auto& m : manifest) {
    ArchiveImage img;
    img.config = NormalizeName(Str(m, "Config"));
    if (m.contains("Layers") && m["Layers"].is_array()) {
      for (const auto& l : m["Layers"]) {
        if (l.is_string()) {
          img.layers.push_back(NormalizeName(l.get<std::string>()));
        }
      }
    }
    if (m.contains("RepoTags") && m["RepoTags"].is_array()) {
      for (const auto& t : m["RepoTags"]) {
        if (t.is_string()) {
          img.repo_tags.push_back(t.get<std::string>());
        }
      }
    }
    if (img.config.empty()) {
      return LocalError(file + ": an image in manifest.json has no Config");
    }
    images.push_back(std::move(img));
  }
  auto matches = [](const ArchiveImage& img, const std::string& want) {
    for (const auto& t : img.repo_tags) {
      if (t == want || (t.size() > want.size() && t.ends_with("/" + want)) ||
          t.substr(t.rfind(':') + 1) == want) {
        return true;
      }
    }
    return false;
  };
  if (!ref.empty()) {
    for (const auto& img : images) {
      if (matches(img, ref)) {
        return img;
      }
    }
    return LocalError(file + ": no image tagged '" + ref + "'");
  }
  if (images.size() == 1) {
    return images[0];
  }
  std::vector<std::string> all;
  for (const auto& img : images) {
    if (matches(img, target_tag)) {
      return img;
    }
    all.insert(all.end(), img.repo_tags.begin(), img.repo_tags.end());
  }
  return LocalError(file + " holds " + std::to_string(images.size()) + " images; pick one as " +
                    file + ":<tag> (tags: " + Joined(all) + ")");
}

}  // namespace

Result<std::shared_ptr<TempDir>> TempDir::Create(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return LocalError("cannot create a temporary directory in " +
                      std::string(base && *base ? base : "/tmp") + ": " + std::strerror(errno));
  }
  return std::shared_ptr<TempDir>(new TempDir(buf.data()));
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Result<std::pair<std::string, uint64_t>> DigestFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return LocalError("cannot read " + path + ": " + std::strerror(errno));
  }
  registry::Sha256 hash;
  uint64_t size = 0;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return LocalError("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) {
      break;
    }
    hash.Update(buf, static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return std::make_pair(hash.Digest(), size);
}

Result<PushPlan> LoadOciLayout(const std::string& dir, const std::string& ref,
                               const std::string& target_tag) {
  auto index_text = ReadWholeFile(dir + "/index.json");
  if (!index_text.ok()) {
    return index_text.error();
  }
  auto index = ParseJson(*index_text, dir + "/index.json");
  if (!index.ok()) {
    return index.error();
  }
  if (!index->contains("manifests") || !(*index)["manifests"].is_array() ||
      (*index)["manifests"].empty()) {
    return LocalError(dir + ": index.json lists no images");
  }
  const Json& manifests = (*index)["manifests"];

  // Which image: the named ref, the only one, or the one named like the target tag.
  const Json* chosen = nullptr;
  std::vector<std::string> refs;
  for (const auto& d : manifests) {
    std::string name = RefName(d);
    if (!name.empty()) {
      refs.push_back(name);
    }
    if (!ref.empty() && name == ref) {
      chosen = &d;
    }
  }
  if (!ref.empty() && chosen == nullptr) {
    return LocalError(dir + ": no image with ref '" + ref + "'" +
                      (refs.empty() ? "" : " (refs: " + Joined(refs) + ")"));
  }
  if (chosen == nullptr && manifests.size() == 1) {
    chosen = &manifests[0];
  }
  if (chosen == nullptr) {
    for (const auto& d : manifests) {
      if (RefName(d) == target_tag) {
        chosen = &d;
      }
    }
  }
  if (chosen == nullptr) {
    return LocalError(dir + " holds " + std::to_string(manifests.size()) + " images; pick one as " +
                      dir + ":<ref>" + (refs.empty() ? "" : " (refs: " + Joined(refs) + ")"));
  }

  PushPlan plan;
  std::string chosen_ref = RefName(*chosen);
  plan.description = "OCI layout " + dir + (chosen_ref.empty() ? "" : " (ref " + chosen_ref + ")");
  Layout layout(dir);
  auto body = layout.ReadDocument(*chosen);
  if (!body.ok()) {
    return body.error();
  }
  auto doc = ParseJson(*body, dir + ": manifest " + Str(*chosen, "digest"));
  if (!doc.ok()) {
    return doc.error();
  }
  std::string media_type = Str(*chosen, "mediaType");
  if (media_type.empty()) {
    media_type = Str(*doc, "mediaType");
  }
  if (media_type.empty()) {
    media_type = doc->contains("manifests") ? kOciIndex : kOciManifest;
  }

  if (IsIndexType(media_type)) {
    // Every platform's manifest goes up by digest before the index.
    if (!doc->contains("manifests") || !(*doc)["manifests"].is_array()) {
      return LocalError(dir + ": index " + Str(*chosen, "digest") + " lists no manifests");
    }
    for (const auto& child : (*doc)["manifests"]) {
      std::string child_type = Str(child, "mediaType");
      if (IsIndexType(child_type)) {
        return LocalError(dir + ": nested indexes are not supported");
      }
      auto child_body = layout.ReadDocument(child);
      if (!child_body.ok()) {
        return child_body.error();
      }
      auto child_doc = ParseJson(*child_body, dir + ": manifest " + Str(child, "digest"));
      if (!child_doc.ok()) {
        return child_doc.error();
      }
      BERTH_TRY(layout.AddImage(plan, *child_doc));
      plan.manifests.push_back(ManifestToPush{Str(child, "digest"),
                                              child_type.empty() ? kOciManifest : child_type,
                                              *child_body, false});
    }
  } else {
    BERTH_TRY(layout.AddImage(plan, *doc));
  }
  plan.manifests.push_back(
      ManifestToPush{Str(*chosen, "digest"), media_type, std::move(*body), true});
  return plan;
}

namespace {

// What the first pass over a docker-archive finds.
struct ArchiveIndex {
  std::string manifest_text;
  std::map<std::string, std::string> links;  // member -> link target
};

Result<ArchiveIndex> ScanArchive(const std::string& file) {
  auto a = OpenArchive(file);
  if (!a.ok()) {
    return a.error();
  }
  ArchiveIndex index;
  archive_entry* entry = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a->get(), &entry)) == ARCHIVE_OK) {
    std::string name = NormalizeName(archive_entry_pathname(entry));
    if (archive_entry_filetype(entry) == AE_IFLNK && archive_entry_symlink(entry)) {
      index.links[name] = archive_entry_symlink(entry);
    } else if (archive_entry_hardlink(entry)) {
      index.links[name] = "/" + NormalizeName(archive_entry_hardlink(entry));
    } else if (name == "manifest.json") {
      auto text = ReadEntry(a->get(), file, name, 16 << 20);
      if (!text.ok()) {
        return text.error();
      }
      index.manifest_text = std::move(*text);
    }
  }
  if (rc != ARCHIVE_EOF) {
    return LocalError(file + ": " + archive_error_string(a->get()));
  }
  if (index.manifest_text.empty()) {
    return LocalError(file + " is not a docker-archive (no manifest.json)");
  }
  return index;
}

// Streams the current member into `dest` through a LayerWriter.
Result<BlobToPush> CompressMember(archive* a, const std::string& file, const std::string& name,
                                  const std::string& dest) {
  LayerWriter writer(dest);
  BERTH_TRY(writer.Open());
  char buf[1 << 16];
  while (true) {
    la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
    if (n < 0) {
      return LocalError(file + ": cannot read " + name + ": " + archive_error_string(a));
    }
    if (n == 0) {
      break;
    }
    BERTH_TRY(writer.Write(buf, static_cast<size_t>(n)));
  }
  BERTH_TRY(writer.Finish());
  return BlobToPush{writer.digest(), writer.size(), writer.media_type(), dest, ""};
}

// The chosen image's config and layers, read in a second pass; layers are
// written (compressed) into `temp_dir`, bottom layer first.
struct ArchiveBlobs {
  std::string config;
  std::vector<BlobToPush> layers;
};

Result<ArchiveBlobs> ExtractImage(const std::string& file, const ArchiveIndex& index,
                                  const ArchiveImage& image, const std::string& temp_dir) {
  const std::string config_member = ResolveMember(image.config, index.links);
  std::map<std::string, std::vector<size_t>> layer_slots;  // member -> positions
  for (size_t i = 0; i < image.layers.size(); ++i) {
    layer_slots[ResolveMember(image.layers[i], index.links)].push_back(i);
  }
  auto a = OpenArchive(file);
  if (!a.ok()) {
    return a.error();
  }
  ArchiveBlobs out;
  std::vector<std::optional<BlobToPush>> layers(image.layers.size());
  archive_entry* entry = nullptr;
  int rc;
  int written = 0;
  while ((rc = archive_read_next_header(a->get(), &entry)) == ARCHIVE_OK) {
    std::string name = NormalizeName(archive_entry_pathname(entry));
    if (index.links.count(name) != 0) {
      continue;
    }
    if (name == config_member) {
      auto text = ReadEntry(a->get(), file, name, 64 << 20);
      if (!text.ok()) {
        return text.error();
      }
      out.config = std::move(*text);
      continue;
    }
    auto slot = layer_slots.find(name);
    if (slot == layer_slots.end()) {
      continue;
    }
    auto blob =
        CompressMember(a->get(), file, name, temp_dir + "/layer-" + std::to_string(written++));
    if (!blob.ok()) {
      return blob.error();
    }
    for (size_t pos : slot->second) {
      layers[pos] = *blob;
      layers[pos]->label = "layer " + std::to_string(pos + 1) + "/" + std::to_string(layers.size());
    }
  }
  if (rc != ARCHIVE_EOF) {
    return LocalError(file + ": " + archive_error_string(a->get()));
  }
  if (out.config.empty()) {
    return LocalError(file + ": the image config " + image.config + " is missing");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!layers[i]) {
      return LocalError(file + ": layer " + image.layers[i] + " is missing");
    }
    out.layers.push_back(std::move(*layers[i]));
  }
  return out;
}

}  // namespace

Result<PushPlan> LoadDockerArchive(const std::string& file, const std::string& ref,
                                   const std::string& target_tag) {
  auto index = ScanArchive(file);
  if (!index.ok()) {
    return index.error();
  }
  auto manifest = ParseJson(index->manifest_text, file + ": manifest.json");
  if (!manifest.ok()) {
    return manifest.error();
  }
  auto image = PickArchiveImage(*manifest, file, ref, target_tag);
  if (!image.ok()) {
    return image.error();
  }
  auto temp = TempDir::Create("berth-push-");
  if (!temp.ok()) {
    return temp.error();
  }
  PushPlan plan;
  plan.temp = *temp;
  plan.description =
      "docker-archive " + file + (image->repo_tags.empty() ? "" : " (" + image->repo_tags[0] + ")");
  auto blobs = ExtractImage(file, *index, *image, plan.temp->path());
  if (!blobs.ok()) {
    return blobs.error();
  }
  const std::string& config = blobs->config;
  auto config_doc = ParseJson(config, file + ": " + image->config);
  if (!config_doc.ok()) {
    return config_doc.error();
  }
  std::string config_path = plan.temp->path() + "/config.json";
  {
    std::ofstream out(config_path, std::ios::binary);
    out << config;
    if (!out) {
      return LocalError("cannot write " + config_path);
    }
  }

  // The config as is, the layers as converted, and an OCI manifest naming them.
  std::string config_digest = registry::Sha256Digest(config);
  AddBlob(plan, BlobToPush{config_digest, config.size(), kOciConfig, config_path, "config"});
  Json layer_descriptors = Json::array();
  for (const auto& layer : blobs->layers) {
    layer_descriptors.push_back(
        {{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}});
    AddBlob(plan, layer);
  }
  Json oci = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifest},
      {"config", {{"mediaType", kOciConfig}, {"digest", config_digest}, {"size", config.size()}}},
      {"layers", layer_descriptors}};
  std::string body = oci.dump();
  plan.manifests.push_back(
      ManifestToPush{registry::Sha256Digest(body), kOciManifest, std::move(body), true});
  return plan;
}

Result<PushPlan> LoadImage(const std::string& source, const std::string& target_tag) {
  std::string path = source;
  std::string ref;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    // "<path>:<ref>", split where the path part exists.
    size_t colon = source.find(':');
    while (colon != std::string::npos) {
      if (fs::exists(source.substr(0, colon), ec)) {
        path = source.substr(0, colon);
        ref = source.substr(colon + 1);
        break;
      }
      colon = source.find(':', colon + 1);
    }
    if (ref.empty()) {
      return LocalError(source + ": no such file or directory");
    }
  }
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(path + "/index.json", ec)) {
      return LocalError(path + " is not an OCI image layout (no index.json)");
    }
    return LoadOciLayout(path, ref, target_tag);
  }
  return LoadDockerArchive(path, ref, target_tag);
}

}  // namespace berth::cli
