// The log store: CloudWatch Logs groups, streams and events on local disk.
//
// Layout inside the store's directory:
//   meta.db              SQLite (WAL): groups (retention, tags, KMS key, ARN)
//                        and streams; small, changed rarely
//   streams/<id>/*.seg   each stream's events as append-only segment files
//                        (see log_segment.h), rolled at a size or an age
//
// Events: every appended batch gets consecutive, store-wide event ids that only
// ever grow, so an id orders events by ingestion. Reads in time order walk the
// in-memory block index (one entry per appended batch) and merge blocks whose
// time ranges overlap, so batches may arrive out of time order. An event's
// position in time order is its EventKey (timestamp, then id); pagination
// tokens are EventKeys, so a page boundary never skips or repeats an event.
//
// Durability: Append returns after the batch is written and fdatasync'ed; an
// acknowledged batch survives a crash (kill -9 or power loss). A torn tail left
// by a crash during an unacknowledged append is cut off when the store opens.
//
// Retention: SweepExpired(now) expires the events of groups with a retention
// policy that are older than the policy allows. Expired events disappear from
// reads at once; their segment files are deleted when every block in them has
// expired (so up to one segment per stream may linger on disk).
//
// Errors carry the AWS error types the Logs API answers with
// (ResourceNotFoundException, ResourceAlreadyExistsException, ...), and
// ServerException for I/O failures.
//
// Thread-safety: every method may be called from any thread. Appends to
// different streams sync in parallel; concurrent appends to one stream share
// their syncs (group commit): each fdatasync covers every batch written
// while the previous one ran.
#pragma once

#include <chrono>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "logs/log_segment.h"

struct sqlite3;

namespace berth::logs {

inline constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

/// A position in time order: events sort by timestamp, then by event id.
struct EventKey {
  int64_t timestamp = 0;
  int64_t event_id = 0;
  auto operator<=>(const EventKey&) const = default;
};

struct LogEvent {
  int64_t timestamp = 0;
  int64_t ingestion_time = 0;
  int64_t event_id = 0;
  std::string message;
  EventKey key() const { return {timestamp, event_id}; }
};

struct GroupOptions {
  std::string kms_key_id;
  std::map<std::string, std::string> tags;
  std::string arn;  // as the API computed it when the group was created; may be empty
};

struct GroupInfo {
  std::string name;
  int64_t creation_time = 0;
  std::optional<int> retention_days;
  std::string kms_key_id;
  std::string arn;
  std::map<std::string, std::string> tags;
  uint64_t stored_bytes = 0;  // message bytes of the events not expired
};

struct StreamInfo {
  std::string name;
  int64_t creation_time = 0;
  uint64_t event_count = 0;  // events not expired; the timestamps below are 0 when none
  int64_t first_event_timestamp = 0;
  int64_t last_event_timestamp = 0;
  int64_t last_ingestion_time = 0;
  int64_t last_event_id = 0;  // the highest id ever appended (0: none); survives expiry
  uint64_t stored_bytes = 0;
};

struct AppendResult {
  int64_t first_event_id = 0;
  int64_t last_event_id = 0;
  size_t count = 0;
};

/// One stream, in time order, within [start_time, end_time).
struct ReadQuery {
  int64_t start_time = 0;
  int64_t end_time = kMaxTime;
  bool forward = true;
  std::optional<EventKey> after;   // forward: only events after this key
  std::optional<EventKey> before;  // backward: only events before this key
  size_t limit = 10000;
  size_t max_bytes = 1 << 20;  // a page's message bytes plus 26 per event
};

/// The events nearest to the starting point in the read direction, returned in
/// ascending time order either way.
struct ReadPage {
  std::vector<LogEvent> events;
  bool more = false;  // a limit cut the page short
};

/// Matches a message; null matches everything.
using MessageMatcher = std::function<bool(std::string_view message)>;

/// Several streams of one group, merged in time order, within [start_time, end_time).
struct FilterQuery {
  std::vector<std::string> stream_names;  // empty: every stream (or those with the prefix)
  std::string stream_prefix;
  int64_t start_time = 0;
  int64_t end_time = kMaxTime;
  std::optional<EventKey> after;
  MessageMatcher matcher;
  size_t limit = 10000;
  size_t max_bytes = 1 << 20;
  size_t scan_budget = 0;  // events examined before a partial page is returned; 0: default
};

struct FilteredEvent {
  uint32_t stream = 0;  // index into the page's `streams`
  LogEvent event;
};

struct FilterPage {
  std::vector<std::string> streams;  // the streams searched, by name
  std::vector<FilteredEvent> events;
  // Set when more events may follow: continue with `after` = this key.
  std::optional<EventKey> resume_after;
};

/// New events of a group in ingestion (event id) order, for followers.
struct FollowQuery {
  int64_t after_event_id = 0;
  std::vector<std::string> stream_names;
  std::string stream_prefix;
  size_t limit = 10000;
  std::chrono::milliseconds wait{0};  // how long to wait for a first event
};

struct FollowPage {
  std::vector<std::string> streams;
  std::vector<FilteredEvent> events;
  int64_t next_after = 0;  // pass as after_event_id to continue
};

struct SweepStats {
  size_t groups_swept = 0;
  size_t segments_deleted = 0;
  uint64_t bytes_freed = 0;
};

struct LogStoreOptions {
  uint64_t segment_bytes = 64ull << 20;             // roll a segment past this size
  int64_t segment_max_age_ms = 24 * 3600 * 1000LL;  // or when its first block is this old
  bool sync = true;  // fdatasync each append (off only in benchmarks)
  size_t filter_scan_budget = 4'000'000;
};

/// Events older than `timestamp` whose id is below `event_id` have expired.
struct Watermark {
  int64_t timestamp = 0;
  int64_t event_id = 0;
};

struct GroupState;
struct StreamState;

class LogStore {
 public:
  /// Opens (creating if needed) the store in `dir`, recovering from a crash.
  static Result<std::unique_ptr<LogStore>> Open(const std::string& dir,
                                                LogStoreOptions options = {});
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  /// The current time in epoch milliseconds.
  static int64_t NowMs();

  // Groups. Names are validated by the API layer, not here.
  Status CreateGroup(const std::string& name, GroupOptions options, int64_t now_ms);
  Status DeleteGroup(const std::string& name);
  Result<GroupInfo> GetGroup(const std::string& name) const;
  /// Groups whose name starts with `prefix`, by name.
  std::vector<GroupInfo> ListGroups(std::string_view prefix = "") const;
  /// Sets (or with nullopt removes) the group's retention in days.
  Status SetRetention(const std::string& name, std::optional<int> days);
  /// Adds or replaces tags. Fails with TooManyTagsException when the group
  /// would end up with more than `max_tags` tags.
  Status TagGroup(const std::string& name, const std::map<std::string, std::string>& tags,
                  size_t max_tags = 50);
  Status UntagGroup(const std::string& name, const std::vector<std::string>& keys);

  // Streams.
  Status CreateStream(const std::string& group, const std::string& stream, int64_t now_ms);
  Status DeleteStream(const std::string& group, const std::string& stream);
  Result<StreamInfo> GetStream(const std::string& group, const std::string& stream) const;
  /// Streams whose name starts with `prefix`, by name.
  Result<std::vector<StreamInfo>> ListStreams(const std::string& group,
                                              std::string_view prefix = "") const;
  /// Creates the group and the stream when missing (for the agent's log driver).
  Status EnsureStream(const std::string& group, const std::string& stream, int64_t now_ms);

  /// Appends one batch to a stream, durably. Events may be in any time order;
  /// they are stored sorted by timestamp (stable for equal timestamps) and get
  /// consecutive ids in that order. The API layer applies the PutLogEvents
  /// limits; this call only refuses an empty batch.
  Result<AppendResult> Append(const std::string& group, const std::string& stream,
                              std::span<const InputEvent> events, int64_t now_ms = NowMs());

  /// Reads one stream in time order.
  Result<ReadPage> Read(const std::string& group, const std::string& stream,
                        const ReadQuery& query) const;

  /// Reads several streams of a group merged in time order. Examines at most
  /// the scan budget's worth of events, so a page can be short or empty and
  /// still have `resume_after`.
  Result<FilterPage> Filter(const std::string& group, const FilterQuery& query) const;

  /// Returns events with ids above `after_event_id`, waiting up to `wait` for
  /// the first one. Every event with an id up to `next_after` has been seen, so
  /// a follower that keeps passing it back misses nothing and sees nothing twice.
  Result<FollowPage> Follow(const std::string& group, const FollowQuery& query) const;

  /// The highest event id such that every event with an id up to it is readable.
  int64_t VisibleEventId() const;

  /// Expires events older than their group's retention at `now_ms`.
  Result<SweepStats> SweepExpired(int64_t now_ms);

 private:
  LogStore(std::string dir, LogStoreOptions options);

  Status Init();
  Status LoadStream(GroupState& group, const std::shared_ptr<StreamState>& stream);
  Status PersistIdFloor();
  Status DbExec(const std::string& sql);
  std::shared_ptr<GroupState> FindGroup(const std::string& name) const;
  Result<std::shared_ptr<StreamState>> FindStream(const std::string& group,
                                                  const std::string& stream,
                                                  std::vector<Watermark>* expired) const;
  Status CreateGroupLocked(const std::string& name, GroupOptions options, int64_t now_ms);
  Status CreateStreamLocked(GroupState& group, const std::string& stream, int64_t now_ms);
  Result<std::vector<std::shared_ptr<StreamState>>> SelectStreams(
      const std::string& group, const std::vector<std::string>& names, const std::string& prefix,
      std::vector<Watermark>* expired) const;
  void RemoveStreamFiles(StreamState& stream);
  Result<Segment*> ActiveSegment(StreamState& stream, size_t block_size, int64_t now_ms);
  void FinishIds(int64_t first_id);
  // Syncs the stream's pending blocks and publishes them (or fails them).
  // Requires `lock` to hold the stream's append_mu; releases it while syncing.
  void SyncRound(StreamState& stream, std::unique_lock<std::mutex>& lock);
  // Marks a stream deleted, failing appends that wait for their sync.
  void RetireStream(StreamState& stream);
  Status SweepStream(StreamState& stream, const std::vector<Watermark>& expired, SweepStats* stats);

  const std::string dir_;
  const LogStoreOptions options_;

  // Guards the group and stream maps, group metadata and the database.
  // Lock order: mu_, then a stream's append_mu, then its index_mu, then id_mu_.
  mutable std::shared_mutex mu_;
  sqlite3* db_ = nullptr;
  std::map<std::string, std::shared_ptr<GroupState>> groups_;

  // Event id allocation and the visibility watermark for followers.
  mutable std::mutex id_mu_;
  mutable std::condition_variable id_cv_;
  int64_t next_id_ = 1;
  int64_t visible_id_ = 0;
  std::set<int64_t> inflight_;  // first ids of batches allocated but not yet readable
};

}  // namespace berth::logs
