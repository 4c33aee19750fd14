// SPDX-License-Identifier: Apache-2.0
#include "ecs/taskdef.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace berth::ecs {
namespace {

// A minimal valid Fargate request: one busybox container, 0.25 vCPU / 512 MiB.
Json FargateRequest() {
  return Json{{"family", "web"},
              {"requiresCompatibilities", {"FARGATE"}},
              {"networkMode", "awsvpc"},
              {"cpu", "256"},
              {"memory", "512"},
              {"containerDefinitions", {{{"name", "app"}, {"image", "busybox"}}}}};
}

// A minimal valid EC2 (bridge) request with container-level memory.
Json Ec2Request() {
  return Json{{"family", "web"},
              {"containerDefinitions", {{{"name", "app"}, {"image", "busybox"}, {"memory", 128}}}}};
}

Json& App(Json& request) {
  return request["containerDefinitions"][0];
}

// Expects a ClientException (HTTP 400) with exactly `message`.
void ExpectClientError(const Json& request, const std::string& message) {
  Result<Json> result = NormalizeTaskDefinition(request);
  ASSERT_FALSE(result.ok()) << result->dump();
  EXPECT_EQ(400, result.error().status);
  EXPECT_EQ("ClientException", result.error().code);
  EXPECT_EQ(message, result.error().message);
}

Json Normalize(const Json& request) {
  Result<Json> result = NormalizeTaskDefinition(request);
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? *result : Json();
}

// ---------------------------------------------------------------------------------------------
// Task size parsing and the Fargate table.

TEST(ParseTaskCpuTest, AcceptsUnitsAndVcpuStrings) {
  EXPECT_EQ(1024, *ParseTaskCpu("1024"));
  EXPECT_EQ(1024, *ParseTaskCpu("1 vCPU"));
  EXPECT_EQ(1024, *ParseTaskCpu("1 vcpu"));
  EXPECT_EQ(256, *ParseTaskCpu("0.25 vCPU"));
  EXPECT_EQ(512, *ParseTaskCpu(".5vCPU"));
  EXPECT_EQ(4096, *ParseTaskCpu(" 4 VCPU "));
}

TEST(ParseTaskCpuTest, RejectsMalformedValues) {
  for (const char* text : {"", "abc", "0", "1.5", "1 cpu", "-256", "0.0001 vCPU", "1 vCPU x"}) {
    Result<int> result = ParseTaskCpu(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ("ClientException", result.error().code);
    EXPECT_EQ("Invalid 'cpu' setting for task.", result.error().message);
  }
}

TEST(ParseTaskMemoryTest, AcceptsMibAndGbStrings) {
  EXPECT_EQ(2048, *ParseTaskMemory("2048"));
  EXPECT_EQ(2048, *ParseTaskMemory("2GB"));
  EXPECT_EQ(2048, *ParseTaskMemory("2 GB"));
  EXPECT_EQ(512, *ParseTaskMemory("0.5 GB"));
  EXPECT_EQ(1024, *ParseTaskMemory("1 GiB"));
  EXPECT_EQ(512, *ParseTaskMemory("512 MiB"));
  EXPECT_EQ(512, *ParseTaskMemory("512 mb"));
}

TEST(ParseTaskMemoryTest, RejectsMalformedValues) {
  for (const char* text : {"", "lots", "0", "2 TB", "0.0001 GB", "2.5"}) {
    Result<int> result = ParseTaskMemory(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ("Invalid 'memory' setting for task.", result.error().message);
  }
}

TEST(FargateSizeTest, HasSeventyFourValidPairs) {
  int valid = 0;
  for (int cpu : {128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768}) {
    for (int memory = 256; memory <= 131072; memory += 256) {
      valid += IsValidFargateSize(cpu, memory) ? 1 : 0;
    }
  }
  EXPECT_EQ(74, valid);
}

TEST(FargateSizeTest, MatchesTableEdges) {
  EXPECT_TRUE(IsValidFargateSize(256, 512));
  EXPECT_TRUE(IsValidFargateSize(256, 2048));
  EXPECT_FALSE(IsValidFargateSize(256, 1536));
  EXPECT_FALSE(IsValidFargateSize(256, 4096));
  EXPECT_FALSE(IsValidFargateSize(512, 512));
  EXPECT_TRUE(IsValidFargateSize(512, 4096));
  EXPECT_TRUE(IsValidFargateSize(1024, 8192));
  EXPECT_FALSE(IsValidFargateSize(1024, 9216));
  EXPECT_TRUE(IsValidFargateSize(2048, 16384));
  EXPECT_TRUE(IsValidFargateSize(4096, 30720));
  EXPECT_FALSE(IsValidFargateSize(4096, 2048));
  EXPECT_TRUE(IsValidFargateSize(8192, 20480));
  EXPECT_FALSE(IsValidFargateSize(8192, 17408));
  EXPECT_TRUE(IsValidFargateSize(16384, 122880));
  EXPECT_FALSE(IsValidFargateSize(16384, 36864));
  EXPECT_FALSE(IsValidFargateSize(32768, 65536));
}

// ---------------------------------------------------------------------------------------------
// Public cases C01-C05.

TEST(PublicCaseTest, C01FargateWithoutTaskMemory) {
  Json request = FargateRequest();
  request["family"] = "c01";
  request.erase("memory");
  App(request)["essential"] = true;
  App(request)["command"] = {"sleep", "60"};
  ExpectClientError(request, "Fargate requires that 'memory' be defined at the task level.");
}

TEST(PublicCaseTest, C01FargateWithoutTaskCpu) {
  Json request = FargateRequest();
  request["family"] = "c01";
  request.erase("cpu");
  App(request)["essential"] = true;
  App(request)["command"] = {"sleep", "60"};
  ExpectClientError(request, "Fargate requires that 'cpu' be defined at the task level.");
}

TEST(PublicCaseTest, C02UnsupportedPairsAndUnitStrings) {
  Json request = FargateRequest();
  request["family"] = "c02";
  request["cpu"] = "512";
  request["memory"] = "512";
  ExpectClientError(request,
                    "No Fargate configuration exists for given values: 512 CPU, 512 memory. See "
                    "the Amazon ECS documentation for the valid values.");

  request["cpu"] = "4096";
  request["memory"] = "2048";
  ExpectClientError(request,
                    "No Fargate configuration exists for given values: 4096 CPU, 2048 memory. See "
                    "the Amazon ECS documentation for the valid values.");

  request["cpu"] = "1 vCPU";
  request["memory"] = "2GB";
  Json td = Normalize(request);
  EXPECT_EQ("1024", td["cpu"]);
  EXPECT_EQ("2048", td["memory"]);
}

TEST(PublicCaseTest, C03ContainerMemoryRules) {
  Json fargate = FargateRequest();
  fargate["family"] = "c03";
  Json td = Normalize(fargate);
  EXPECT_EQ("c03", td["family"]);
  EXPECT_FALSE(td["containerDefinitions"][0].contains("memory"));

  Json ec2 = Json{{"family", "c03"},
                  {"requiresCompatibilities", {"EC2"}},
                  {"networkMode", "bridge"},
                  {"containerDefinitions", {{{"name", "app"}, {"image", "busybox"}}}}};
  ExpectClientError(ec2,
                    "Invalid setting for container 'app'. At least one of 'memory' or "
                    "'memoryReservation' must be specified.");

  Json big = FargateRequest();
  big["family"] = "c03";
  big["containerDefinitions"] = {{{"name", "big"}, {"image", "busybox"}, {"memory", 1024}}};
  ExpectClientError(big, "The 'memory' setting for container 'big' is greater than for the task.");
}

TEST(PublicCaseTest, C04AwsvpcHostPortMismatchIsRejected) {
  Json request = FargateRequest();
  request["family"] = "c04";
  App(request)["portMappings"] = {{{"containerPort", 80}, {"hostPort", 8080}}};
  ExpectClientError(
      request,
      "When networkMode=awsvpc, the host ports and container ports in port mappings must "
      "match.");
}

TEST(PublicCaseTest, C04AwsvpcHostPortIsFilledIn) {
  Json request = FargateRequest();
  request["family"] = "c04";
  App(request)["portMappings"] = {{{"containerPort", 80}}};
  Json td = Normalize(request);
  Json expected = {{"containerPort", 80}, {"hostPort", 80}, {"protocol", "tcp"}};
  EXPECT_EQ(expected, td["containerDefinitions"][0]["portMappings"][0]);
}

Json C05Request(bool init_essential) {
  Json request = FargateRequest();
  request["family"] = "c05";
  request["containerDefinitions"] = {
      {{"name", "init"},
       {"image", "busybox"},
       {"essential", init_essential},
       {"command", {"true"}}},
      {{"name", "app"},
       {"image", "busybox"},
       {"essential", true},
       {"command", {"sleep", "300"}},
       {"dependsOn", {{{"containerName", "init"}, {"condition", "SUCCESS"}}}}}};
  return request;
}

TEST(PublicCaseTest, C05SuccessDependencyOnEssentialContainer) {
  ExpectClientError(C05Request(true),
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an "
                    "essential container");
}

TEST(PublicCaseTest, C05SuccessDependencyOnNonEssentialContainer) {
  Json td = Normalize(C05Request(false));
  EXPECT_EQ(false, td["containerDefinitions"][0]["essential"]);
  EXPECT_EQ(true, td["containerDefinitions"][1]["essential"]);
  Json expected = {{{"containerName", "init"}, {"condition", "SUCCESS"}}};
  EXPECT_EQ(expected, td["containerDefinitions"][1]["dependsOn"]);
}

// C05 with essential omitted: it defaults to true, so the rule still applies.
TEST(PublicCaseTest, C05EssentialDefaultsToTrueForDependencies) {
  Json request = C05Request(true);
  request["containerDefinitions"][0].erase("essential");
  ExpectClientError(request,
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an "
                    "essential container");
}

// C14 pre-check: awslogs without a group.
TEST(PublicCaseTest, C14AwslogsWithoutGroup) {
  Json request = FargateRequest();
  request["executionRoleArn"] = "arn:aws:iam::123456789012:role/exec";
  App(request)["logConfiguration"] = {
      {"logDriver", "awslogs"},
      {"options", {{"awslogs-region", "us-east-1"}, {"awslogs-stream-prefix", "svc"}}}};
  ExpectClientError(request, "Log driver awslogs requires options: awslogs-group");
}

// ---------------------------------------------------------------------------------------------
// Request-level rules.

TEST(TaskDefinitionRuleTest, FamilyMustNotBeBlank) {
  Json request = Ec2Request();
  request["family"] = "";
  ExpectClientError(request, "Family can not be blank.");
}

TEST(TaskDefinitionRuleTest, FamilyMustUseNameCharacters) {
  Json request = Ec2Request();
  request["family"] = "weird_dir@example.cats";
  ExpectClientError(request, "Family contains invalid characters.");
  request["family"] = std::string(256, 'a');
  ExpectClientError(request, "Family contains invalid characters.");
  request["family"] = std::string(255, 'a');
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

TEST(TaskDefinitionRuleTest, ContainerListMustNotBeEmpty) {
  Json request = Ec2Request();
  request["containerDefinitions"] = Json::array();
  ExpectClientError(request, "Container list cannot be empty.");
  request.erase("containerDefinitions");
  ExpectClientError(request, "Container list cannot be empty.");
}

TEST(TaskDefinitionRuleTest, AtMostTenContainers) {
  Json request = Ec2Request();
  request["containerDefinitions"] = Json::array();
  for (int i = 0; i < 11; ++i) {
    request["containerDefinitions"].push_back(
        {{"name", "c" + std::to_string(i)}, {"image", "busybox"}, {"memory", 16}});
  }
  ExpectClientError(request,
                    "Too many containers. A task definition can contain at most 10 containers.");
  request["containerDefinitions"].erase(10);
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

TEST(TaskDefinitionRuleTest, ContainerNameIsRequired) {
  Json request = Ec2Request();
  App(request).erase("name");
  ExpectClientError(request, "Container.name should not be null or empty.");
}

TEST(TaskDefinitionRuleTest, ContainerNameMustUseNameCharacters) {
  Json request = Ec2Request();
  App(request)["name"] = "my app";
  ExpectClientError(request, "Container.name contains invalid characters.");
}

TEST(TaskDefinitionRuleTest, ImageIsRequired) {
  Json request = Ec2Request();
  App(request)["image"] = "";
  ExpectClientError(request, "Container.image should not be null or empty.");
}

TEST(TaskDefinitionRuleTest, ContainerNamesMustBeUnique) {
  Json request = Ec2Request();
  request["containerDefinitions"].push_back(App(request));
  ExpectClientError(request, "Duplicate container name 'app' in task definition.");
}

TEST(TaskDefinitionRuleTest, NetworkModeMustBeKnown) {
  Json request = Ec2Request();
  request["networkMode"] = "nat";
  ExpectClientError(request, "Invalid 'networkMode' setting for task.");
}

TEST(TaskDefinitionRuleTest, TaskCpuMustParse) {
  Json request = Ec2Request();
  request["cpu"] = "lots";
  ExpectClientError(request, "Invalid 'cpu' setting for task.");
  request["cpu"] = "64";
  ExpectClientError(request, "Invalid 'cpu' setting for task.");
}

TEST(TaskDefinitionRuleTest, TaskMemoryMustParse) {
  Json request = Ec2Request();
  request["memory"] = "2 TB";
  ExpectClientError(request, "Invalid 'memory' setting for task.");
}

TEST(TaskDefinitionRuleTest, AtLeastOneEssentialContainer) {
  Json request = Ec2Request();
  App(request)["essential"] = false;
  ExpectClientError(request, "Task definition doesn't have any essential container.");
}

TEST(TaskDefinitionRuleTest, RequestOver64KiBIsRejected) {
  Json request = Ec2Request();
  App(request)["environment"] = {{{"name", "BLOB"}, {"value", std::string(70000, 'x')}}};
  ExpectClientError(request, "Task definition size exceeds the maximum allowed size of 64 KiB.");
}

// ---------------------------------------------------------------------------------------------
// Fargate task-level rules and their order.

TEST(FargateRuleTest, NetworkModeMustBeAwsvpc) {
  Json request = FargateRequest();
  request["networkMode"] = "bridge";
  ExpectClientError(request, "Fargate only supports network mode \u2018awsvpc\u2019.");
  request.erase("networkMode");
  ExpectClientError(request, "Fargate only supports network mode \u2018awsvpc\u2019.");
}

TEST(FargateRuleTest, NetworkModeIsCheckedBeforeCpuAndMemory) {
  Json request = FargateRequest();
  request.erase("networkMode");
  request.erase("cpu");
  request.erase("memory");
  ExpectClientError(request, "Fargate only supports network mode \u2018awsvpc\u2019.");
  request["networkMode"] = "awsvpc";
  ExpectClientError(request, "Fargate requires that 'cpu' be defined at the task level.");
  request["cpu"] = "256";
  ExpectClientError(request, "Fargate requires that 'memory' be defined at the task level.");
}

TEST(FargateRuleTest, SizeIsCheckedBeforeContainers) {
  Json request = FargateRequest();
  request["memory"] = "4096";
  App(request)["memory"] = 8192;
  ExpectClientError(request,
                    "No Fargate configuration exists for given values: 256 CPU, 4096 memory. See "
                    "the Amazon ECS documentation for the valid values.");
}

TEST(FargateRuleTest, WindowsNeedsAtLeastOneVcpu) {
  Json request = FargateRequest();
  request["runtimePlatform"] = {{"operatingSystemFamily", "WINDOWS_SERVER_2019_CORE"},
                                {"cpuArchitecture", "X86_64"}};
  ExpectClientError(request,
                    "No Fargate configuration exists for given values: 256 CPU, 512 memory. See "
                    "the Amazon ECS documentation for the valid values.");
  request["cpu"] = "1024";
  request["memory"] = "2048";
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

TEST(FargateRuleTest, NoPlacementConstraints) {
  Json request = FargateRequest();
  request["placementConstraints"] = {
      {{"type", "memberOf"}, {"expression", "attribute:ecs.instance-type =~ t2.*"}}};
  ExpectClientError(request, "Fargate does not support task placement constraints.");
}

TEST(FargateRuleTest, PidModeOnlyTask) {
  Json request = FargateRequest();
  request["pidMode"] = "host";
  ExpectClientError(request,
                    "Tasks using the Fargate launch type do not support pidMode 'host'. The "
                    "supported value for pidMode is 'task'.");
  request["pidMode"] = "task";
  Json td = Normalize(request);
  EXPECT_EQ("task", td["pidMode"]);
}

TEST(FargateRuleTest, NoIpcMode) {
  Json request = FargateRequest();
  request["ipcMode"] = "task";
  ExpectClientError(request, "Tasks using the Fargate launch type do not support ipcMode.");
}

TEST(FargateRuleTest, NoHostSourcePathVolumes) {
  Json request = FargateRequest();
  request["volumes"] = {{{"name", "data"}, {"host", {{"sourcePath", "/srv/data"}}}}};
  ExpectClientError(request, "Fargate does not support the 'sourcePath' setting for host volumes.");
}

TEST(FargateRuleTest, NoDockerVolumes) {
  Json request = FargateRequest();
  request["volumes"] = {{{"name", "data"}, {"dockerVolumeConfiguration", {{"scope", "task"}}}}};
  ExpectClientError(request, "Fargate does not support Docker volumes.");
}

TEST(FargateRuleTest, EphemeralStorageRange) {
  Json request = FargateRequest();
  request["ephemeralStorage"] = {{"sizeInGiB", 20}};
  ExpectClientError(request, "EphemeralStorage size should be at least 21");
  request["ephemeralStorage"] = {{"sizeInGiB", 201}};
  ExpectClientError(request, "EphemeralStorage size should be at most 200");
  request["ephemeralStorage"] = {{"sizeInGiB", 21}};
  EXPECT_EQ(21, Normalize(request)["ephemeralStorage"]["sizeInGiB"]);
  request["ephemeralStorage"] = {{"sizeInGiB", 200}};
  EXPECT_EQ(200, Normalize(request)["ephemeralStorage"]["sizeInGiB"]);
}

// ---------------------------------------------------------------------------------------------
// Container resources.

TEST(ContainerRuleTest, SumOfContainerCpuWithinTaskCpu) {
  Json request = FargateRequest();
  request["containerDefinitions"] = {{{"name", "a"}, {"image", "busybox"}, {"cpu", 128}},
                                     {{"name", "b"}, {"image", "busybox"}, {"cpu", 129}}};
  ExpectClientError(
      request,
      "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'.");
  request["containerDefinitions"][1]["cpu"] = 128;
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

TEST(ContainerRuleTest, SumOfMemoryReservationWithinTaskMemory) {
  Json request = FargateRequest();
  request["containerDefinitions"] = {
      {{"name", "a"}, {"image", "busybox"}, {"memoryReservation", 256}},
      {{"name", "b"}, {"image", "busybox"}, {"memoryReservation", 257}}};
  ExpectClientError(request,
                    "The sum of all container 'memoryReservation' values cannot be greater than "
                    "the value of the task 'memory'.");
}

TEST(ContainerRuleTest, MemoryReservationNotAboveMemory) {
  Json request = Ec2Request();
  App(request)["memoryReservation"] = 256;
  ExpectClientError(request,
                    "The 'memoryReservation' setting for container 'app' is greater than its "
                    "'memory' setting.");
  App(request)["memoryReservation"] = 128;  // equal is accepted
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

TEST(ContainerRuleTest, Ec2ContainerMayUseOnlyMemoryReservation) {
  Json request = Ec2Request();
  App(request).erase("memory");
  App(request)["memoryReservation"] = 64;
  Json td = Normalize(request);
  EXPECT_EQ(64, td["containerDefinitions"][0]["memoryReservation"]);
}

TEST(ContainerRuleTest, Ec2TaskMemoryMakesContainerMemoryOptional) {
  Json request = Ec2Request();
  App(request).erase("memory");
  request["memory"] = "1 GB";
  Json td = Normalize(request);
  EXPECT_EQ("1024", td["memory"]);
}

TEST(ContainerRuleTest, ContainerMemoryMustBePositive) {
  Json request = Ec2Request();
  App(request)["memory"] = 0;
  ExpectClientError(request, "Invalid 'memory' setting for container 'app'.");
}

// ---------------------------------------------------------------------------------------------
// Ports and networking options.

TEST(PortMappingRuleTest, ContainerPortIsRequired) {
  Json request = FargateRequest();
  App(request)["portMappings"] = {{{"hostPort", 80}}};
  ExpectClientError(request, "Invalid 'containerPort' setting for container 'app'.");
}

TEST(PortMappingRuleTest, ContainerPortRange) {
  Json request = FargateRequest();
  App(request)["portMappings"] = {{{"containerPort", 70000}}};
  ExpectClientError(request, "Invalid 'containerPort' setting for container 'app'.");
}

TEST(PortMappingRuleTest, HostModePortsMustMatch) {
  Json request = Ec2Request();
  request["networkMode"] = "host";
  App(request)["portMappings"] = {{{"containerPort", 80}, {"hostPort", 81}}};
  ExpectClientError(
      request,
      "When networkMode=host, the host ports and container ports in port mappings must match.");
}

TEST(PortMappingRuleTest, BridgeModeKeepsDynamicHostPort) {
  Json request = Ec2Request();
  App(request)["portMappings"] = {{{"containerPort", 80}},
                                  {{"containerPort", 53}, {"hostPort", 5353}, {"protocol", "udp"}}};
  Json td = Normalize(request);
  Json expected = {{{"containerPort", 80}, {"hostPort", 0}, {"protocol", "tcp"}},
                   {{"containerPort", 53}, {"hostPort", 5353}, {"protocol", "udp"}}};
  EXPECT_EQ(expected, td["containerDefinitions"][0]["portMappings"]);
}

TEST(PortMappingRuleTest, HostPortUsedTwiceInTask) {
  Json request = FargateRequest();
  request["containerDefinitions"] = {
      {{"name", "a"}, {"image", "busybox"}, {"portMappings", {{{"containerPort", 3000}}}}},
      {{"name", "b"}, {"image", "busybox"}, {"portMappings", {{{"containerPort", 3000}}}}}};
  ExpectClientError(request, "TCP host port '3000' is mapped multiple times in task.");
  request["containerDefinitions"][1]["portMappings"][0]["protocol"] = "udp";
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

TEST(PortMappingRuleTest, NameAndAppProtocolAreEchoed) {
  Json request = FargateRequest();
  App(request)["portMappings"] = {
      {{"name", "web"}, {"containerPort", 8080}, {"appProtocol", "http"}}};
  Json td = Normalize(request);
  Json expected = {{"name", "web"},
                   {"containerPort", 8080},
                   {"hostPort", 8080},
                   {"protocol", "tcp"},
                   {"appProtocol", "http"}};
  EXPECT_EQ(expected, td["containerDefinitions"][0]["portMappings"][0]);
}

TEST(NetworkingRuleTest, HostnameNotWithAwsvpc) {
  Json request = FargateRequest();
  App(request)["hostname"] = "web";
  ExpectClientError(request, "hostname is not supported on container when networkMode=awsvpc.");
}

TEST(NetworkingRuleTest, LinksOnlyWithBridge) {
  Json request = FargateRequest();
  App(request)["links"] = {"db"};
  ExpectClientError(request, "links is not supported on container when networkMode=awsvpc.");
}

TEST(NetworkingRuleTest, EmptyListsAreAcceptedOnFargate) {
  // Exported definitions carry empty lists for options Fargate does not run.
  Json request = FargateRequest();
  for (const char* key :
       {"links", "dnsServers", "dnsSearchDomains", "extraHosts", "dockerSecurityOptions"}) {
    App(request)[key] = Json::array();
  }
  App(request)["privileged"] = false;
  Json td = Normalize(request);
  EXPECT_EQ(Json::array(), td["containerDefinitions"][0]["dnsServers"]);
  EXPECT_EQ(false, td["containerDefinitions"][0]["privileged"]);
}

// ---------------------------------------------------------------------------------------------
// Fargate container-level restrictions.

TEST(FargateContainerRuleTest, UnsupportedParameters) {
  struct Case {
    const char* key;
    Json value;
    const char* message;
  };

  const Case cases[] = {
      {"privileged", true, "Tasks using the Fargate launch type do not support privileged."},
      {"disableNetworking", true,
       "Tasks using the Fargate launch type do not support disableNetworking."},
      {"dnsServers",
       {"10.0.0.2"},
       "Tasks using the Fargate launch type do not support dnsServers."},
      {"dnsSearchDomains",
       {"corp"},
       "Tasks using the Fargate launch type do not support dnsSearchDomains."},
      {"extraHosts",
       {{{"hostname", "db"}, {"ipAddress", "10.0.0.9"}}},
       "Tasks using the Fargate launch type do not support extraHosts."},
      {"dockerSecurityOptions",
       {"no-new-privileges"},
       "Tasks using the Fargate launch type do not support dockerSecurityOptions."},
      {"resourceRequirements",
       {{{"type", "GPU"}, {"value", "1"}}},
       "Tasks using the Fargate launch type do not support GPU resource requirements."},
  };
  for (const Case& c : cases) {
    Json request = FargateRequest();
    App(request)[c.key] = c.value;
    ExpectClientError(request, c.message);
  }
}

TEST(FargateContainerRuleTest, UnsupportedLinuxParameters) {
  struct Case {
    Json linux_parameters;
    const char* message;
  };

  const Case cases[] = {
      {{{"devices", {{{"hostPath", "/dev/fuse"}}}}},
       "Tasks using the Fargate launch type do not support devices."},
      {{{"sharedMemorySize", 64}},
       "Tasks using the Fargate launch type do not support sharedMemorySize."},
      {{{"tmpfs", {{{"containerPath", "/run"}, {"size", 64}}}}},
       "Tasks using the Fargate launch type do not support tmpfs."},
      {{{"maxSwap", 0}}, "Tasks using the Fargate launch type do not support maxSwap."},
      {{{"swappiness", 10}}, "Tasks using the Fargate launch type do not support swappiness."},
      {{{"capabilities", {{"add", {"SYS_PTRACE", "NET_ADMIN"}}}}},
       "Tasks using the Fargate launch type can only add the SYS_PTRACE kernel capability."},
  };
  for (const Case& c : cases) {
    Json request = FargateRequest();
    App(request)["linuxParameters"] = c.linux_parameters;
    ExpectClientError(request, c.message);
  }
}

TEST(FargateContainerRuleTest, SysPtraceAndInitProcessAreAllowed) {
  Json request = FargateRequest();
  App(request)["linuxParameters"] = {
      {"initProcessEnabled", true}, {"capabilities", {{"add", {"SYS_PTRACE"}}, {"drop", {"ALL"}}}}};
  Json td = Normalize(request);
  EXPECT_EQ(true, td["containerDefinitions"][0]["linuxParameters"]["initProcessEnabled"]);
}

TEST(FargateContainerRuleTest, StopTimeoutAtMost120) {
  Json request = FargateRequest();
  App(request)["stopTimeout"] = 121;
  ExpectClientError(request,
                    "Stop timeout must be less than or equal to the maximum allowed value 120 for "
                    "container 'app'");
  App(request)["stopTimeout"] = 120;
  EXPECT_EQ(120, Normalize(request)["containerDefinitions"][0]["stopTimeout"]);
}

TEST(FargateContainerRuleTest, Ec2AcceptsLongStopTimeoutButLosesFargate) {
  Json request = FargateRequest();
  request.erase("requiresCompatibilities");
  App(request)["stopTimeout"] = 300;
  Json td = Normalize(request);
  EXPECT_EQ(Json::array({"EC2"}), td["compatibilities"]);
}

TEST(FargateContainerRuleTest, EcrImageNeedsExecutionRole) {
  Json request = FargateRequest();
  App(request)["image"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1";
  ExpectClientError(
      request,
      "Fargate requires task definition to have execution role ARN to support ECR images.");
  request["executionRoleArn"] = "arn:aws:iam::123456789012:role/exec";
  EXPECT_TRUE(NormalizeTaskDefinition(request).ok());
}

// ---------------------------------------------------------------------------------------------
// Logging.

Json AwslogsOptions() {
  return {{"awslogs-group", "/ecs/web"},
          {"awslogs-region", "us-east-1"},
          {"awslogs-stream-prefix", "web"}};
}

TEST(LoggingRuleTest, AwslogsNeedsGroupAndRegion) {
  Json request = Ec2Request();
  App(request)["logConfiguration"] = {{"logDriver", "awslogs"}};
  ExpectClientError(request, "Log driver awslogs requires options: awslogs-region, awslogs-group");
  App(request)["logConfiguration"]["options"] = {{"awslogs-group", "/ecs/web"}};
  ExpectClientError(request, "Log driver awslogs requires options: awslogs-region");
}

TEST(LoggingRuleTest, AwslogsCreateGroupOnlyTrue) {
  Json request = Ec2Request();
  Json options = AwslogsOptions();
  options["awslogs-create-group"] = "false";
  App(request)["logConfiguration"] = {{"logDriver", "awslogs"}, {"options", options}};
  ExpectClientError(request,
                    "Log driver awslogs option 'awslogs-create-group' should only be set to "
                    "'true', else omit option.");
}

TEST(LoggingRuleTest, FargateAwslogsNeedsStreamPrefix) {
  Json request = FargateRequest();
  request["executionRoleArn"] = "arn:aws:iam::123456789012:role/exec";
  Json options = AwslogsOptions();
  options.erase("awslogs-stream-prefix");
  App(request)["logConfiguration"] = {{"logDriver", "awslogs"}, {"options", options}};
  ExpectClientError(request,
                    "Fargate requires log configuration options to include awslogs-stream-prefix "
                    "to support log driver awslogs.");
}

TEST(LoggingRuleTest, FargateAwslogsNeedsExecutionRole) {
  Json request = FargateRequest();
  App(request)["logConfiguration"] = {{"logDriver", "awslogs"}, {"options", AwslogsOptions()}};
  ExpectClientError(
      request,
      "Fargate requires task definition to have execution role ARN to support log driver awslogs.");
}

TEST(LoggingRuleTest, Ec2AwslogsWithoutRoleOrPrefixIsFine) {
  Json request = Ec2Request();
  App(request)["logConfiguration"] = {
      {"logDriver", "awslogs"},
      {"options", {{"awslogs-group", "/ecs/web"}, {"awslogs-region", "us-east-1"}}}};
  Json td = Normalize(request);
  Json expected =
      Json::array({Json{{"name", "com.amazonaws.ecs.capability.logging-driver.awslogs"}},
                   Json{{"name", "com.amazonaws.ecs.capability.docker-remote-api.1.19"}}});
  EXPECT_EQ(expected, td["requiresAttributes"]);
}

TEST(LoggingRuleTest, FargateOnlySupportsItsLogDrivers) {
  Json request = FargateRequest();
  App(request)["logConfiguration"] = {{"logDriver", "json-file"}};
  ExpectClientError(request,
                    "Fargate does not support log driver json-file. Supported log drivers are "
                    "awslogs, splunk and awsfirelens.");
}

// ---------------------------------------------------------------------------------------------
// Health checks.

TEST(HealthCheckRuleTest, RangesAreEnforced) {
  struct Case {
    const char* field;
    int value;
    const char* message;
  };

  const Case cases[] = {
      {"interval", 4,
       "Health check interval must be greater than or equal to the minimum allowed value 5 for "
       "container 'app'"},
      {"interval", 301,
       "Health check interval must be less than or equal to the maximum allowed value 300 for "
       "container 'app'"},
      {"timeout", 1,
       "Health check timeout must be greater than or equal to the minimum allowed value 2 for "
       "container 'app'"},
      {"timeout", 61,
       "Health check timeout must be less than or equal to the maximum allowed value 60 for "
       "container 'app'"},
      {"retries", 0,
       "Health check retries must be greater than or equal to the minimum allowed value 1 for "
       "container 'app'"},
      {"retries", 11,
       "Health check retries must be less than or equal to the maximum allowed value 10 for "
       "container 'app'"},
      {"startPeriod", 301,
       "Health check startPeriod must be less than or equal to the maximum allowed value 300 for "
       "container 'app'"},
  };
  for (const Case& c : cases) {
    Json request = FargateRequest();
    App(request)["healthCheck"] = {{"command", {"CMD", "true"}}, {c.field, c.value}};
    ExpectClientError(request, c.message);
  }
}

TEST(HealthCheckRuleTest, DefaultsAreEchoedWithoutStartPeriod) {
  Json request = FargateRequest();
  App(request)["healthCheck"] = {{"command", {"CMD-SHELL", "true"}}};
  Json td = Normalize(request);
  Json expected = {
      {"command", {"CMD-SHELL", "true"}}, {"interval", 30}, {"timeout", 5}, {"retries", 3}};
  EXPECT_EQ(expected, td["containerDefinitions"][0]["healthCheck"]);
}

TEST(HealthCheckRuleTest, CommandMustNotBeEmpty) {
  Json request = FargateRequest();
  App(request)["healthCheck"] = {{"command", Json::array()}};
  ExpectClientError(request, "Health check command must not be empty for container 'app'");
}

// ---------------------------------------------------------------------------------------------
// Dependencies.

TEST(DependencyRuleTest, TargetMustExist) {
  Json request = FargateRequest();
  App(request)["dependsOn"] = {{{"containerName", "sidecar"}, {"condition", "START"}}};
  ExpectClientError(request, "Cannot depend on container + 'sidecar' because it does not exist");
}

TEST(DependencyRuleTest, ConditionMustBeKnown) {
  Json request = C05Request(false);
  request["containerDefinitions"][1]["dependsOn"][0]["condition"] = "READY";
  ExpectClientError(request, "Invalid 'dependsOn' setting for container 'app'.");
}

TEST(DependencyRuleTest, CompleteOnEssentialIsRejected) {
  Json request = C05Request(true);
  request["containerDefinitions"][1]["dependsOn"][0]["condition"] = "COMPLETE";
  ExpectClientError(request,
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an "
                    "essential container");
}

TEST(DependencyRuleTest, HealthyNeedsHealthCheck) {
  Json request = C05Request(true);
  request["containerDefinitions"][1]["dependsOn"][0]["condition"] = "HEALTHY";
  ExpectClientError(request,
                    "A dependency container with HEALTHY condition must have a health check "
                    "configured");
  request["containerDefinitions"][0]["healthCheck"] = {{"command", {"CMD", "true"}}};
  Json td = Normalize(request);
  EXPECT_EQ("HEALTHY", td["containerDefinitions"][1]["dependsOn"][0]["condition"]);
}

TEST(DependencyRuleTest, CyclesAreRejected) {
  Json request = FargateRequest();
  request["containerDefinitions"] = {
      {{"name", "a"},
       {"image", "busybox"},
       {"dependsOn", {{{"containerName", "b"}, {"condition", "START"}}}}},
      {{"name", "b"},
       {"image", "busybox"},
       {"dependsOn", {{{"containerName", "a"}, {"condition", "START"}}}}}};
  ExpectClientError(request, "Container dependencies contain a cycle involving container 'a'.");
}

TEST(DependencyRuleTest, StartChainIsAccepted) {
  Json request = FargateRequest();
  request["containerDefinitions"] = {
      {{"name", "a"},
       {"image", "busybox"},
       {"dependsOn", {{{"containerName", "b"}, {"condition", "START"}}}}},
      {{"name", "b"},
       {"image", "busybox"},
       {"dependsOn", {{{"containerName", "c"}, {"condition", "START"}}}}},
      {{"name", "c"}, {"image", "busybox"}}};
  Json td = Normalize(request);
  Json ordering = {{"name", "ecs.capability.container-ordering"}};
  const Json& attributes = td["requiresAttributes"];
  EXPECT_NE(attributes.end(), std::find(attributes.begin(), attributes.end(), ordering));
}

// ---------------------------------------------------------------------------------------------
// Volumes.

TEST(VolumeRuleTest, MountPointNeedsDefinedVolume) {
  Json request = FargateRequest();
  App(request)["mountPoints"] = {{{"sourceVolume", "scratch"}, {"containerPath", "/data"}}};
  ExpectClientError(request,
                    "Invalid 'mountPoints' setting for container 'app'. Volume 'scratch' is not "
                    "defined in the task definition.");
  request["volumes"] = {{{"name", "scratch"}}};
  Json td = Normalize(request);
  EXPECT_EQ(Json::array({Json{{"name", "scratch"}}}), td["volumes"]);
}

// ---------------------------------------------------------------------------------------------
// Normalization.

TEST(NormalizeTest, MinimalEc2DefinitionEcho) {
  Json td = Normalize(Ec2Request());
  Json expected = {{"family", "web"},
                   {"containerDefinitions",
                    {{{"name", "app"},
                      {"image", "busybox"},
                      {"cpu", 0},
                      {"memory", 128},
                      {"portMappings", Json::array()},
                      {"essential", true},
                      {"environment", Json::array()},
                      {"mountPoints", Json::array()},
                      {"volumesFrom", Json::array()},
                      {"systemControls", Json::array()}}}},
                   {"volumes", Json::array()},
                   {"placementConstraints", Json::array()},
                   {"compatibilities", {"EXTERNAL", "EC2"}}};
  EXPECT_EQ(expected, td);
}

TEST(NormalizeTest, UnknownMembersAreDropped) {
  Json request = FargateRequest();
  request["tags"] = {{{"key", "team"}, {"value", "web"}}};
  request["enableFaultInjection"] = true;
  App(request)["restartPolicy"] = {{"enabled", true}};
  Json td = Normalize(request);
  EXPECT_FALSE(td.contains("tags"));
  EXPECT_FALSE(td.contains("enableFaultInjection"));
  EXPECT_FALSE(td["containerDefinitions"][0].contains("restartPolicy"));
}

TEST(NormalizeTest, EmptyEnvironmentValuesAreDropped) {
  Json request = FargateRequest();
  App(request)["environment"] = {
      {{"name", "A"}, {"value", "1"}}, {{"name", "B"}, {"value", ""}}, {{"name", "C"}}};
  Json td = Normalize(request);
  Json expected = {{{"name", "A"}, {"value", "1"}}};
  EXPECT_EQ(expected, td["containerDefinitions"][0]["environment"]);
}

TEST(NormalizeTest, AwsvpcWithoutFargateSizeIsEc2Only) {
  Json request = Ec2Request();
  request["networkMode"] = "awsvpc";
  Json td = Normalize(request);
  EXPECT_EQ(Json::array({"EC2"}), td["compatibilities"]);
}

TEST(NormalizeTest, FargateShapedDefinitionIsFargateCompatibleWithoutAskingForIt) {
  Json request = FargateRequest();
  request.erase("requiresCompatibilities");
  Json td = Normalize(request);
  EXPECT_EQ(Json::array({"EC2", "FARGATE"}), td["compatibilities"]);
  EXPECT_FALSE(td.contains("requiresCompatibilities"));
}

TEST(NormalizeTest, TaskRoleAndEcrAttributes) {
  Json request = FargateRequest();
  request["taskRoleArn"] = "arn:aws:iam::123456789012:role/task";
  request["executionRoleArn"] = "arn:aws:iam::123456789012:role/exec";
  App(request)["image"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1";
  Json td = Normalize(request);
  Json expected =
      Json::array({Json{{"name", "com.amazonaws.ecs.capability.ecr-auth"}},
                   Json{{"name", "com.amazonaws.ecs.capability.task-iam-role"}},
                   Json{{"name", "ecs.capability.execution-role-ecr-pull"}},
                   Json{{"name", "com.amazonaws.ecs.capability.docker-remote-api.1.18"}},
                   Json{{"name", "ecs.capability.task-eni"}}});
  EXPECT_EQ(expected, td["requiresAttributes"]);
}

// A complete Fargate definition in the shape of AWS's getting-started examples: awslogs with an
// execution role, a health check with a start period, port mapping without hostPort, ARM64.
// The expected object is what DescribeTaskDefinition shows for such a definition, minus the
// fields the caller adds.
TEST(NormalizeTest, RealisticFargateDefinitionMatchesAwsEcho) {
  Json request = {
      {"family", "shop-api"},
      {"requiresCompatibilities", {"FARGATE"}},
      {"networkMode", "awsvpc"},
      {"cpu", "1 vCPU"},
      {"memory", "2 GB"},
      {"executionRoleArn", "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"},
      {"runtimePlatform", {{"cpuArchitecture", "ARM64"}, {"operatingSystemFamily", "LINUX"}}},
      {"tags", {{{"key", "env"}, {"value", "prod"}}}},
      {"containerDefinitions",
       {{{"name", "api"},
         {"image", "public.ecr.aws/docker/library/httpd:2.4"},
         {"portMappings", {{{"containerPort", 80}}}},
         {"environment", {{{"name", "MODE"}, {"value", "prod"}}}},
         {"logConfiguration",
          {{"logDriver", "awslogs"},
           {"options",
            {{"awslogs-group", "/ecs/shop-api"},
             {"awslogs-region", "us-east-1"},
             {"awslogs-stream-prefix", "ecs"}}}}},
         {"healthCheck",
          {{"command", {"CMD-SHELL", "curl -f http://localhost/ || exit 1"}},
           {"startPeriod", 60}}}}}}};
  Json td = Normalize(request);

  const Json& c = td["containerDefinitions"][0];
  EXPECT_EQ("api", c["name"]);
  EXPECT_EQ("public.ecr.aws/docker/library/httpd:2.4", c["image"]);
  EXPECT_EQ(0, c["cpu"]);
  EXPECT_EQ(true, c["essential"]);
  EXPECT_EQ(Json::array({Json{{"containerPort", 80}, {"hostPort", 80}, {"protocol", "tcp"}}}),
            c["portMappings"]);
  EXPECT_EQ(Json::array({Json{{"name", "MODE"}, {"value", "prod"}}}), c["environment"]);
  EXPECT_EQ(Json::array(), c["mountPoints"]);
  EXPECT_EQ(Json::array(), c["volumesFrom"]);
  EXPECT_EQ(Json::array(), c["systemControls"]);
  EXPECT_EQ(request["containerDefinitions"][0]["logConfiguration"], c["logConfiguration"]);
  Json health = {{"command", {"CMD-SHELL", "curl -f http://localhost/ || exit 1"}},
                 {"interval", 30},
                 {"timeout", 5},
                 {"retries", 3},
                 {"startPeriod", 60}};
  EXPECT_EQ(health, c["healthCheck"]);
  EXPECT_FALSE(c.contains("memory"));
  EXPECT_EQ(11u, c.size());

  EXPECT_EQ("shop-api", td["family"]);
  EXPECT_EQ("arn:aws:iam::123456789012:role/ecsTaskExecutionRole", td["executionRoleArn"]);
  EXPECT_EQ("awsvpc", td["networkMode"]);
  EXPECT_EQ(Json::array(), td["volumes"]);
  EXPECT_EQ(Json::array(), td["placementConstraints"]);
  EXPECT_EQ(Json::array({"EC2", "FARGATE"}), td["compatibilities"]);
  EXPECT_EQ(Json::array({"FARGATE"}), td["requiresCompatibilities"]);
  EXPECT_EQ("1024", td["cpu"]);
  EXPECT_EQ("2048", td["memory"]);
  EXPECT_EQ(request["runtimePlatform"], td["runtimePlatform"]);
  Json attributes =
      Json::array({Json{{"name", "com.amazonaws.ecs.capability.logging-driver.awslogs"}},
                   Json{{"name", "ecs.capability.execution-role-awslogs"}},
                   Json{{"name", "com.amazonaws.ecs.capability.docker-remote-api.1.19"}},
                   Json{{"name", "ecs.capability.container-health-check"}},
                   Json{{"name", "com.amazonaws.ecs.capability.docker-remote-api.1.18"}},
                   Json{{"name", "ecs.capability.task-eni"}},
                   Json{{"name", "com.amazonaws.ecs.capability.docker-remote-api.1.29"}}});
  EXPECT_EQ(attributes, td["requiresAttributes"]);
  EXPECT_FALSE(td.contains("tags"));
  EXPECT_FALSE(td.contains("taskDefinitionArn"));
  EXPECT_FALSE(td.contains("revision"));
  EXPECT_FALSE(td.contains("status"));
  EXPECT_EQ(12u, td.size());
}

// ---------------------------------------------------------------------------------------------
// RunTask overrides.

Json RegisteredFargate() {
  return Normalize(C05Request(false));
}

TEST(ContainerOverridesTest, KnownNamesAndEmptyOverridesPass) {
  Json overrides = {
      {"containerOverrides", {{{"name", "app"}, {"command", {"echo", "hi"}}}, Json::object()}}};
  EXPECT_TRUE(ValidateContainerOverrides(RegisteredFargate(), overrides).ok());
}

TEST(ContainerOverridesTest, UnknownContainerName) {
  Json overrides = {{"containerOverrides", {{{"name", "django"}, {"command", {"migrate"}}}}}};
  Status status = ValidateContainerOverrides(RegisteredFargate(), overrides);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ("InvalidParameterException", status.error().code);
  EXPECT_EQ("Override for container named django is not a container in the TaskDefinition.",
            status.error().message);
}

TEST(ContainerOverridesTest, NonEmptyOverrideNeedsName) {
  Json overrides = {{"containerOverrides", {{{"command", {"true"}}}}}};
  Status status = ValidateContainerOverrides(RegisteredFargate(), overrides);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ("InvalidParameterException", status.error().code);
  EXPECT_EQ("Container override must specify the name of a container.", status.error().message);
}

TEST(ContainerOverridesTest, TaskSizeOverrideMustBeFargateSize) {
  Json overrides = {{"cpu", "512"}};
  Status status = ValidateContainerOverrides(RegisteredFargate(), overrides);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ("ClientException", status.error().code);
  EXPECT_EQ(
      "No Fargate configuration exists for given values: 512 CPU, 512 memory. See the Amazon ECS "
      "documentation for the valid values.",
      status.error().message);
  overrides["memory"] = "1GB";
  EXPECT_TRUE(ValidateContainerOverrides(RegisteredFargate(), overrides).ok());
}

TEST(ContainerOverridesTest, Ec2DefinitionIgnoresFargateSizes) {
  Json td = Normalize(Ec2Request());
  Json overrides = {{"cpu", "300"}, {"memory", "700"}};
  EXPECT_TRUE(ValidateContainerOverrides(td, overrides).ok());
}

}  // namespace
}  // namespace berth::ecs
