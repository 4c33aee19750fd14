#include "registry/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/paging.h"
#include "registry/auth.h"
#include "registry/blob_store.h"
#include "registry/digest.h"
#include "registry/lifecycle.h"
#include "registry/names.h"
#include "registry/oci_route.h"
#include "store/store.h"
#include "temp_dir.h"

namespace berth::registry {
namespace {

using berth::testutil::TempDir;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Json = nlohmann::json;
using std::chrono::hours;
using std::chrono::seconds;
using std::chrono::system_clock;


// --- digests ---

TEST(DigestTest, AcceptsSha256InLowerHex) {
  EXPECT_TRUE(ValidateDigest("sha256:" + std::string(64, 'a')).ok());
  EXPECT_TRUE(ValidateDigest(Sha256Digest("x")).ok());
}

TEST(DigestTest, RefusesMalformedDigestsWithDigestInvalid) {
  for (std::string bad : {std::string("sha256:") + std::string(64, 'A'),
                          std::string("sha256:") + std::string(63, 'a'),
                          std::string("sha256:") + std::string(65, 'a'), std::string("sha256:"),
                          std::string(":abc"), std::string("sha256"), std::string("sha256:xyz"),
                          std::string("SHA256:") + std::string(64, 'a'), std::string("")}) {
    Status st = ValidateDigest(bad);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ("DIGEST_INVALID", st.error().code) << bad;
    EXPECT_EQ(400, st.error().status);
  }
}

TEST(DigestTest, OtherAlgorithmsAreWellFormedButUnsupported) {
  std::string sha512 = "sha512:" + std::string(128, 'b');
  EXPECT_TRUE(LooksLikeDigest(sha512));
  EXPECT_TRUE(LooksLikeDigest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
  EXPECT_FALSE(LooksLikeDigest("sha256+:abc"));
  EXPECT_FALSE(LooksLikeDigest("sha256:ab/c"));
  Status st = ValidateDigest(sha512);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message, HasSubstr("unsupported"));
}

TEST(Sha256Test, KnownVectorAndStreaming) {
  EXPECT_EQ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            Sha256Digest("abc"));
  EXPECT_EQ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            Sha256Digest(""));
  Sha256 h;
  h.Update("a");
  std::string partial = h.Digest();  // peeking leaves the state alone
  EXPECT_EQ(Sha256Digest("a"), partial);
  h.Update("bc");
  EXPECT_EQ(Sha256Digest("abc"), h.Digest());
  Sha256 moved = std::move(h);
  moved.Update("d");
  EXPECT_EQ(Sha256Digest("abcd"), moved.Digest());
  moved.Reset();
  EXPECT_EQ(Sha256Digest(""), moved.Digest());
}

// --- ranges ---

TEST(RangeTest, UploadContentRange) {
  auto r = ParseContentRange("0-9");
  ASSERT_TRUE(r);
  EXPECT_EQ(0u, r->first);
  EXPECT_EQ(9u, r->last);
  EXPECT_EQ(10u, r->length());
  auto with_unit = ParseContentRange("bytes 10-19/*");
  ASSERT_TRUE(with_unit);
  EXPECT_EQ(10u, with_unit->first);
  EXPECT_EQ(19u, with_unit->last);
  for (const char* bad : {"5-4", "ten", "-5", "5-", "", "1-2-3", "a-b", "0x1-2"}) {
    EXPECT_FALSE(ParseContentRange(bad)) << bad;
  }
}

TEST(RangeTest, GetRangeHeader) {
  using Kind = RangeRequest::Kind;
  RangeRequest r = ParseRangeHeader("bytes=2-5", 16);
  EXPECT_EQ(Kind::kPartial, r.kind);
  EXPECT_EQ(2u, r.range.first);
  EXPECT_EQ(5u, r.range.last);
  r = ParseRangeHeader("bytes=-3", 16);
  EXPECT_EQ(Kind::kPartial, r.kind);
  EXPECT_EQ(13u, r.range.first);
  EXPECT_EQ(15u, r.range.last);
  r = ParseRangeHeader("bytes=-100", 16);
  EXPECT_EQ(0u, r.range.first);
  EXPECT_EQ(15u, r.range.last);
  r = ParseRangeHeader("bytes=10-", 16);
  EXPECT_EQ(10u, r.range.first);
  EXPECT_EQ(15u, r.range.last);
  r = ParseRangeHeader("bytes=0-100", 16);
  EXPECT_EQ(15u, r.range.last);
  EXPECT_EQ(Kind::kUnsatisfiable, ParseRangeHeader("bytes=16-", 16).kind);
  EXPECT_EQ(Kind::kUnsatisfiable, ParseRangeHeader("bytes=-0", 16).kind);
  EXPECT_EQ(Kind::kUnsatisfiable, ParseRangeHeader("bytes=0-", 0).kind);
  EXPECT_EQ(Kind::kWhole, ParseRangeHeader("items=0-1", 16).kind);
  EXPECT_EQ(Kind::kWhole, ParseRangeHeader("bytes=0-1,4-5", 16).kind);
  EXPECT_EQ(Kind::kWhole, ParseRangeHeader("bytes=5-2", 16).kind);
  EXPECT_EQ(Kind::kWhole, ParseRangeHeader("bytes=x-", 16).kind);
}

// --- names ---

TEST(NameTest, RepositoryNamesFollowEcr) {
  for (const char* good : {"ab", "team/app", "a.b-c_d", "a/b/c", "x1/y2", "0a"}) {
    EXPECT_TRUE(ValidRepositoryName(good)) << good;
  }
  for (const char* bad : {"a", "A", "Upper", "a--b", "a..b", "a/", "/a", "a//b", "-a", "a-", "a b",
                          "a:b", "a@b", "_a"}) {
    EXPECT_FALSE(ValidRepositoryName(bad)) << bad;
  }
  EXPECT_TRUE(ValidRepositoryName(std::string(256, 'a')));
  EXPECT_FALSE(ValidRepositoryName(std::string(257, 'a')));
}

TEST(NameTest, Tags) {
  for (const char* good : {"latest", "v1.0-rc_1", "_x", "A", "1"}) {
    EXPECT_TRUE(ValidTag(good)) << good;
  }
  for (const char* bad : {"", "-x", ".x", "a/b", "a:b", "a+b"}) {
    EXPECT_FALSE(ValidTag(bad)) << bad;
  }
  EXPECT_TRUE(ValidTag(std::string(128, 'a')));
  EXPECT_FALSE(ValidTag(std::string(129, 'a')));
}

TEST(NameTest, EcrReferencesMapToTheRegistryHost) {
  EXPECT_TRUE(IsEcrRegistryHost("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
  EXPECT_TRUE(IsEcrRegistryHost("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"));
  EXPECT_FALSE(IsEcrRegistryHost("12345678901.dkr.ecr.us-east-1.amazonaws.com"));
  EXPECT_FALSE(IsEcrRegistryHost("123456789012.dkr.ecr.amazonaws.com"));
  EXPECT_FALSE(IsEcrRegistryHost("public.ecr.aws"));
  EXPECT_EQ(
      "localhost:4566/app:1",
      MapEcrReference("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", "localhost:4566"));
  EXPECT_EQ("localhost:4566/team/app@sha256:" + std::string(64, 'a'),
            MapEcrReference("000000000000.dkr.ecr.eu-west-1.amazonaws.com/team/app@sha256:" +
                                std::string(64, 'a'),
                            "localhost:4566"));
  EXPECT_EQ("docker.io/library/nginx:1", MapEcrReference("docker.io/library/nginx:1", "h:1"));
  EXPECT_EQ("app:1", MapEcrReference("app:1", "h:1"));
}

TEST(NameTest, ParseImageReference) {
  auto r = ParseImageReference("localhost:4566/team/app:v2");
  ASSERT_TRUE(r);
  EXPECT_EQ("localhost:4566", r->registry);
  EXPECT_EQ("team/app", r->repository);
  EXPECT_EQ("v2", r->tag);
  r = ParseImageReference("busybox");
  ASSERT_TRUE(r);
  EXPECT_EQ("", r->registry);
  EXPECT_EQ("busybox", r->repository);
  EXPECT_EQ("latest", r->tag);
  r = ParseImageReference("reg.example:5000/app@sha256:abc");
  ASSERT_TRUE(r);
  EXPECT_EQ("reg.example:5000", r->registry);
  EXPECT_EQ("app", r->repository);
  EXPECT_EQ("", r->tag);
  EXPECT_EQ("sha256:abc", r->digest);
  EXPECT_FALSE(ParseImageReference(""));
  EXPECT_FALSE(ParseImageReference("app:"));
}

TEST(OciPathTest, EndpointsAreReadFromTheEnd) {
  using Kind = OciEndpoint::Kind;
  EXPECT_EQ(Kind::kBase, ParseOciPath("/v2/").kind);
  EXPECT_EQ(Kind::kBase, ParseOciPath("/v2").kind);
  EXPECT_EQ(Kind::kCatalog, ParseOciPath("/v2/_catalog").kind);
  auto ep = ParseOciPath("/v2/a/blobs/b/manifests/latest");
  EXPECT_EQ(Kind::kManifest, ep.kind);
  EXPECT_EQ("a/blobs/b", ep.name);
  EXPECT_EQ("latest", ep.reference);
  ep = ParseOciPath("/v2/team/app/blobs/uploads/");
  EXPECT_EQ(Kind::kUploadStart, ep.kind);
  EXPECT_EQ("team/app", ep.name);
  EXPECT_EQ(Kind::kUploadStart, ParseOciPath("/v2/team/app/blobs/uploads").kind);
  ep = ParseOciPath("/v2/team/app/blobs/uploads/1234");
  EXPECT_EQ(Kind::kUpload, ep.kind);
  EXPECT_EQ("1234", ep.reference);
  ep = ParseOciPath("/v2/x/y/blobs/sha256:ab");
  EXPECT_EQ(Kind::kBlob, ep.kind);
  EXPECT_EQ("x/y", ep.name);
  EXPECT_EQ(Kind::kTags, ParseOciPath("/v2/tags/tags/list").kind);
  EXPECT_EQ("tags", ParseOciPath("/v2/tags/tags/list").name);
  EXPECT_EQ(Kind::kReferrers, ParseOciPath("/v2/r/referrers/sha256:ab").kind);
  EXPECT_EQ(Kind::kUnknown, ParseOciPath("/v2/only-a-name").kind);
  EXPECT_EQ(Kind::kUnknown, ParseOciPath("/v3/x/tags/list").kind);
}

// --- tokens ---

TEST(TokenTest, IssueVerifyExpireTamper) {
  TokenAuthority auth(std::string(32, 'k'));
  auto now = system_clock::now();
  std::string token = auth.Issue(now + hours(12), "AKIAEXAMPLE");
  EXPECT_EQ(TokenAuthority::Verdict::kValid, auth.Verify(token, now));
  EXPECT_EQ(TokenAuthority::Verdict::kExpired, auth.Verify(token, now + hours(13)));
  std::string tampered = token;
  tampered[4] = tampered[4] == '9' ? '8' : '9';  // change the expiry
  EXPECT_EQ(TokenAuthority::Verdict::kInvalid, auth.Verify(tampered, now));
  TokenAuthority other(std::string(32, 'o'));
  EXPECT_EQ(TokenAuthority::Verdict::kInvalid, other.Verify(token, now));
  EXPECT_EQ(TokenAuthority::Verdict::kInvalid, auth.Verify("garbage", now));

  EXPECT_EQ(TokenAuthority::Verdict::kValid,
            auth.VerifyBasic("Basic " + Base64Encode("AWS:" + token), now));
  EXPECT_EQ(TokenAuthority::Verdict::kValid,
            auth.VerifyBasic("basic " + Base64Encode("AWS:" + token), now));
  EXPECT_EQ(TokenAuthority::Verdict::kInvalid,
            auth.VerifyBasic("Basic " + Base64Encode("root:" + token), now));
  EXPECT_EQ(TokenAuthority::Verdict::kInvalid,
            auth.VerifyBasic("Bearer " + Base64Encode("AWS:" + token), now));
  EXPECT_EQ(TokenAuthority::Verdict::kInvalid, auth.VerifyBasic("Basic !!!", now));
}

TEST(TokenTest, KeySurvivesReopening) {
  TempDir dir;
  auto first = TokenAuthority::Open(dir.File("token.key"));
  ASSERT_TRUE(first.ok());
  auto now = system_clock::now();
  std::string token = (*first)->Issue(now + hours(1), "AKIA");
  auto second = TokenAuthority::Open(dir.File("token.key"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(TokenAuthority::Verdict::kValid, (*second)->Verify(token, now));
  struct stat st;
  ASSERT_EQ(0, ::stat(dir.File("token.key").c_str(), &st));
  EXPECT_EQ(0600u, st.st_mode & 0777);
}

TEST(TokenTest, DownloadSignaturesAreBoundToBlobAndTime) {
  TokenAuthority auth(std::string(32, 'k'));
  auto now = system_clock::now();
  int64_t expires =
      std::chrono::duration_cast<seconds>((now + hours(1)).time_since_epoch()).count();
  std::string sig = auth.SignDownload("app", "sha256:aa", expires);
  EXPECT_TRUE(auth.VerifyDownload("app", "sha256:aa", expires, sig, now));
  EXPECT_FALSE(auth.VerifyDownload("other", "sha256:aa", expires, sig, now));
  EXPECT_FALSE(auth.VerifyDownload("app", "sha256:bb", expires, sig, now));
  EXPECT_FALSE(auth.VerifyDownload("app", "sha256:aa", expires + 1, sig, now));
  EXPECT_FALSE(auth.VerifyDownload("app", "sha256:aa", expires, sig, now + hours(2)));
}

// --- lifecycle policies ---

// A rule's selection; `extra` holds further members as JSON ("{}" for none).
std::string Selection(const std::string& status, const std::string& count_type, int64_t number,
                      const std::string& extra = "{}") {
  Json s = {{"tagStatus", status}, {"countType", count_type}, {"countNumber", number}};
  s.update(Json::parse(extra));
  return s.dump();
}

std::string PolicyText(const std::vector<std::string>& rules) {
  std::string text = R"({"rules":[)";
  for (size_t i = 0; i < rules.size(); ++i) {
    text += (i ? "," : "") + rules[i];
  }
  return text + "]}";
}

std::string Rule(int priority, const std::string& selection) {
  return R"({"rulePriority":)" + std::to_string(priority) + R"(,"selection":)" + selection +
         R"(,"action":{"type":"expire"}})";
}

TEST(LifecycleTest, ValidationRules) {
  auto policy = [](std::vector<std::string> rules) {
    return ParseLifecyclePolicy(PolicyText(rules));
  };
  const std::string any1 = Selection("any", "imageCountMoreThan", 1);
  EXPECT_TRUE(policy({Rule(1, any1)}).ok());

  struct Case {
    std::vector<std::string> rules;
    std::string reason;
  };

  const std::vector<Case> bad = {
      {{}, "non-empty 'rules'"},
      {{Rule(1, Selection("tagged", "imageCountMoreThan", 1))},
       "tagPrefixList or tagPatternList is required"},
      {{Rule(1, Selection("untagged", "imageCountMoreThan", 1, R"({"tagPrefixList":["a"]})"))},
       "only allowed when tagStatus is tagged"},
      {{Rule(1, Selection("any", "sinceImagePushed", 1))}, "countUnit must be 'days'"},
      {{Rule(1, Selection("any", "imageCountMoreThan", 1, R"({"countUnit":"days"})"))},
       "countUnit is not allowed"},
      {{Rule(1, Selection("any", "imageCountMoreThan", 0))},
       "countNumber must be a positive integer"},
      {{Rule(1, Selection("sometimes", "imageCountMoreThan", 1))}, "tagStatus must be one of"},
      {{Rule(1, any1), Rule(1, Selection("untagged", "imageCountMoreThan", 1))}, "used twice"},
      {{Rule(1, any1), Rule(2, Selection("untagged", "imageCountMoreThan", 1))},
       "tagStatus any must have the highest rulePriority"},
      {{Rule(1, Selection("tagged", "imageCountMoreThan", 1,
                          R"({"tagPrefixList":["a"],"tagPatternList":["a*"]})"))},
       "not both"},
  };
  for (const auto& c : bad) {
    auto parsed = policy(c.rules);
    ASSERT_FALSE(parsed.ok()) << c.reason;
    EXPECT_EQ("InvalidParameterException", parsed.error().code);
    EXPECT_THAT(parsed.error().message, HasSubstr("Lifecycle policy validation failure"));
    EXPECT_THAT(parsed.error().message, HasSubstr(c.reason));
  }
  EXPECT_FALSE(ParseLifecyclePolicy("not json").ok());
}

TEST(LifecycleTest, PatternMatching) {
  EXPECT_TRUE(TagPatternMatches("prod*", "prod-1"));
  EXPECT_TRUE(TagPatternMatches("*-rc*", "v1-rc2"));
  EXPECT_TRUE(TagPatternMatches("*", "anything"));
  EXPECT_TRUE(TagPatternMatches("exact", "exact"));
  EXPECT_FALSE(TagPatternMatches("exact", "exactly"));
  EXPECT_FALSE(TagPatternMatches("prod*", "dev-prod"));
  EXPECT_TRUE(TagPatternMatches("a*b*c", "aXbYc"));
  EXPECT_FALSE(TagPatternMatches("a*b*c", "aXcYb"));
}

TEST(LifecycleTest, CountAndAgeRulesInPriorityOrder) {
  const double day = 86400;
  const double now = 100 * day;
  std::vector<LifecycleImage> images = {
      {"sha256:p1", {"prod-1"}, now - 30 * day}, {"sha256:p2", {"prod-2"}, now - 20 * day},
      {"sha256:p3", {"prod-3"}, now - 1 * day},  {"sha256:u1", {}, now - 15 * day},
      {"sha256:u2", {}, now - 2 * day},          {"sha256:d1", {"dev-1"}, now - 40 * day},
  };
  auto policy = ParseLifecyclePolicy(PolicyText(
      {Rule(1, Selection("tagged", "imageCountMoreThan", 2, R"({"tagPrefixList":["prod"]})")),
       Rule(2, Selection("untagged", "sinceImagePushed", 10, R"({"countUnit":"days"})")),
       Rule(3, Selection("any", "sinceImagePushed", 25, R"({"countUnit":"days"})"))}));
  ASSERT_TRUE(policy.ok()) << policy.error().message;
  // prod: keep the 2 newest -> p1 expires. untagged older than 10 days -> u1.
  // any older than 25 days -> p1 (already expired) and d1; p-images are
  // protected from rule 3 because rule 1 selected them anyway.
  EXPECT_THAT(ExpiredImages(*policy, images, now),
              UnorderedElementsAre("sha256:p1", "sha256:u1", "sha256:d1"));
  // Ten days earlier nothing is old enough for the age rules.
  EXPECT_THAT(ExpiredImages(*policy, images, now - 20 * day), ElementsAre("sha256:p1"));
}

TEST(LifecycleTest, HigherPriorityRuleProtectsWhatItSelects) {
  const double now = 1000;
  std::vector<LifecycleImage> images = {
      {"sha256:a", {"keep-a"}, 1}, {"sha256:b", {"keep-b"}, 2}, {"sha256:c", {"other"}, 3}};
  auto policy = ParseLifecyclePolicy(PolicyText(
      {Rule(1, Selection("tagged", "imageCountMoreThan", 5, R"({"tagPatternList":["keep-*"]})")),
       Rule(2, Selection("any", "imageCountMoreThan", 1))}));
  ASSERT_TRUE(policy.ok());
  // Rule 2 would keep only c (the newest), but a and b belong to rule 1.
  EXPECT_THAT(ExpiredImages(*policy, images, now), IsEmpty());
}

// --- manifests ---

TEST(ManifestTest, ImageManifestRecordsItsBlobs) {
  std::string config = Sha256Digest("config");
  std::string layer = Sha256Digest("layer");
  std::string foreign = Sha256Digest("foreign");
  Json m = {{"schemaVersion", 2},
            {"mediaType", kDockerManifest},
            {"config",
             {{"mediaType", "application/vnd.docker.container.image.v1+json"},
              {"digest", config},
              {"size", 6}}},
            {"layers",
             {{{"mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip"},
               {"digest", layer},
               {"size", 5}},
              {{"mediaType", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"},
               {"digest", foreign},
               {"size", 7}}}}};
  auto r = ParseManifest(m.dump(), "");
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(std::string(kDockerManifest), r->media_type);
  EXPECT_THAT(r->blobs, ElementsAre(config, layer));  // the foreign layer is not held here
  EXPECT_EQ(12u, r->image_size);
  EXPECT_EQ("application/vnd.docker.container.image.v1+json", r->artifact_type);

  auto declared = ParseManifest(m.dump(), std::string(kDockerManifest) + "; charset=utf-8");
  EXPECT_TRUE(declared.ok());
  auto mismatch = ParseManifest(m.dump(), kOciManifest);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ("MANIFEST_INVALID", mismatch.error().code);
}

TEST(ManifestTest, IndexesSubjectsAndRefusals) {
  std::string child = Sha256Digest("child");
  Json index = {
      {"schemaVersion", 2},
      {"manifests", {{{"mediaType", kOciManifest}, {"digest", child}, {"size", 1}}}},
      {"subject", {{"mediaType", kOciManifest}, {"digest", Sha256Digest("s")}, {"size", 1}}}};
  auto r = ParseManifest(index.dump(), "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(kOciIndex), r->media_type);
  EXPECT_THAT(r->children, ElementsAre(child));
  EXPECT_EQ(Sha256Digest("s"), r->subject);

  for (const std::string& bad :
       {std::string("{"), std::string("[]"), std::string(R"({"schemaVersion":1})"),
        std::string(R"({"schemaVersion":2,"mediaType":"text/plain","config":{}})"),
        std::string(R"({"schemaVersion":2,"config":{"digest":"sha256:zz"}})"),
        std::string(R"({"schemaVersion":2})")}) {
    auto parsed = ParseManifest(bad, "");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ("MANIFEST_INVALID", parsed.error().code) << bad;
  }
}

// --- blob store ---

Result<Published> Upload(BlobStore& store, const std::string& id, const std::string& data,
                         const std::string& digest) {
  BERTH_TRY(store.CreateUpload(id));
  auto w = store.OpenUpload(id);
  if (!w.ok()) {
    return w.error();
  }
  BERTH_TRY((*w)->Write(data.data(), data.size()));
  return (*w)->Publish(digest);
}

TEST(BlobStoreTest, PublishesOnlyWithTheRightDigest) {
  TempDir dir;
  auto store = BlobStore::Open(dir.File("r"));
  ASSERT_TRUE(store.ok());
  BlobStore& s = **store;
  ASSERT_TRUE(s.CreateUpload("u1").ok());
  {
    auto w = s.OpenUpload("u1");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("hello ", 6).ok());
    // A second writer is refused while the first holds the upload.
    auto second = s.OpenUpload("u1");
    ASSERT_FALSE(second.ok());
    EXPECT_EQ("BLOB_UPLOAD_INVALID", second.error().code);
    auto wrong = (*w)->Publish(Sha256Digest("hello"));
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ("DIGEST_INVALID", wrong.error().code);
    EXPECT_FALSE(s.Stat(Sha256Digest("hello ")));
  }
  {
    auto w = s.OpenUpload("u1");
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(6u, (*w)->size());
    ASSERT_TRUE((*w)->Write("world", 5).ok());
    auto done = (*w)->Publish(Sha256Digest("hello world"));
    ASSERT_TRUE(done.ok()) << done.error().message;
    EXPECT_EQ(11u, done->size);
    EXPECT_FALSE(done->already_present);
  }
  auto st = s.Stat(Sha256Digest("hello world"));
  ASSERT_TRUE(st);
  EXPECT_EQ(11u, st->size);
  EXPECT_FALSE(s.UploadSize("u1"));
  auto again = Upload(s, "u2", "hello world", Sha256Digest("hello world"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_present);
  EXPECT_EQ(1u, s.List().size());
  EXPECT_TRUE(s.ListUploads().empty());
  auto read = s.Read(Sha256Digest("hello world"), 100);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ("hello world", *read);
}

TEST(BlobStoreTest, UploadResumesAfterRestartWithHashRebuilt) {
  TempDir dir;
  {
    auto store = BlobStore::Open(dir.File("r"));
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->CreateUpload("u").ok());
    auto w = (*store)->OpenUpload("u");
    ASSERT_TRUE(w.ok());
    std::string big(3 * BlobStore::kWritebackChunk / 2, 'x');
    ASSERT_TRUE((*w)->Write(big.data(), big.size()).ok());
  }
  auto store = BlobStore::Open(dir.File("r"));
  ASSERT_TRUE(store.ok());
  auto w = (*store)->OpenUpload("u");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("tail", 4).ok());
  std::string expected = std::string(3 * BlobStore::kWritebackChunk / 2, 'x') + "tail";
  auto done = (*w)->Publish(Sha256Digest(expected));
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_EQ(expected.size(), done->size);
}

TEST(BlobStoreTest, UnknownUploadAndLeftoverTemporaries) {
  TempDir dir;
  std::filesystem::create_directories(dir.File("r/uploads"));
  { std::ofstream(dir.File("r/uploads/put-1.tmp")) << "partial"; }
  auto store = BlobStore::Open(dir.File("r"));
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE(std::filesystem::exists(dir.File("r/uploads/put-1.tmp")));
  auto w = (*store)->OpenUpload("nope");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ("BLOB_UPLOAD_UNKNOWN", w.error().code);
  auto put = (*store)->Put("manifest bytes");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(Sha256Digest("manifest bytes"), *put);
  ASSERT_TRUE((*store)->Remove(*put).ok());
  EXPECT_FALSE((*store)->Stat(*put));
}

// --- the registry and its collector ---

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    RegistryOptions options;
    options.root = dir_.File("registry");
    options.gc_grace = hours(1);
    auto reg = Registry::Open(*store_, options);
    ASSERT_TRUE(reg.ok()) << reg.error().message;
    reg_ = std::move(*reg);
  }

  void CreateRepo(const std::string& name) {
    ASSERT_TRUE(reg_->CreateRepository(name, Json{{"imageTagMutability", "MUTABLE"}}).ok());
  }

  std::string PushBlob(const std::string& repo, const std::string& data) {
    auto id = reg_->StartUpload(repo);
    EXPECT_TRUE(id.ok());
    auto w = reg_->OpenUpload(repo, *id);
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE((*w)->Write(data.data(), data.size()).ok());
    auto done = reg_->CompleteUpload(repo, *id, **w, Sha256Digest(data));
    EXPECT_TRUE(done.ok());
    return Sha256Digest(data);
  }

  // Pushes the blobs (unless told not to) and an OCI manifest over them.
  Result<PutManifestResult> PushImage(const std::string& repo, const std::string& tag,
                                      const std::string& config, const std::string& layer,
                                      Surface surface = Surface::kOci) {
    PushBlob(repo, config);
    PushBlob(repo, layer);
    Json m = {{"schemaVersion", 2},
              {"mediaType", kOciManifest},
              {"config",
               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                {"digest", Sha256Digest(config)},
                {"size", config.size()}}},
              {"layers",
               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                 {"digest", Sha256Digest(layer)},
                 {"size", layer.size()}}}}};
    PutManifestRequest put;
    put.repository = repo;
    put.tag = tag;
    put.body = m.dump();
    put.media_type = std::string(kOciManifest);
    put.surface = surface;
    return reg_->PutManifest(put);
  }

  bool OnDisk(const std::string& data) {
    return reg_->blobs().Stat(Sha256Digest(data)).has_value();
  }

  GcStats Collect(system_clock::time_point when) {
    auto stats = reg_->CollectGarbage(when);
    EXPECT_TRUE(stats.ok());
    return stats.ok() ? *stats : GcStats{};
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Registry> reg_;
};

TEST_F(RegistryTest, CollectorKeepsWhatAnyManifestNeeds) {
  CreateRepo("a");
  CreateRepo("b");
  auto shared_a = PushImage("a", "s", "shared-config", "shared-layer");
  auto shared_b = PushImage("b", "s", "shared-config", "shared-layer");
  auto own = PushImage("a", "o", "own-config", "own-layer");
  ASSERT_TRUE(shared_a.ok() && shared_b.ok() && own.ok());
  EXPECT_EQ(shared_a->digest, shared_b->digest);
  // Each blob once: the shared image's two blobs and manifest, the other's three.
  EXPECT_EQ(6u, reg_->blobs().List().size());

  ASSERT_TRUE(reg_->DeleteManifest("a", own->digest).ok());
  ASSERT_TRUE(reg_->DeleteManifest("a", shared_a->digest).ok());
  auto now = system_clock::now();
  // Within the grace period nothing goes.
  GcStats early = Collect(now);
  EXPECT_EQ(0, early.blobs_removed);
  EXPECT_TRUE(OnDisk("own-layer"));

  GcStats later = Collect(now + hours(2));
  EXPECT_EQ(3, later.blobs_removed);  // own config, own layer, own manifest
  EXPECT_FALSE(OnDisk("own-layer"));
  EXPECT_FALSE(OnDisk("own-config"));
  EXPECT_TRUE(OnDisk("shared-layer"));
  EXPECT_TRUE(OnDisk("shared-config"));
  auto held = reg_->BlobSize("a", Sha256Digest("shared-layer"));
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(*held);  // a no longer holds it ...
  held = reg_->BlobSize("b", Sha256Digest("shared-layer"));
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(*held);  // ... b still does

  ASSERT_TRUE(reg_->DeleteRepository("b", true).ok());
  GcStats last = Collect(now + hours(3));
  EXPECT_EQ(3, last.blobs_removed);
  EXPECT_TRUE(reg_->blobs().List().empty());
}

TEST_F(RegistryTest, CollectorRemovesStaleUploadsOnly) {
  CreateRepo("up");
  auto id = reg_->StartUpload("up");
  ASSERT_TRUE(id.ok());
  {
    auto w = reg_->OpenUpload("up", *id);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("partial", 7).ok());
  }
  auto now = system_clock::now();
  EXPECT_EQ(0, Collect(now).uploads_removed);
  auto offset = reg_->UploadOffset("up", *id);
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(7u, *offset);
  EXPECT_EQ(1, Collect(now + hours(2)).uploads_removed);
  auto gone = reg_->UploadOffset("up", *id);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ("BLOB_UPLOAD_UNKNOWN", gone.error().code);
  EXPECT_TRUE(reg_->blobs().ListUploads().empty());
}

TEST_F(RegistryTest, LifecycleAgeRuleUsesTheCollectorsClock) {
  CreateRepo("life");
  auto old_image = PushImage("life", "old", "c1", "l1");
  ASSERT_TRUE(old_image.ok());
  ASSERT_TRUE(
      reg_->PutLifecyclePolicy("life", PolicyText({Rule(1, Selection("any", "sinceImagePushed", 5,
                                                                     R"({"countUnit":"days"})"))}))
          .ok());
  auto now = system_clock::now();
  EXPECT_EQ(0, Collect(now + hours(24)).images_expired);
  EXPECT_EQ(1, Collect(now + hours(24 * 6)).images_expired);
  auto images = reg_->ListImages("life");
  ASSERT_TRUE(images.ok());
  EXPECT_TRUE(images->empty());
  auto policy = reg_->GetLifecyclePolicy("life");
  ASSERT_TRUE(policy.ok() && policy->has_value());
  EXPECT_GT((*policy)->second, 0);
}

TEST_F(RegistryTest, ManifestNeedsEveryBlobAndTagRulesDifferBySurface) {
  CreateRepo("m");
  PushBlob("m", "layer-only");
  Json m = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifest},
      {"config", {{"mediaType", "x"}, {"digest", Sha256Digest("cfg")}, {"size", 3}}},
      {"layers", {{{"mediaType", "y"}, {"digest", Sha256Digest("layer-only")}, {"size", 10}}}}};
  PutManifestRequest put{"m", "t", "", m.dump(), "", Surface::kOci};
  auto refused = reg_->PutManifest(put);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ("MANIFEST_BLOB_UNKNOWN", refused.error().code);
  EXPECT_THAT(refused.error().detail, HasSubstr(Sha256Digest("cfg")));
  put.surface = Surface::kEcr;
  refused = reg_->PutManifest(put);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ("LayersNotFoundException", refused.error().code);
  auto tag = reg_->ResolveTag("m", "t");
  ASSERT_TRUE(tag.ok());
  EXPECT_FALSE(*tag);

  auto first = PushImage("m", "same", "c", "l", Surface::kEcr);
  ASSERT_TRUE(first.ok());
  auto ecr_again = PushImage("m", "same", "c", "l", Surface::kEcr);
  ASSERT_FALSE(ecr_again.ok());
  EXPECT_EQ("ImageAlreadyExistsException", ecr_again.error().code);
  auto oci_again = PushImage("m", "same", "c", "l", Surface::kOci);
  EXPECT_TRUE(oci_again.ok());  // idempotent on the registry side of a mutable repository

  ASSERT_TRUE(reg_->UpdateRepository("m",
                                     [](Json& d) {
                                       d["imageTagMutability"] = "IMMUTABLE";
                                       return Ok();
                                     })
                  .ok());
  auto moved = PushImage("m", "same", "c2", "l2", Surface::kEcr);
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ("ImageTagAlreadyExistsException", moved.error().code);
  auto oci_moved = PushImage("m", "same", "c2", "l2", Surface::kOci);
  ASSERT_FALSE(oci_moved.ok());
  EXPECT_EQ("TAG_INVALID", oci_moved.error().code);
}

}  // namespace
}  // namespace berth::registry
