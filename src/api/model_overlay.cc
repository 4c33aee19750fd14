#include "api/model_overlay.h"

namespace berth::api {

namespace {

// ECS DeleteTaskDefinitions (API reference, ecs-2014-11-13).
constexpr std::string_view kEcsOverlay = R"json({
  "operations": {
    "DeleteTaskDefinitions": {
      "name": "DeleteTaskDefinitions",
      "http": {"method": "POST", "requestUri": "/"},
      "input": {"shape": "DeleteTaskDefinitionsRequest"},
      "output": {"shape": "DeleteTaskDefinitionsResponse"},
      "errors": [{"shape": "AccessDeniedException"}, {"shape": "ClientException"},
                 {"shape": "InvalidParameterException"}, {"shape": "ServerException"}]
    }
  },
  "shapes": {
    "DeleteTaskDefinitionsRequest": {
      "type": "structure",
      "required": ["taskDefinitions"],
      "members": {"taskDefinitions": {"shape": "StringList"}}
    },
    "DeleteTaskDefinitionsResponse": {
      "type": "structure",
      "members": {
        "taskDefinitions": {"shape": "TaskDefinitionList"},
        "failures": {"shape": "Failures"}
      }
    },
    "TaskDefinitionList": {"type": "list", "member": {"shape": "TaskDefinition"}}
  }
})json";

}  // namespace

nlohmann::json ModelOverlay(std::string_view service) {
  if (service == "ecs") {
    return nlohmann::json::parse(kEcsOverlay);
  }
  return nlohmann::json::object();
}

}  // namespace berth::api
