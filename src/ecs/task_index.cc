#include "ecs/task_index.h"

#include <chrono>
#include <mutex>

#include <nlohmann/json.hpp>

namespace berth::ecs {

namespace {

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<TaskIndexEntry> TaskIndex::ParseEntry(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return ServerError("store: a task index entry is not a JSON object");
  }
  TaskIndexEntry e;
  e.family = Str(j, "family");
  e.desired_status = Str(j, "desiredStatus");
  e.last_status = Str(j, "lastStatus");
  e.launch_type = Str(j, "launchType");
  e.node = Str(j, "node");
  e.started_by = Str(j, "startedBy");
  e.service = Str(j, "service");
  e.targets = Str(j, "targets");
  if (auto it = j.find("stoppedAt"); it != j.end() && it->is_number()) {
    e.stopped_at = it->get<double>();
  }
  return e;
}

void TaskIndex::ApplyLocked(const std::string& key, const std::string* value, int64_t revision) {
  // <prefix><cluster>/<id>
  std::string rest = key.substr(kTaskIndexPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string::npos) {
    return;
  }
  std::string cluster = rest.substr(0, slash);
  std::string id = rest.substr(slash + 1);
  if (value == nullptr) {
    auto c = clusters_.find(cluster);
    if (c != clusters_.end()) {
      c->second.erase(id);
      if (c->second.empty()) {
        clusters_.erase(c);
      }
    }
    return;
  }
  auto parsed = ParseEntry(*value);
  if (!parsed.ok()) {
    return;  // a damaged entry lists as nothing, as it did when parsed on each read
  }
  parsed->mod_revision = revision;
  clusters_[cluster][id] = std::move(*parsed);
}

Status TaskIndex::ReloadLocked() {
  const int64_t revision = store_.Revision();
  auto entries = store_.List(kTaskIndexPrefix);
  if (!entries.ok()) {
    return entries.error();
  }
  clusters_.clear();
  for (const auto& e : *entries) {
    ApplyLocked(e.key, &e.value, e.mod_revision);
  }
  // Writes after `revision` that the listing already saw are applied again
  // by the next catch-up, in order, which leaves the same state.
  revision_ = revision;
  return Ok();
}

Status TaskIndex::CatchUp() {
  const int64_t current = store_.Revision();
  {
    std::shared_lock lock(mu_);
    if (revision_ >= 0 && revision_ >= current) {
      return Ok();
    }
  }
  std::unique_lock lock(mu_);
  if (revision_ < 0) {
    return ReloadLocked();
  }
  if (revision_ >= current) {
    return Ok();
  }
  auto events = store_.Changes(revision_, kTaskIndexPrefix, std::chrono::milliseconds(0));
  if (!events.ok()) {
    if (events.error().code == "StoreCompacted") {
      return ReloadLocked();
    }
    return events.error();
  }
  int64_t seen = current;
  for (const auto& ev : *events) {
    ApplyLocked(ev.key, ev.kind == store::Event::Kind::kPut ? &ev.value : nullptr, ev.revision);
    seen = std::max(seen, ev.revision);
  }
  revision_ = seen;
  return Ok();
}

Status TaskIndex::ForEach(
    const std::string& cluster, const std::string& after,
    const std::function<bool(const std::string& id, const TaskIndexEntry&)>& visit) {
  BERTH_TRY(CatchUp());
  std::shared_lock lock(mu_);
  auto c = clusters_.find(cluster);
  if (c == clusters_.end()) {
    return Ok();
  }
  for (auto it = after.empty() ? c->second.begin() : c->second.upper_bound(after);
       it != c->second.end(); ++it) {
    if (!visit(it->first, it->second)) {
      break;
    }
  }
  return Ok();
}

Status TaskIndex::ForAll(const std::function<void(const std::string& cluster,
                                                  const std::string& id,
                                                  const TaskIndexEntry&)>& visit) {
  BERTH_TRY(CatchUp());
  std::shared_lock lock(mu_);
  for (const auto& [cluster, tasks] : clusters_) {
    for (const auto& [id, entry] : tasks) {
      visit(cluster, id, entry);
    }
  }
  return Ok();
}

}  // namespace berth::ecs
