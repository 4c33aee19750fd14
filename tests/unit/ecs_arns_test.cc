// SPDX-License-Identifier: Apache-2.0
#include "ecs/arns.h"

#include <gtest/gtest.h>

namespace berth::ecs {
namespace {

TEST(EcsArnTest, SplitsResourceTypeAndId) {
  auto arn = ParseEcsArn("arn:aws:ecs:us-east-1:123456789012:service/prod/web");

  ASSERT_TRUE(arn.has_value());
  EXPECT_EQ("us-east-1", arn->region);
  EXPECT_EQ("123456789012", arn->account);
  EXPECT_EQ("service", arn->resource_type);
  EXPECT_EQ("prod/web", arn->resource_id);
}

TEST(EcsArnTest, RejectsOtherServicesAndMalformedArns) {
  EXPECT_FALSE(ParseEcsArn("arn:aws:ecr:us-east-1:123456789012:repository/x").has_value());
  EXPECT_FALSE(ParseEcsArn("arn:aws:ecs:us-east-1:123456789012:cluster").has_value());
  EXPECT_FALSE(ParseEcsArn("arn:aws:ecs:us-east-1").has_value());
  EXPECT_FALSE(ParseEcsArn("cluster/x").has_value());
}

TEST(TaskRefTest, ReadsIdsAndBothArnForms) {
  std::string id = "0123456789abcdef0123456789abcdef";

  auto bare = ParseTaskRef(id);
  auto long_arn = ParseTaskRef("arn:aws:ecs:us-east-1:000000000000:task/prod/" + id);
  auto short_arn = ParseTaskRef("arn:aws:ecs:us-east-1:000000000000:task/" + id);

  ASSERT_TRUE(bare && long_arn && short_arn);
  EXPECT_EQ(id, bare->id);
  EXPECT_EQ("", bare->cluster);
  EXPECT_EQ("prod", long_arn->cluster);
  EXPECT_EQ(id, long_arn->id);
  EXPECT_EQ("", short_arn->cluster);
  EXPECT_EQ(id, short_arn->id);
}

TEST(TaskRefTest, RejectsWhatIsNotATask) {
  EXPECT_FALSE(ParseTaskRef("not-a-task").has_value());
  EXPECT_FALSE(ParseTaskRef("0123456789abcdef").has_value());
  EXPECT_FALSE(ParseTaskRef("arn:aws:ecs:us-east-1:000000000000:cluster/prod").has_value());
}

TEST(TaskDefinitionRefTest, ReadsFamilyRevisionAndArn) {
  auto family = ParseTaskDefinitionRef("web");
  auto revision = ParseTaskDefinitionRef("web:12");
  auto arn = ParseTaskDefinitionRef("arn:aws:ecs:us-east-1:000000000000:task-definition/web:3");

  ASSERT_TRUE(family && revision && arn);
  EXPECT_EQ("web", family->family);
  EXPECT_EQ(0, family->revision);
  EXPECT_EQ(12, revision->revision);
  EXPECT_EQ("web", arn->family);
  EXPECT_EQ(3, arn->revision);
}

TEST(TaskDefinitionRefTest, RejectsBadFamiliesAndRevisions) {
  EXPECT_FALSE(ParseTaskDefinitionRef("").has_value());
  EXPECT_FALSE(ParseTaskDefinitionRef("web:0").has_value());
  EXPECT_FALSE(ParseTaskDefinitionRef("web:").has_value());
  EXPECT_FALSE(ParseTaskDefinitionRef("web:1a").has_value());
  EXPECT_FALSE(ParseTaskDefinitionRef("we b").has_value());
  EXPECT_FALSE(ParseTaskDefinitionRef("arn:aws:ecs:us-east-1:0:cluster/web").has_value());
}

TEST(EcsNameTest, AllowsLettersDigitsHyphensUnderscoresUpTo255) {
  EXPECT_TRUE(IsEcsName("My_service-1"));
  EXPECT_TRUE(IsEcsName(std::string(255, 'a')));
  EXPECT_FALSE(IsEcsName(std::string(256, 'a')));
  EXPECT_FALSE(IsEcsName("a.b"));
  EXPECT_FALSE(IsEcsName(""));
}

}  // namespace
}  // namespace berth::ecs
