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

void TaskIndex::Unlink(Cluster& c, const std::string& id, const TaskIndexEntry& e) {
  auto drop = [&id](std::map<std::string, std::set<std::string>>& by, const std::string& key) {
    auto it = by.find(key);
    if (it != by.end()) {
      it->second.erase(id);
      if (it->second.empty()) {
        by.erase(it);
      }
    }
  };
  drop(c.by_started_by, e.started_by);
  drop(c.by_service, e.service);
  drop(c.by_family, e.family);
}

void TaskIndex::Link(Cluster& c, const std::string& id, const TaskIndexEntry& e) {
  c.by_started_by[e.started_by].insert(id);
  c.by_service[e.service].insert(id);
  c.by_family[e.family].insert(id);
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
  auto c = clusters_.find(cluster);
  if (c != clusters_.end()) {
    auto old = c->second.tasks.find(id);
    if (old != c->second.tasks.end()) {
      Unlink(c->second, id, old->second);
      c->second.tasks.erase(old);
    }
  }
  if (value == nullptr) {
    if (c != clusters_.end() && c->second.tasks.empty()) {
      clusters_.erase(c);
    }
    return;
  }
  auto parsed = ParseEntry(*value);
  if (!parsed.ok()) {
    return;  // a damaged entry lists as nothing, as it did when parsed on each read
  }
  parsed->mod_revision = revision;
  Cluster& into = clusters_[cluster];
  Link(into, id, *parsed);
  into.tasks[id] = std::move(*parsed);
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
  return ForEachWith(cluster, "", "", after, visit);
}

Status TaskIndex::ForEachWith(
    const std::string& cluster, const std::string& field, const std::string& value,
    const std::string& after,
    const std::function<bool(const std::string& id, const TaskIndexEntry&)>& visit) {
  BERTH_TRY(CatchUp());
  std::shared_lock lock(mu_);
  auto c = clusters_.find(cluster);
  if (c == clusters_.end()) {
    return Ok();
  }
  const Cluster& tasks_of = c->second;
  if (field.empty()) {
    for (auto it = after.empty() ? tasks_of.tasks.begin() : tasks_of.tasks.upper_bound(after);
         it != tasks_of.tasks.end(); ++it) {
      if (!visit(it->first, it->second)) {
        break;
      }
    }
    return Ok();
  }
  const auto& by = field == "startedBy" ? tasks_of.by_started_by
                   : field == "service" ? tasks_of.by_service
                                        : tasks_of.by_family;
  auto ids = by.find(value);
  if (ids == by.end()) {
    return Ok();
  }
  for (auto it = after.empty() ? ids->second.begin() : ids->second.upper_bound(after);
       it != ids->second.end(); ++it) {
    if (!visit(*it, tasks_of.tasks.at(*it))) {
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
  for (const auto& [cluster, c] : clusters_) {
    for (const auto& [id, entry] : c.tasks) {
      visit(cluster, id, entry);
    }
  }
  return Ok();
}

}  // namespace berth::ecs
