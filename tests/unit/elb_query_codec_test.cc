#include "elb/query_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "elb/matching.h"
#include "elb/response_head.h"

namespace berth::elb {
namespace {

using ::testing::HasSubstr;

const api::Model& Elbv2() { return api::Model::Get("elbv2"); }

TEST(QueryCodecTest, DecodesScalarsStructuresAndMemberLists) {
  std::multimap<std::string, std::string> params = {
      {"Name", "web"},
      {"Protocol", "HTTP"},
      {"Port", "8080"},
      {"HealthCheckEnabled", "false"},
      {"Matcher.HttpCode", "200-299"},
      {"Tags.member.1.Key", "team"},
      {"Tags.member.1.Value", "a"},
      {"Tags.member.2.Key", "env"},
      {"Unknown.Member", "ignored"},
  };
  auto in = DecodeQueryInput(Elbv2(), "CreateTargetGroup", params);
  ASSERT_TRUE(in.ok()) << in.error().message;
  EXPECT_EQ(Json::parse(R"({"Name":"web","Protocol":"HTTP","Port":8080,
      "HealthCheckEnabled":false,"Matcher":{"HttpCode":"200-299"},
      "Tags":[{"Key":"team","Value":"a"},{"Key":"env"}]})"),
            *in);
}

TEST(QueryCodecTest, DecodesListsPastNineMembersInOrder) {
  std::multimap<std::string, std::string> params;
  for (int i = 1; i <= 11; ++i) {
    params.emplace("Targets.member." + std::to_string(i) + ".Id", "10.0.0." + std::to_string(i));
    params.emplace("Targets.member." + std::to_string(i) + ".Port", std::to_string(8000 + i));
  }
  params.emplace("TargetGroupArn", "arn");
  auto in = DecodeQueryInput(Elbv2(), "RegisterTargets", params);
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(11u, in->at("Targets").size());
  EXPECT_EQ("10.0.0.10", in->at("Targets")[9].at("Id"));
  EXPECT_EQ(8011, in->at("Targets")[10].at("Port"));
}

TEST(QueryCodecTest, DecodesAnEmptyListFromABareName) {
  auto in = DecodeQueryInput(Elbv2(), "DescribeLoadBalancers", {{"Names", ""}});
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(Json::parse(R"({"Names":[]})"), *in);
}

TEST(QueryCodecTest, RefusesAnIntegerThatDoesNotParse) {
  auto in = DecodeQueryInput(Elbv2(), "CreateTargetGroup", {{"Name", "x"}, {"Port", "80a"}});
  ASSERT_FALSE(in.ok());
  EXPECT_EQ("ValidationError", in.error().code);
  EXPECT_THAT(in.error().message, HasSubstr("'80a'"));
}

TEST(QueryCodecTest, ValidatesRangesLikeAws) {
  Status st = ValidateQueryInput(Elbv2(), "CreateTargetGroup",
                                 Json::parse(R"({"Name":"x","HealthCheckIntervalSeconds":301})"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ("ValidationError", st.error().code);
  EXPECT_EQ(
      "1 validation error detected: Value '301' at 'healthCheckIntervalSeconds' failed to "
      "satisfy constraint: Member must have value less than or equal to 300",
      st.error().message);
}

TEST(QueryCodecTest, ListsEveryViolationAndMissingMembers) {
  Status st = ValidateQueryInput(
      Elbv2(), "RegisterTargets",
      Json::parse(R"({"Targets":[{"Id":"10.0.0.1","Port":0}]})"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(
      "2 validation errors detected: Value null at 'targetGroupArn' failed to satisfy "
      "constraint: Member must not be null; Value '0' at 'targets.1.member.port' failed to "
      "satisfy constraint: Member must have value greater than or equal to 1",
      st.error().message);
}

TEST(QueryCodecTest, ValidatesEnums) {
  Status st = ValidateQueryInput(Elbv2(), "CreateTargetGroup",
                                 Json::parse(R"({"Name":"x","TargetType":"container"})"));
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message,
              HasSubstr("Member must satisfy enum value set: [instance, ip, lambda, alb]"));
}

TEST(QueryCodecTest, EncodesResultsWithMembersBooleansAndTimestamps) {
  Json out = {{"LoadBalancers",
               {{{"LoadBalancerName", "web"},
                 {"CreatedTime", 1767225600.5},
                 {"State", {{"Code", "active"}}},
                 {"SecurityGroups", Json::array()},
                 {"AvailabilityZones", {{{"ZoneName", "us-east-1a"}}}}}}}};
  std::string xml = EncodeQueryResponse(Elbv2(), "DescribeLoadBalancers", out, "req-1");
  EXPECT_THAT(xml, HasSubstr("<DescribeLoadBalancersResponse xmlns=\"http://"
                             "elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">"
                             "<DescribeLoadBalancersResult><LoadBalancers><member>"));
  EXPECT_THAT(xml, HasSubstr("<CreatedTime>2026-01-01T00:00:00.500Z</CreatedTime>"));
  EXPECT_THAT(xml, HasSubstr("<State><Code>active</Code></State>"));
  EXPECT_THAT(xml, HasSubstr("<SecurityGroups/>"));
  EXPECT_THAT(xml, HasSubstr("<AvailabilityZones><member><ZoneName>us-east-1a</ZoneName>"
                             "</member></AvailabilityZones>"));
  EXPECT_THAT(xml, HasSubstr("<ResponseMetadata><RequestId>req-1</RequestId>"
                             "</ResponseMetadata></DescribeLoadBalancersResponse>"));

  Json tg = {{"TargetGroups", {{{"HealthCheckEnabled", true}, {"Port", 80}}}}};
  xml = EncodeQueryResponse(Elbv2(), "DescribeTargetGroups", tg, "r");
  EXPECT_THAT(xml, HasSubstr("<HealthCheckEnabled>true</HealthCheckEnabled>"));
  EXPECT_THAT(xml, HasSubstr("<Port>80</Port>"));
}

TEST(QueryCodecTest, EncodesAnEmptyResult) {
  EXPECT_EQ(
      "<DeleteLoadBalancerResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/"
      "2015-12-01/\"><DeleteLoadBalancerResult/><ResponseMetadata><RequestId>r</RequestId>"
      "</ResponseMetadata></DeleteLoadBalancerResponse>",
      EncodeQueryResponse(Elbv2(), "DeleteLoadBalancer", Json::object(), "r"));
}

TEST(QueryCodecTest, EncodesErrorsWithTypeCodeAndMessage) {
  EXPECT_EQ(
      "<ErrorResponse xmlns=\"ns\"><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code>"
      "<Message>One or more &lt;target&gt; groups &amp; more</Message></Error>"
      "<RequestId>id</RequestId></ErrorResponse>",
      EncodeQueryError(ClientError("TargetGroupNotFound", "One or more <target> groups & more"),
                       "ns", "id"));
  EXPECT_THAT(EncodeQueryError(Error{500, "InternalFailure", "x", {}}, "ns", "id"),
              HasSubstr("<Type>Receiver</Type>"));
}

TEST(MatchingTest, GlobsMatchStarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("/api/*", "/api/", false));
  EXPECT_TRUE(GlobMatch("/api/*", "/api/v1/users", false));
  EXPECT_FALSE(GlobMatch("/api/*", "/api", false));
  EXPECT_TRUE(GlobMatch("/img/*.png", "/img/a/b.png", false));
  EXPECT_FALSE(GlobMatch("/img/*.png", "/img/a/b.jpg", false));
  EXPECT_TRUE(GlobMatch("/v?/x", "/v2/x", false));
  EXPECT_FALSE(GlobMatch("/v?/x", "/v10/x", false));
  EXPECT_FALSE(GlobMatch("/API/*", "/api/x", false));
  EXPECT_TRUE(GlobMatch("*.Example.com", "www.example.COM", true));
  EXPECT_TRUE(GlobMatch("*", "", false));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXbYbZc", false));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXbYbZ", false));
}

TEST(MatchingTest, ParsesHealthCheckMatchers) {
  auto codes = ParseHttpCodes("200,202,300-310");
  ASSERT_TRUE(codes.ok());
  EXPECT_TRUE(CodeMatches(*codes, 200));
  EXPECT_TRUE(CodeMatches(*codes, 202));
  EXPECT_FALSE(CodeMatches(*codes, 201));
  EXPECT_TRUE(CodeMatches(*codes, 305));
  EXPECT_FALSE(CodeMatches(*codes, 311));
  EXPECT_FALSE(ParseHttpCodes("600").ok());
  EXPECT_FALSE(ParseHttpCodes("299-200").ok());
  EXPECT_FALSE(ParseHttpCodes("").ok());
  EXPECT_FALSE(ParseHttpCodes("200,").ok());
  EXPECT_EQ("ValidationError", ParseHttpCodes("abc").error().code);
}

}  // namespace
}  // namespace berth::elb

namespace berth::elb {
namespace {

TEST(ResponseHeadTest, ReadsAKeptAliveHeadWithALength) {
  std::string raw =
      "HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
  ResponseHead head;
  ASSERT_EQ(HeadParse::kDone, ParseResponseHead(raw, 65536, head));
  EXPECT_EQ(raw.size() - 5, head.size);
  EXPECT_EQ(200, head.status);
  EXPECT_EQ(11, head.version);
  EXPECT_TRUE(head.has_content_length);
  EXPECT_EQ(5u, head.content_length);
  EXPECT_TRUE(head.connection_keep_alive);
  EXPECT_FALSE(head.connection_close);
  EXPECT_TRUE(head.passes_as_is);
}

TEST(ResponseHeadTest, MarksHeadsWithHopByHopFieldsForRewriting) {
  std::string raw =
      "HTTP/1.0 404 Not Found\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n"
      "Connection: close\r\nX-A: 1\r\n\r\n";
  ResponseHead head;
  ASSERT_EQ(HeadParse::kDone, ParseResponseHead(raw, 65536, head));
  EXPECT_EQ(10, head.version);
  EXPECT_TRUE(head.connection_close);
  EXPECT_FALSE(head.passes_as_is);
  std::string out;
  AppendEndToEnd(std::string_view(raw).substr(0, head.size), out);
  EXPECT_EQ("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nX-A: 1\r\n", out);
}

TEST(ResponseHeadTest, LeavesOtherFramingsToTheFullParser) {
  ResponseHead head;
  EXPECT_EQ(HeadParse::kNeedMore,
            ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", 65536, head));
  EXPECT_EQ(HeadParse::kUnsupported,
            ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 65536,
                              head));
  EXPECT_EQ(HeadParse::kUnsupported, ParseResponseHead("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", 65536,
                                                       head));
  EXPECT_EQ(HeadParse::kUnsupported,
            ParseResponseHead("HTTP/1.1 100 Continue\r\n\r\n", 65536, head));
  EXPECT_EQ(HeadParse::kUnsupported,
            ParseResponseHead("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", 65536,
                              head));
  EXPECT_EQ(HeadParse::kDone, ParseResponseHead("HTTP/1.1 204 No Content\r\n\r\n", 65536, head));
}

TEST(ResponseHeadTest, RefusesMalformedHeads) {
  ResponseHead head;
  EXPECT_EQ(HeadParse::kInvalid, ParseResponseHead("HTTP/2 200 OK\r\n\r\n", 65536, head));
  EXPECT_EQ(HeadParse::kInvalid,
            ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                              65536, head));
  EXPECT_EQ(HeadParse::kInvalid,
            ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 65536, head));
  EXPECT_EQ(HeadParse::kInvalid,
            ParseResponseHead("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 65536, head));
  EXPECT_EQ(HeadParse::kInvalid,
            ParseResponseHead("HTTP/1.1 200 OK\r\nX: " + std::string(100, 'a'), 64, head));
}

}  // namespace
}  // namespace berth::elb
