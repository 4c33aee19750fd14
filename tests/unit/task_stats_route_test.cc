// The signed task stats endpoint berthd serves for `berth stats`.
#include "server/task_stats_route.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace berth {
namespace {

using nlohmann::json;

constexpr const char* kKey = "AKIATESTTESTTESTTEST";
constexpr const char* kSecret = "secretsecretsecretsecretsecretsecret0000";
constexpr const char* kTask = "0123456789abcdef0123456789abcdef";

class TaskStatsRouteTest : public ::testing::Test {
 protected:
  TaskStatsRouteTest() {
    auto keys = std::make_shared<api::KeyRing>();
    keys->Add(kKey, kSecret);
    route_ = std::make_unique<TaskStatsRoute>(keys, "us-east-1");
  }

  http::Request Get(const std::string& path, const std::string& service = "ecs",
                    const std::string& region = "us-east-1", bool sign = true) {
    http::Request r;
    r.method = "GET";
    r.path = path;
    r.raw_path = path;
    r.headers["Host"] = "127.0.0.1:4566";
    if (sign) {
      api::SignSigV4(r, kKey, kSecret, region, service);
    }
    return r;
  }

  std::unique_ptr<TaskStatsRoute> route_;
};

TEST_F(TaskStatsRouteTest, MatchesOnlyTaskPaths) {
  EXPECT_TRUE(route_->Matches(Get("/_berth/tasks/x/stats", "ecs", "us-east-1", false)));
  EXPECT_FALSE(route_->Matches(Get("/_berth/health", "ecs", "us-east-1", false)));
}

TEST_F(TaskStatsRouteTest, AnswersTheSourcesStatsForASignedRequest) {
  std::string asked;
  route_->SetSource([&](const std::string& id) -> std::optional<json> {
    asked = id;
    return json{{"memory_stats", {{"usage", 1234}}}};
  });
  auto req = Get(std::string("/_berth/tasks/") + kTask + "/stats");
  http::Response r = route_->Serve(req, nullptr);
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(kTask, asked);
  json body = json::parse(r.body);
  EXPECT_EQ(kTask, body["taskId"]);
  EXPECT_EQ(1234, body["task"]["memory_stats"]["usage"]);
  EXPECT_GT(body["read"].get<double>(), 1.6e9);
}

TEST_F(TaskStatsRouteTest, UnknownTaskIsNotFound) {
  route_->SetSource([](const std::string&) { return std::optional<json>(); });
  auto req = Get(std::string("/_berth/tasks/") + kTask + "/stats");
  http::Response r = route_->Serve(req, nullptr);
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("TaskNotFoundException", json::parse(r.body)["__type"]);
}

TEST_F(TaskStatsRouteTest, WithoutAgentIsUnavailable) {
  auto req = Get(std::string("/_berth/tasks/") + kTask + "/stats");
  http::Response r = route_->Serve(req, nullptr);
  EXPECT_EQ(503, r.status);
  EXPECT_EQ("ServiceUnavailableException", json::parse(r.body)["__type"]);
}

TEST_F(TaskStatsRouteTest, UnsignedRequestIsRefused) {
  route_->SetSource([](const std::string&) { return std::optional<json>(json::object()); });
  auto req = Get(std::string("/_berth/tasks/") + kTask + "/stats", "ecs", "us-east-1", false);
  http::Response r = route_->Serve(req, nullptr);
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("MissingAuthenticationTokenException", json::parse(r.body)["__type"]);
}

TEST_F(TaskStatsRouteTest, WrongServiceOrRegionIsRefused) {
  route_->SetSource([](const std::string&) { return std::optional<json>(json::object()); });
  auto logs = Get(std::string("/_berth/tasks/") + kTask + "/stats", "logs");
  EXPECT_EQ("InvalidSignatureException", json::parse(route_->Serve(logs, nullptr).body)["__type"]);
  auto west = Get(std::string("/_berth/tasks/") + kTask + "/stats", "ecs", "eu-west-1");
  EXPECT_EQ("InvalidSignatureException", json::parse(route_->Serve(west, nullptr).body)["__type"]);
}

TEST_F(TaskStatsRouteTest, OtherPathsAndMethodsAreRefused) {
  route_->SetSource([](const std::string&) { return std::optional<json>(json::object()); });
  auto other = Get(std::string("/_berth/tasks/") + kTask + "/metadata");
  EXPECT_EQ(404, route_->Serve(other, nullptr).status);
  auto bad_id = Get("/_berth/tasks/..%2f/stats");
  EXPECT_EQ(404, route_->Serve(bad_id, nullptr).status);
  auto post = Get(std::string("/_berth/tasks/") + kTask + "/stats");
  post.method = "POST";
  EXPECT_EQ(405, route_->Serve(post, nullptr).status);
}

}  // namespace
}  // namespace berth
