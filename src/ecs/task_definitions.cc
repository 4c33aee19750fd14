// SPDX-License-Identifier: Apache-2.0
//
// Task definitions: RegisterTaskDefinition, DescribeTaskDefinition,
// ListTaskDefinitions, ListTaskDefinitionFamilies, DeregisterTaskDefinition.
// DeleteTaskDefinitions (newer than some botocore snapshots; the model
// overlay in src/api/model_overlay.cc adds its shapes where they are missing)
// moves INACTIVE revisions to DELETE_IN_PROGRESS; PurgeDeletedTaskDefinitions
// removes them once no task or service deployment uses them.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

#include "common/paging.h"
#include "common/time_util.h"
#include "ecs/ecs_api.h"
#include "ecs/taskdef.h"

namespace berth::ecs {

namespace {

const std::string kFamilies = "ecs/taskdef-families/";
const std::string kTaskDefs = "ecs/taskdefs/";

Error Unresolvable() { return ClientError("ClientException", "Unable to describe task definition."); }

Error InvalidParameter(std::string message) {
  return ClientError("InvalidParameterException", std::move(message));
}

std::string RevisionKey(const std::string& family, int64_t revision) {
  char padded[16];
  std::snprintf(padded, sizeof(padded), "%010lld", static_cast<long long>(revision));
  return kTaskDefs + family + "/" + padded;
}

bool Wants(const Json& in, const std::string& what) {
  for (const auto& i : in.value("include", Json::array())) {
    if (i == what) {
      return true;
    }
  }
  return false;
}

Result<int> MaxResults(const Json& in, int fallback) {
  int max = in.value("maxResults", fallback);
  if (max < 1 || max > 100) {
    return InvalidParameter("maxResults must be between 1 and 100.");
  }
  return max;
}

Result<std::string> PageStart(const Json& in) {
  if (!in.contains("nextToken")) {
    return std::string();
  }
  auto pos = DecodePageToken(in["nextToken"].get<std::string>());
  if (!pos) {
    return InvalidParameter("Invalid nextToken.");
  }
  return *pos;
}

// One stored revision, as the list operations see it.
struct RevisionRow {
  std::string family;
  int64_t revision = 0;
  std::string status;  // ACTIVE, INACTIVE or DELETE_IN_PROGRESS
  std::string arn;
  bool active() const { return status == "ACTIVE"; }
};

}  // namespace

void EcsApi::AddTaskDefinitionOperations(api::JsonService& svc) {
  Bind(svc, "RegisterTaskDefinition", &EcsApi::RegisterTaskDefinition);
  Bind(svc, "DescribeTaskDefinition", &EcsApi::DescribeTaskDefinition);
  Bind(svc, "ListTaskDefinitions", &EcsApi::ListTaskDefinitions);
  Bind(svc, "ListTaskDefinitionFamilies", &EcsApi::ListTaskDefinitionFamilies);
  Bind(svc, "DeregisterTaskDefinition", &EcsApi::DeregisterTaskDefinition);
  Bind(svc, "DeleteTaskDefinitions", &EcsApi::DeleteTaskDefinitions);
  AddTaggableType("task-definition", [this](const EcsArnParts& arn) -> Result<std::string> {
    auto ref = ParseTaskDefinitionRef(arn.resource_id);
    if (!ref || ref->revision == 0) {
      return InvalidParameter("The ARN provided is invalid.");
    }
    auto doc = FindTaskDefinitionDoc(arn.resource_id);
    if (!doc.ok()) {
      return ClientError("ResourceNotFoundException", "The specified resource is not found.");
    }
    return RevisionKey(ref->family, ref->revision);
  });
}

Result<Json> EcsApi::RegisterTaskDefinition(const Json& in, const api::CallContext& ctx) {
  Json tags = in.value("tags", Json::array());
  BERTH_TRY(CheckTags(tags));
  auto normalized = NormalizeTaskDefinition(in);
  if (!normalized.ok()) {
    return normalized.error();
  }
  const std::string family = normalized->value("family", "");
  const std::string family_key = kFamilies + family;

  for (int attempt = 0; attempt < 100; ++attempt) {
    auto counter = store_.Get(family_key);
    if (!counter.ok()) {
      return counter.error();
    }
    int64_t last = 0;
    int64_t counter_revision = 0;
    if (*counter) {
      last = Json::parse((*counter)->value).value("lastRevision", int64_t{0});
      counter_revision = (*counter)->mod_revision;
    }
    int64_t revision = last + 1;
    Json td = *normalized;
    td["taskDefinitionArn"] = EcsArn(account_.region, account_.account_id,
                                     "task-definition/" + family + ":" + std::to_string(revision));
    td["revision"] = revision;
    td["status"] = "ACTIVE";
    td["registeredAt"] = NowEpochSeconds();
    td["registeredBy"] = "arn:aws:iam::" + account_.account_id + ":root";

    store::Txn txn;
    txn.IfRevision(family_key, counter_revision);
    txn.Put(family_key, Json{{"family", family}, {"lastRevision", revision}}.dump());
    txn.IfAbsent(RevisionKey(family, revision));
    txn.Put(RevisionKey(family, revision), Json{{"taskDefinition", td}, {"tags", tags}}.dump());
    auto committed = store_.Commit(txn);
    if (committed.ok()) {
      return Json{{"taskDefinition", td}, {"tags", tags}};
    }
    if (committed.error().code != store::kConflict) {
      return committed.error();
    }
  }
  return ServerError("registration kept conflicting; try again");
}

Result<Json> EcsApi::FindTaskDefinitionDoc(const std::string& ref_text) {
  auto ref = ParseTaskDefinitionRef(ref_text);
  if (!ref) {
    return Unresolvable();
  }
  if (ref->revision > 0) {
    auto entry = store_.Get(RevisionKey(ref->family, ref->revision));
    if (!entry.ok()) {
      return entry.error();
    }
    if (!*entry) {
      return Unresolvable();
    }
    return Json::parse((*entry)->value);
  }
  // A bare family names its latest ACTIVE revision.
  auto entries = store_.List(kTaskDefs + ref->family + "/");
  if (!entries.ok()) {
    return entries.error();
  }
  for (auto it = entries->rbegin(); it != entries->rend(); ++it) {
    Json doc = Json::parse(it->value);
    if (doc["taskDefinition"].value("status", "") == "ACTIVE") {
      return doc;
    }
  }
  return Unresolvable();
}

Result<Json> EcsApi::ResolveTaskDefinition(const std::string& ref) {
  auto doc = FindTaskDefinitionDoc(ref);
  if (!doc.ok()) {
    return doc.error();
  }
  return (*doc)["taskDefinition"];
}

Result<Json> EcsApi::DescribeTaskDefinition(const Json& in, const api::CallContext& ctx) {
  auto doc = FindTaskDefinitionDoc(in.value("taskDefinition", ""));
  if (!doc.ok()) {
    return doc.error();
  }
  Json out = {{"taskDefinition", (*doc)["taskDefinition"]}};
  if (Wants(in, "TAGS")) {
    out["tags"] = doc->value("tags", Json::array());
  }
  return out;
}

Result<Json> EcsApi::DeregisterTaskDefinition(const Json& in, const api::CallContext& ctx) {
  std::string text = in.value("taskDefinition", "");
  auto ref = ParseTaskDefinitionRef(text);
  if (!ref) {
    return Unresolvable();
  }
  if (ref->revision == 0) {
    return ClientError("ClientException", "Invalid revision number. Number: " + ref->family);
  }
  Json result;
  auto committed = store::ReadModifyWrite(
      store_, RevisionKey(ref->family, ref->revision),
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (!cur) {
          return Unresolvable();
        }
        Json doc = Json::parse(cur->value);
        Json& td = doc["taskDefinition"];
        if (td.value("status", "") != "INACTIVE") {
          td["status"] = "INACTIVE";
          td["deregisteredAt"] = NowEpochSeconds();
        }
        result = td;
        return std::optional<std::string>(doc.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  return Json{{"taskDefinition", result}};
}

namespace {

// Every stored revision under `prefix`, in key order.
Result<std::vector<RevisionRow>> ListRevisions(store::Store& store, const std::string& prefix) {
  std::vector<RevisionRow> rows;
  std::string cursor;
  constexpr size_t kBatch = 1000;
  while (true) {
    auto batch = store.List(prefix, cursor, kBatch);
    if (!batch.ok()) {
      return batch.error();
    }
    for (const auto& e : *batch) {
      cursor = e.key;
      Json td = Json::parse(e.value)["taskDefinition"];
      rows.push_back(RevisionRow{td.value("family", ""), td.value("revision", int64_t{0}),
                                 td.value("status", ""), td.value("taskDefinitionArn", "")});
    }
    if (batch->size() < kBatch) {
      return rows;
    }
  }
}

}  // namespace

Result<Json> EcsApi::ListTaskDefinitions(const Json& in, const api::CallContext& ctx) {
  auto max = MaxResults(in, 100);
  if (!max.ok()) {
    return max.error();
  }
  auto start = PageStart(in);
  if (!start.ok()) {
    return start.error();
  }
  std::string status = in.value("status", "ACTIVE");
  if (status != "ACTIVE" && status != "INACTIVE" && status != "DELETE_IN_PROGRESS") {
    return InvalidParameter("status must be ACTIVE, INACTIVE or DELETE_IN_PROGRESS.");
  }
  std::string sort = in.value("sort", "ASC");
  if (sort != "ASC" && sort != "DESC") {
    return InvalidParameter("sort must be ASC or DESC.");
  }
  // familyPrefix is the full family name (as AWS documents it), not a prefix.
  std::string prefix = kTaskDefs;
  if (in.contains("familyPrefix")) {
    prefix += in["familyPrefix"].get<std::string>() + "/";
  }
  auto rows = ListRevisions(store_, prefix);
  if (!rows.ok()) {
    return rows.error();
  }

  std::vector<RevisionRow> matching;
  for (auto& r : *rows) {
    if (r.status == status) {
      matching.push_back(std::move(r));
    }
  }
  bool desc = sort == "DESC";
  auto before = [desc](const RevisionRow& a, const RevisionRow& b) {
    auto ka = std::tie(a.family, a.revision);
    auto kb = std::tie(b.family, b.revision);
    return desc ? kb < ka : ka < kb;
  };
  std::sort(matching.begin(), matching.end(), before);

  size_t first = 0;
  if (!start->empty()) {
    auto ref = ParseTaskDefinitionRef(*start);
    if (!ref) {
      return InvalidParameter("Invalid nextToken.");
    }
    RevisionRow marker{ref->family, ref->revision, "", ""};
    first = std::upper_bound(matching.begin(), matching.end(), marker, before) - matching.begin();
  }
  Json arns = Json::array();
  size_t i = first;
  for (; i < matching.size() && static_cast<int>(arns.size()) < *max; ++i) {
    arns.push_back(matching[i].arn);
  }
  Json out = {{"taskDefinitionArns", arns}};
  if (i < matching.size()) {
    const RevisionRow& last = matching[i - 1];
    out["nextToken"] = EncodePageToken(last.family + ":" + std::to_string(last.revision));
  }
  return out;
}

Result<Json> EcsApi::ListTaskDefinitionFamilies(const Json& in, const api::CallContext& ctx) {
  auto max = MaxResults(in, 100);
  if (!max.ok()) {
    return max.error();
  }
  auto start = PageStart(in);
  if (!start.ok()) {
    return start.error();
  }
  std::string status = in.value("status", "ALL");
  if (status != "ACTIVE" && status != "INACTIVE" && status != "ALL") {
    return InvalidParameter("status must be ACTIVE, INACTIVE or ALL.");
  }
  std::string family_prefix = in.value("familyPrefix", "");
  auto rows = ListRevisions(store_, kTaskDefs + family_prefix);
  if (!rows.ok()) {
    return rows.error();
  }
  std::map<std::string, bool> families;  // family -> has an ACTIVE revision
  for (const auto& r : *rows) {
    families[r.family] = families[r.family] || r.active();
  }

  Json names = Json::array();
  bool more = false;
  for (auto it = families.upper_bound(*start); it != families.end(); ++it) {
    if ((status == "ACTIVE" && !it->second) || (status == "INACTIVE" && it->second)) {
      continue;
    }
    if (static_cast<int>(names.size()) == *max) {
      more = true;
      break;
    }
    names.push_back(it->first);
  }
  Json out = {{"families", names}};
  if (more) {
    out["nextToken"] = EncodePageToken(names.back().get<std::string>());
  }
  return out;
}

Result<Json> EcsApi::DeleteTaskDefinitions(const Json& in, const api::CallContext& ctx) {
  const Json& refs = in["taskDefinitions"];
  if (refs.empty() || refs.size() > 10) {
    return InvalidParameter("The taskDefinitions parameter must contain 1 to 10 task definitions.");
  }
  Json deleted = Json::array();
  Json failures = Json::array();
  for (const auto& r : refs) {
    const std::string text = r.get<std::string>();
    auto ref = ParseTaskDefinitionRef(text);
    if (!ref || ref->revision == 0) {
      failures.push_back({{"arn", text},
                          {"reason",
                           "The specified task definition identifier is invalid. Specify a "
                           "valid name or ARN and try again."}});
      continue;
    }
    const std::string arn = "arn:aws:ecs:" + account_.region + ":" + account_.account_id +
                            ":task-definition/" + ref->family + ":" +
                            std::to_string(ref->revision);
    // A revision that cannot be deleted comes back as this error, which writes nothing.
    constexpr const char* kRefused = "TaskDefinitionNotDeletable";
    Json result;
    auto committed = store::ReadModifyWrite(
        store_, RevisionKey(ref->family, ref->revision),
        [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
          if (!cur) {
            return ClientError(kRefused,
                               "The specified task definition does not exist. Specify a valid "
                               "account, family, revision and try again.");
          }
          Json doc = Json::parse(cur->value);
          Json& td = doc["taskDefinition"];
          const std::string status = td.value("status", "");
          if (status == "ACTIVE") {
            return ClientError(kRefused,
                               "The specified task definition is still in ACTIVE status. Please "
                               "deregister the target and try again.");
          }
          result = td;
          if (status == "DELETE_IN_PROGRESS") {
            return std::optional<std::string>(cur->value);
          }
          td["status"] = "DELETE_IN_PROGRESS";
          td["deleteRequestedAt"] = NowEpochSeconds();
          result = td;
          return std::optional<std::string>(doc.dump());
        });
    if (!committed.ok()) {
      if (committed.error().code != kRefused) {
        return committed.error();
      }
      failures.push_back({{"arn", arn}, {"reason", committed.error().message}});
      continue;
    }
    deleted.push_back(result);
  }
  return Json{{"taskDefinitions", deleted}, {"failures", failures}};
}

Result<int> EcsApi::PurgeDeletedTaskDefinitions() {
  auto rows = ListRevisions(store_, kTaskDefs);
  if (!rows.ok()) {
    return rows.error();
  }
  std::set<std::string> doomed;
  for (const auto& r : *rows) {
    if (r.status == "DELETE_IN_PROGRESS") {
      doomed.insert(r.arn);
    }
  }
  if (doomed.empty()) {
    return 0;
  }
  // What still uses a revision: a task that has not stopped, or a deployment
  // of a service that is not INACTIVE.
  std::set<std::string> used;
  auto clusters = store_.List("ecs/clusters/");
  if (!clusters.ok()) {
    return clusters.error();
  }
  for (const auto& c : *clusters) {
    const std::string cluster = c.key.substr(std::string("ecs/clusters/").size());
    TaskFilter filter;
    filter.cluster = cluster;
    auto tasks = tasks_->FindTasks(filter);
    if (!tasks.ok()) {
      return tasks.error();
    }
    for (const auto& t : *tasks) {
      if (t.value("lastStatus", "") != "STOPPED") {
        used.insert(t.value("taskDefinitionArn", ""));
      }
    }
  }
  auto services = store_.List(kServicesPrefix);
  if (!services.ok()) {
    return services.error();
  }
  for (const auto& e : *services) {
    Json svc = Json::parse(e.value, nullptr, false);
    if (!svc.is_object() || svc.value("status", "") == "INACTIVE") {
      continue;
    }
    used.insert(svc.value("taskDefinition", ""));
    for (const auto& d : svc.value("deployments", Json::array())) {
      used.insert(d.value("taskDefinition", ""));
    }
  }
  int purged = 0;
  for (const auto& arn : doomed) {
    if (used.count(arn) > 0) {
      continue;
    }
    auto ref = ParseTaskDefinitionRef(arn);
    if (!ref) {
      continue;
    }
    auto committed = store::ReadModifyWrite(
        store_, RevisionKey(ref->family, ref->revision),
        [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
          Json doc = cur ? Json::parse(cur->value) : Json::object();
          if (!cur || doc["taskDefinition"].value("status", "") != "DELETE_IN_PROGRESS") {
            return ClientError("TaskDefinitionKept", "");  // gone or changed meanwhile
          }
          return std::optional<std::string>();
        });
    if (!committed.ok()) {
      if (committed.error().code == "TaskDefinitionKept") {
        continue;
      }
      return committed.error();
    }
    ++purged;
  }
  return purged;
}

}  // namespace berth::ecs
