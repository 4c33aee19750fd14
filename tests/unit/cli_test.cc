// The berth client's logic: settings, parsing, formatting, and reading
// images from OCI layouts and docker-archives.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/aws_client.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/http_client.h"
#include "cli/image_source.h"
#include "cli/registry_push.h"
#include "cli/settings.h"
#include "cli/tasks.h"
#include "registry/digest.h"

namespace berth::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

EnvFn FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create("berth-cli-test-");
    ASSERT_TRUE(t.ok());
    temp_ = *t;
  }

  std::string Path(const std::string& name) const { return temp_->path() + "/" + name; }

  void Write(const std::string& name, const std::string& content) const {
    fs::create_directories(fs::path(Path(name)).parent_path());
    std::ofstream(Path(name), std::ios::binary) << content;
  }

  std::shared_ptr<TempDir> temp_;
};

// ---- settings ----

TEST(IniTest, ParsesSectionsKeysAndComments) {
  IniFile ini = ParseIni(
      "# comment\n[default]\naws_access_key_id = AKIA1\n ; other\n"
      "aws_secret_access_key=s3cr=t \n[profile dev]\nregion = eu-west-1\n");
  EXPECT_EQ("AKIA1", ini["default"]["aws_access_key_id"]);
  EXPECT_EQ("s3cr=t", ini["default"]["aws_secret_access_key"]);
  EXPECT_EQ("eu-west-1", ini["profile dev"]["region"]);
}

using SettingsTest = TempDirTest;

TEST_F(SettingsTest, DataDirCredentialsAndRegionByDefault) {
  Write("data/credentials",
        "[default]\naws_access_key_id = AKIADATA\n"
        "aws_secret_access_key = datasecret\n");
  Write("data/config", "[default]\nregion = eu-central-1\n");
  GlobalFlags flags;
  flags.data_dir = Path("data") + "/";
  auto s = ResolveSettings(flags, FakeEnv({{"HOME", Path("home")}}));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ("http://127.0.0.1:4566", s->endpoint);
  EXPECT_EQ(Path("data"), s->data_dir);
  EXPECT_EQ("AKIADATA", s->access_key_id);
  EXPECT_EQ("datasecret", s->secret_access_key);
  EXPECT_EQ("eu-central-1", s->region);
  EXPECT_EQ(Path("data/credentials"), s->credentials_source);
}

TEST_F(SettingsTest, EnvironmentWinsOverFiles) {
  Write("data/credentials",
        "[default]\naws_access_key_id = AKIADATA\n"
        "aws_secret_access_key = datasecret\n");
  Write("shared",
        "[default]\naws_access_key_id = AKIASHARED\n"
        "aws_secret_access_key = sharedsecret\n[other]\naws_access_key_id = AKIAO\n"
        "aws_secret_access_key = o\n");
  auto env = FakeEnv({{"BERTH_DATA_DIR", Path("data")},
                      {"BERTH_ENDPOINT", "127.0.0.1:9999/"},
                      {"AWS_DEFAULT_REGION", "ap-south-1"},
                      {"AWS_SHARED_CREDENTIALS_FILE", Path("shared")}});
  auto s = ResolveSettings(GlobalFlags{}, env);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ("http://127.0.0.1:9999", s->endpoint);
  EXPECT_EQ("AKIASHARED", s->access_key_id);
  EXPECT_EQ("ap-south-1", s->region);

  GlobalFlags other;
  other.profile = "other";
  other.region = "us-west-2";
  other.endpoint_url = "http://localhost:1";
  s = ResolveSettings(other, env);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ("AKIAO", s->access_key_id);
  EXPECT_EQ("us-west-2", s->region);
  EXPECT_EQ("http://localhost:1", s->endpoint);

  auto with_keys = FakeEnv({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                            {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                            {"AWS_SESSION_TOKEN", "tok"},
                            {"AWS_SHARED_CREDENTIALS_FILE", Path("shared")}});
  s = ResolveSettings(GlobalFlags{}, with_keys);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ("AKIAENV", s->access_key_id);
  EXPECT_EQ("tok", s->session_token);
}

TEST_F(SettingsTest, NoCredentialsNamesWhereItLooked) {
  GlobalFlags flags;
  flags.data_dir = Path("nowhere");
  auto s = ResolveSettings(flags, FakeEnv({}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ("NoCredentials", s.error().code);
  EXPECT_NE(std::string::npos, s.error().message.find(Path("nowhere/credentials")));
  EXPECT_EQ(s.error().message, DescribeError(s.error()));
}

// ---- small parsers and formatting ----

TEST(UrlTest, ParsesAndResolvesLocations) {
  auto u = Url::Parse("http://127.0.0.1:4566/v2/a/blobs/uploads/x?_state=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ("127.0.0.1:4566", u->host);
  EXPECT_EQ("/v2/a/blobs/uploads/x", u->path);
  EXPECT_EQ("_state=1", u->query);
  EXPECT_EQ("/", Url::Parse("http://h")->path);
  EXPECT_FALSE(Url::Parse("ftp://h/").ok());
  EXPECT_FALSE(Url::Parse("no-scheme").ok());
  EXPECT_EQ("http://h:1/v2/x", ResolveLocation("http://h:1", "/v2/x"));
  EXPECT_EQ("http://o/v2/x", ResolveLocation("http://h:1", "http://o/v2/x"));
}

TEST(PushTargetTest, ParsesRepositoryAndTag) {
  auto t = PushTarget::Parse("my-ecr-repo");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ("my-ecr-repo", t->repository);
  EXPECT_EQ("latest", t->tag);
  t = PushTarget::Parse("team/app:v1.2");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ("team/app", t->repository);
  EXPECT_EQ("v1.2", t->tag);
  t = PushTarget::Parse("localhost:4566/app:v1");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ("app", t->repository);
  t = PushTarget::Parse("000000000000.dkr.ecr.us-east-1.amazonaws.com/app");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ("app", t->repository);
  EXPECT_EQ("latest", t->tag);
  EXPECT_FALSE(PushTarget::Parse("App:v1").ok());
  EXPECT_FALSE(PushTarget::Parse("app@sha256:abc").ok());
  EXPECT_FALSE(PushTarget::Parse("app:").ok());
  EXPECT_FALSE(PushTarget::Parse("app:-x").ok());
}

TEST(RangeTest, OffsetAfterRangeHeader) {
  EXPECT_EQ(1024u, OffsetFromRange("0-1023"));
  EXPECT_EQ(0u, OffsetFromRange("0-0"));
  EXPECT_EQ(1u, OffsetFromRange("0-0", true));
  EXPECT_EQ(10u, OffsetFromRange("bytes=0-9"));
  EXPECT_FALSE(OffsetFromRange("").has_value());
  EXPECT_FALSE(OffsetFromRange("5-9").has_value());
  EXPECT_FALSE(OffsetFromRange("x-y").has_value());
}

TEST(FormatTest, DurationsSizesAges) {
  EXPECT_EQ(600, ParseDuration("10m"));
  EXPECT_EQ(90, ParseDuration("90"));
  EXPECT_EQ(5400, ParseDuration("1h30m"));
  EXPECT_EQ(86400, ParseDuration("1d"));
  EXPECT_FALSE(ParseDuration("").has_value());
  EXPECT_FALSE(ParseDuration("10x").has_value());
  EXPECT_FALSE(ParseDuration("1h30").has_value());
  EXPECT_EQ(8u << 20, ParseSize("8MiB"));
  EXPECT_EQ(512u << 10, ParseSize("512k"));
  EXPECT_EQ(100u, ParseSize("100"));
  EXPECT_FALSE(ParseSize("1.5M").has_value());
  EXPECT_FALSE(ParseSize("M").has_value());
  EXPECT_EQ("512B", FormatBytes(512));
  EXPECT_EQ("1.5KiB", FormatBytes(1536));
  EXPECT_EQ("512MiB", FormatBytes(512u << 20));
  EXPECT_EQ("12s", FormatAge(12.7));
  EXPECT_EQ("5m", FormatAge(300));
  EXPECT_EQ("3h", FormatAge(3 * 3600 + 5));
  EXPECT_EQ("2d", FormatAge(2 * 86400 + 10));
  EXPECT_EQ("sha256:0123456789ab", ShortDigest("sha256:0123456789abcdef"));
}

TEST(FormatTest, TableProgressAndQuoting) {
  EXPECT_EQ("A      BB\nxxxx   y\n", RenderTable({{"A", "BB"}, {"xxxx", "y"}}));
  EXPECT_EQ("l  [=====>    ]  512B / 1KiB   50%", RenderProgress("l", 512, 1024, 10));
  EXPECT_EQ("l  [==========]  1KiB / 1KiB  100%", RenderProgress("l", 1024, 1024, 10));
  EXPECT_EQ("/var/lib/berth", ShellQuote("/var/lib/berth"));
  EXPECT_EQ("'a b'", ShellQuote("a b"));
  EXPECT_EQ("'it'\\''s'", ShellQuote("it's"));
  EXPECT_EQ("''", ShellQuote(""));
}

TEST(ErrorTest, AwsAndRegistryErrorsShowTheirCode) {
  Error aws = ParseAwsError(
      400, R"({"__type":"com.amazonaws#ClusterNotFoundException","message":"Cluster not found."})");
  EXPECT_EQ(400, aws.status);
  EXPECT_EQ("ClusterNotFoundException: Cluster not found.", DescribeError(aws));
  Error oci = ParseRegistryError(
      404, R"({"errors":[{"code":"NAME_UNKNOWN","message":"no such repo","detail":null}]})");
  EXPECT_EQ("NAME_UNKNOWN: no such repo", DescribeError(oci));
  EXPECT_EQ("HTTP502", ParseAwsError(502, "<html>").code);
  EXPECT_EQ("just this", DescribeError(LocalError("just this")));
}

TEST(TaskArnTest, SplitsArns) {
  const std::string arn = "arn:aws:ecs:us-east-1:000000000000:task/web/0123abcd";
  EXPECT_EQ("0123abcd", LastSegment(arn));
  EXPECT_EQ("web", ClusterOfTaskArn(arn));
  EXPECT_EQ("", ClusterOfTaskArn("0123abcd"));
  EXPECT_EQ("", ClusterOfTaskArn("arn:aws:ecs:us-east-1:000000000000:cluster/web"));
}

// ---- image sources ----

std::string Digest(const std::string& data) {
  return registry::Sha256Digest(data);
}

class ImageSourceTest : public TempDirTest {
 protected:
  std::string AddBlob(const std::string& layout, const std::string& data) {
    std::string d = Digest(data);
    Write(layout + "/blobs/sha256/" + d.substr(7), data);
    return d;
  }

  // A layout with one image: a config, one layer and a manifest named `ref`.
  json WriteLayout(const std::string& layout, const std::vector<std::string>& refs) {
    std::string config = R"({"architecture":"amd64","os":"linux"})";
    std::string layer = "not really a tarball";
    json manifest = {
        {"schemaVersion", 2},
        {"mediaType", kOciManifest},
        {"config",
         {{"mediaType", kOciConfig}, {"digest", AddBlob(layout, config)}, {"size", config.size()}}},
        {"layers", json::array({{{"mediaType", kOciLayerGzip},
                                 {"digest", AddBlob(layout, layer)},
                                 {"size", layer.size()}}})}};
    std::string body = manifest.dump();
    json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
    for (const auto& ref : refs) {
      json d = {
          {"mediaType", kOciManifest}, {"digest", AddBlob(layout, body)}, {"size", body.size()}};
      if (!ref.empty()) {
        d["annotations"] = {{kRefNameAnnotation, ref}};
      }
      index["manifests"].push_back(d);
    }
    Write(layout + "/index.json", index.dump());
    Write(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    return manifest;
  }
};

TEST_F(ImageSourceTest, OciLayoutIsPushedByteForByte) {
  json manifest = WriteLayout("oci", {"v1"});
  auto plan = LoadImage(Path("oci"), "latest");
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  ASSERT_EQ(2u, plan->blobs.size());
  EXPECT_EQ("config", plan->blobs[0].label);
  EXPECT_EQ(manifest["config"]["digest"], plan->blobs[0].digest);
  EXPECT_EQ("layer 1/1", plan->blobs[1].label);
  EXPECT_EQ(manifest["layers"][0]["size"], plan->blobs[1].size);
  ASSERT_EQ(1u, plan->manifests.size());
  EXPECT_TRUE(plan->manifests[0].by_tag);
  EXPECT_EQ(manifest.dump(), plan->manifests[0].body);
  EXPECT_EQ(Digest(manifest.dump()), plan->manifests[0].digest);
  EXPECT_EQ(kOciManifest, plan->manifests[0].media_type);
}

TEST_F(ImageSourceTest, OciLayoutRefSelection) {
  WriteLayout("oci", {"a", "b"});
  auto by_suffix = LoadImage(Path("oci") + ":b", "latest");
  ASSERT_TRUE(by_suffix.ok()) << by_suffix.error().message;
  EXPECT_NE(std::string::npos, by_suffix->description.find("ref b"));
  auto by_target = LoadImage(Path("oci"), "a");
  ASSERT_TRUE(by_target.ok());
  EXPECT_NE(std::string::npos, by_target->description.find("ref a"));
  auto ambiguous = LoadImage(Path("oci"), "latest");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_NE(std::string::npos, ambiguous.error().message.find("refs: a, b"));
  EXPECT_FALSE(LoadImage(Path("oci") + ":c", "latest").ok());
}

TEST_F(ImageSourceTest, OciLayoutMissingOrCorruptBlobIsAnError) {
  json manifest = WriteLayout("oci", {""});
  fs::remove(
      Path("oci/blobs/sha256/" + manifest["layers"][0]["digest"].get<std::string>().substr(7)));
  auto plan = LoadImage(Path("oci"), "latest");
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string::npos, plan.error().message.find("missing from the layout"));
  EXPECT_FALSE(LoadImage(Path("absent"), "latest").ok());
  fs::create_directories(Path("empty"));
  EXPECT_NE(std::string::npos,
            LoadImage(Path("empty"), "latest").error().message.find("no index.json"));
}

TEST_F(ImageSourceTest, OciIndexPushesChildrenFirst) {
  json child = WriteLayout("oci", {""});
  std::string child_body = child.dump();
  json index = {{"schemaVersion", 2},
                {"mediaType", kOciIndex},
                {"manifests", json::array({{{"mediaType", kOciManifest},
                                            {"digest", Digest(child_body)},
                                            {"size", child_body.size()}}})}};
  std::string index_body = index.dump();
  json top = {{"schemaVersion", 2},
              {"manifests", json::array({{{"mediaType", kOciIndex},
                                          {"digest", AddBlob("oci", index_body)},
                                          {"size", index_body.size()}}})}};
  Write("oci/index.json", top.dump());
  auto plan = LoadImage(Path("oci"), "latest");
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  ASSERT_EQ(2u, plan->manifests.size());
  EXPECT_FALSE(plan->manifests[0].by_tag);
  EXPECT_EQ(Digest(child_body), plan->manifests[0].digest);
  EXPECT_TRUE(plan->manifests[1].by_tag);
  EXPECT_EQ(kOciIndex, plan->manifests[1].media_type);
}

std::string Gunzip(const std::string& data) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[4096];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
  } while (rc == Z_OK);
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes a tar with regular members and symbolic links.
void WriteTar(const std::string& path,
              const std::vector<std::pair<std::string, std::string>>& files,
              const std::vector<std::pair<std::string, std::string>>& links = {}) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(ARCHIVE_OK, archive_write_open_filename(a, path.c_str()));
  for (const auto& [name, data] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  for (const auto& [name, target] : links) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFLNK);
    archive_entry_set_symlink(e, target.c_str());
    archive_entry_set_perm(e, 0777);
    archive_write_header(a, e);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

TEST_F(ImageSourceTest, DockerArchiveBecomesAnOciManifestWithGzipLayers) {
  std::string layer1(100000, 'a');
  std::string layer2 = "second layer";
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})";
  json manifest = json::array({{{"Config", "cfg.json"},
                                {"RepoTags", {"app:v1"}},
                                {"Layers", {"l1/layer.tar", "l2/layer.tar", "l3/layer.tar"}}}});
  // manifest.json last, as docker save and the sample build write it.
  WriteTar(Path("img.tar"),
           {{"cfg.json", config},
            {"l1/layer.tar", layer1},
            {"l2/layer.tar", layer2},
            {"manifest.json", manifest.dump()}},
           {{"l3/layer.tar", "../l1/layer.tar"}});
  auto plan = LoadImage(Path("img.tar"), "latest");
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  ASSERT_EQ(3u, plan->blobs.size());  // config, l1 (also as l3), l2
  EXPECT_EQ(Digest(config), plan->blobs[0].digest);
  EXPECT_EQ(kOciConfig, plan->blobs[0].media_type);
  EXPECT_EQ(Gunzip(ReadFile(plan->blobs[1].path)), layer1);
  EXPECT_EQ(Gunzip(ReadFile(plan->blobs[2].path)), layer2);
  EXPECT_EQ(Digest(ReadFile(plan->blobs[1].path)), plan->blobs[1].digest);
  EXPECT_LT(plan->blobs[1].size, 2000u);

  ASSERT_EQ(1u, plan->manifests.size());
  json m = json::parse(plan->manifests[0].body);
  EXPECT_EQ(kOciManifest, m["mediaType"]);
  EXPECT_EQ(Digest(config), m["config"]["digest"]);
  ASSERT_EQ(3u, m["layers"].size());
  EXPECT_EQ(kOciLayerGzip, m["layers"][0]["mediaType"]);
  EXPECT_EQ(plan->blobs[1].digest, m["layers"][0]["digest"]);
  EXPECT_EQ(plan->blobs[2].digest, m["layers"][1]["digest"]);
  EXPECT_EQ(plan->blobs[1].digest, m["layers"][2]["digest"]);
  EXPECT_EQ(Digest(plan->manifests[0].body), plan->manifests[0].digest);

  // The conversion is deterministic: the same archive gives the same digest.
  auto again = LoadImage(Path("img.tar"), "latest");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(plan->manifests[0].digest, again->manifests[0].digest);

  // The temporary layers go with the plan.
  std::string dir = plan->temp->path();
  plan = Error{};
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(ImageSourceTest, DockerArchiveKeepsCompressedLayersAndPicksByTag) {
  std::string gz = std::string("\x1f\x8b\x08\x00", 4) + "rest-of-gzip";
  json manifest =
      json::array({{{"Config", "a.json"}, {"RepoTags", {"one:v1"}}, {"Layers", {"x.tar.gz"}}},
                   {{"Config", "b.json"}, {"RepoTags", {"two:v2"}}, {"Layers", {"x.tar.gz"}}}});
  WriteTar(Path("multi.tar"), {{"manifest.json", manifest.dump()},
                               {"a.json", "{\"a\":1}"},
                               {"b.json", "{\"b\":2}"},
                               {"x.tar.gz", gz}});
  auto plan = LoadImage(Path("multi.tar") + ":two:v2", "latest");
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_EQ(Digest("{\"b\":2}"), plan->blobs[0].digest);
  EXPECT_EQ(Digest(gz), plan->blobs[1].digest);
  EXPECT_EQ(kOciLayerGzip, plan->blobs[1].media_type);
  auto by_target = LoadImage(Path("multi.tar"), "v1");
  ASSERT_TRUE(by_target.ok());
  EXPECT_EQ(Digest("{\"a\":1}"), by_target->blobs[0].digest);
  auto ambiguous = LoadImage(Path("multi.tar"), "latest");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_NE(std::string::npos, ambiguous.error().message.find("one:v1, two:v2"));
}

TEST_F(ImageSourceTest, NotAnImageIsAnError) {
  Write("plain.txt", "hello");
  EXPECT_FALSE(LoadImage(Path("plain.txt"), "latest").ok());
  WriteTar(Path("nomanifest.tar"), {{"a", "b"}});
  auto plan = LoadImage(Path("nomanifest.tar"), "latest");
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string::npos, plan.error().message.find("no manifest.json"));
}

}  // namespace
}  // namespace berth::cli
