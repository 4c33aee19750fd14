#include "api/model.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace berth::api {
namespace {

using Json = nlohmann::json;

Json PutLogEvents(Json events) {
  return Json{{"logGroupName", "g"}, {"logStreamName", "s"}, {"logEvents", std::move(events)}};
}

TEST(ModelTest, AcceptsConformingInputAndIgnoresUnknownMembers) {
  const Model& logs = Model::Get("logs");
  Json events = Json::array();
  for (int i = 0; i < 1000; ++i) {
    events.push_back({{"timestamp", 1700000000000 + i}, {"message", "line"}});
  }
  Json in = PutLogEvents(events);
  in["sequenceToken"] = "0001";
  in["someFutureMember"] = {{"x", 1}};
  EXPECT_TRUE(logs.ValidateInput("PutLogEvents", in, "InvalidParameterException").ok());
}

TEST(ModelTest, MissingRequiredMemberDeepInAListNamesItsPath) {
  Status st = Model::Get("logs").ValidateInput(
      "PutLogEvents",
      PutLogEvents(Json::array({{{"timestamp", 1}, {"message", "a"}}, {{"timestamp", 2}}})),
      "InvalidParameterException");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "InvalidParameterException");
  EXPECT_EQ(st.error().message,
            "1 validation error detected: Value null at 'logEvents.2.member.message' failed to "
            "satisfy constraint: Member must not be null");
}

TEST(ModelTest, MissingTopLevelMemberUsesTheGivenCode) {
  Status st = Model::Get("logs").ValidateInput("PutLogEvents", Json{{"logGroupName", "g"}},
                                               "ValidationException");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "ValidationException");
  EXPECT_NE(st.error().message.find("'logStreamName'"), std::string::npos);
}

TEST(ModelTest, WrongTypesAreSerializationExceptionsWithTheirPath) {
  const Model& logs = Model::Get("logs");
  Status st = logs.ValidateInput(
      "PutLogEvents", PutLogEvents(Json::array({{{"timestamp", "soon"}, {"message", "a"}}})),
      "InvalidParameterException");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "SerializationException");
  EXPECT_EQ(st.error().message,
            "STRING_VALUE can not be converted to Long at 'logEvents.1.member.timestamp'");

  st = logs.ValidateInput("PutLogEvents", PutLogEvents(Json{{"a", 1}}), "X");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "START_OBJECT can not be converted to a list at 'logEvents'");
}

TEST(ModelTest, MapValuesAndBooleansAreChecked) {
  const Model& ecs = Model::Get("ecs");
  Json def = {{"family", "f"},
              {"containerDefinitions", Json::array({{{"name", "app"},
                                                     {"image", "busybox"},
                                                     {"essential", true},
                                                     {"dockerLabels", {{"team", "core"}}}}})}};
  EXPECT_TRUE(ecs.ValidateInput("RegisterTaskDefinition", def, "ClientException").ok());

  Json bad_label = def;
  bad_label["containerDefinitions"][0]["dockerLabels"]["tier"] = 3;
  Status st = ecs.ValidateInput("RegisterTaskDefinition", bad_label, "ClientException");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "NUMBER_VALUE can not be converted to String at "
            "'containerDefinitions.1.member.dockerLabels.tier'");

  Json bad_bool = def;
  bad_bool["containerDefinitions"][0]["essential"] = "yes";
  st = ecs.ValidateInput("RegisterTaskDefinition", bad_bool, "ClientException");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "STRING_VALUE can not be converted to Boolean at 'containerDefinitions.1.member."
            "essential'");
}

TEST(ModelTest, UnknownOperation) {
  Status st = Model::Get("logs").ValidateInput("NoSuchThing", Json::object(), "X");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "UnknownOperationException");
}

}  // namespace
}  // namespace berth::api
