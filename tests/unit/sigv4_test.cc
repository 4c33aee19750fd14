// SigV4 against AWS's published examples, and the verifier's refusals.
#include "api/sigv4.h"

#include <gtest/gtest.h>

namespace berth::api {
namespace {

using std::chrono::system_clock;

system_clock::time_point At(int64_t epoch) { return system_clock::from_time_t(epoch); }

// 2015-08-30T12:36:00Z, the date of AWS's examples.
constexpr int64_t kExampleTime = 1440938160;
const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

http::Request Vanilla(const std::string& method) {
  http::Request r;
  r.method = method;
  r.raw_path = "/";
  r.path = "/";
  r.headers["Host"] = "example.amazonaws.com";
  r.headers["X-Amz-Date"] = "20150830T123600Z";
  return r;
}

TEST(SigV4Test, DerivedKeyMatchesAwsExample) {
  EXPECT_EQ(Hex(DeriveSigningKey(kSecret, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

TEST(SigV4Test, IamListUsersExample) {
  http::Request r;
  r.method = "GET";
  r.raw_path = "/";
  r.raw_query = "Action=ListUsers&Version=2010-05-08";
  r.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8";
  r.headers["Host"] = "iam.amazonaws.com";
  r.headers["X-Amz-Date"] = "20150830T123600Z";
  std::string canonical =
      CanonicalRequest(r, {"content-type", "host", "x-amz-date"}, Sha256Hex(""));
  EXPECT_EQ(Sha256Hex(canonical),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  r.headers["Authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date, "
      "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
  KeyRing keys;
  keys.Add("AKIDEXAMPLE", kSecret);
  VerifyOptions opts;
  opts.now = At(kExampleTime + 60);
  auto id = VerifySigV4(r, keys, opts);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(id->region, "us-east-1");
  EXPECT_EQ(id->service, "iam");
}

TEST(SigV4Test, TestSuiteGetVanilla) {
  http::Request r = Vanilla("GET");
  r.headers["Authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, "
      "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
  KeyRing keys;
  keys.Add("AKIDEXAMPLE", kSecret);
  VerifyOptions opts;
  opts.now = At(kExampleTime);
  auto id = VerifySigV4(r, keys, opts);
  EXPECT_TRUE(id.ok()) << id.error().message;
}

TEST(SigV4Test, SignThenVerifyRoundTrip) {
  http::Request r = Vanilla("POST");
  r.headers.erase("X-Amz-Date");
  r.headers["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.ListClusters";
  r.headers["Content-Type"] = "application/x-amz-json-1.1";
  r.body = "{}";
  SignSigV4(r, "AKIDEXAMPLE", kSecret, "us-east-1", "ecs", At(kExampleTime));
  KeyRing keys;
  keys.Add("AKIDEXAMPLE", kSecret);
  VerifyOptions opts;
  opts.now = At(kExampleTime + 5);
  ASSERT_TRUE(VerifySigV4(r, keys, opts).ok());

  // Any change to what was signed breaks the signature.
  http::Request tampered = r;
  tampered.body = "{\"maxResults\":1}";
  auto bad = VerifySigV4(tampered, keys, opts);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "InvalidSignatureException");
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().message,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.");
}

TEST(SigV4Test, RefusesMissingUnknownAndExpired) {
  KeyRing keys;
  keys.Add("AKIDEXAMPLE", kSecret);
  VerifyOptions opts;
  opts.now = At(kExampleTime);

  http::Request unsigned_req = Vanilla("POST");
  auto missing = VerifySigV4(unsigned_req, keys, opts);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "MissingAuthenticationTokenException");
  EXPECT_EQ(missing.error().message, "Missing Authentication Token");

  http::Request r = Vanilla("POST");
  r.headers.erase("X-Amz-Date");
  SignSigV4(r, "AKIDOTHER", kSecret, "us-east-1", "ecs", At(kExampleTime));
  auto unknown = VerifySigV4(r, keys, opts);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "UnrecognizedClientException");
  EXPECT_EQ(unknown.error().message, "The security token included in the request is invalid.");

  http::Request old = Vanilla("POST");
  old.headers.erase("X-Amz-Date");
  SignSigV4(old, "AKIDEXAMPLE", kSecret, "us-east-1", "ecs", At(kExampleTime - 16 * 60));
  auto expired = VerifySigV4(old, keys, opts);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().code, "InvalidSignatureException");
  EXPECT_EQ(expired.error().message,
            "Signature expired: 20150830T122000Z is now earlier than 20150830T122100Z "
            "(20150830T123600Z - 15 min.)");

  opts.style = AuthErrorStyle::kQuery;
  auto query = VerifySigV4(unsigned_req, keys, opts);
  EXPECT_EQ(query.error().code, "MissingAuthenticationToken");
  EXPECT_EQ(query.error().status, 403);
}

TEST(SigV4Test, UriEncoding) {
  EXPECT_EQ(UriEncode("a b/c~d", true), "a%20b/c~d");
  EXPECT_EQ(UriEncode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(UriEncode("%41", true), "%2541");
}

}  // namespace
}  // namespace berth::api
