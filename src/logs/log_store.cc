#include "logs/log_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <numeric>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

namespace berth::logs {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// In-memory state

namespace {

constexpr int64_t kMaxId = std::numeric_limits<int64_t>::max();
constexpr size_t kPerEventBytes = 26;

}  // namespace

/// One appended batch: where its payload lies and what its header says.
struct BlockRef {
  const Segment* segment = nullptr;
  uint64_t payload_offset = 0;
  BlockHeader h;

  int64_t LastId() const { return h.first_id + static_cast<int64_t>(h.count) - 1; }
  // Events inside a block are sorted by timestamp and got their ids in that
  // order, so the first record has the smallest key and the last the largest.
  EventKey MinKey() const { return {h.min_ts, h.first_id}; }
  EventKey MaxKey() const { return {h.max_ts, LastId()}; }
  uint64_t MessageBytes() const { return h.payload_len - kRecordOverhead * h.count; }
};

// How an append ended, filled in by whichever appender synced its block.
struct AppendOutcome {
  bool done = false;
  Status status;
};

struct PendingBlock {
  BlockRef ref;
  Segment* segment = nullptr;
  std::shared_ptr<AppendOutcome> outcome;
};

struct StreamStats {
  uint64_t count = 0;
  int64_t first_ts = 0;
  int64_t last_ts = 0;
  int64_t last_ingestion = 0;
  uint64_t bytes = 0;
};

struct StreamState {
  int64_t id = 0;
  std::string name;
  int64_t creation_time = 0;
  std::string dir;

  // Serializes writes, sweeps and deletion of this stream, and guards the
  // members up to index_mu.
  std::mutex append_mu;
  Segment* active = nullptr;  // where appends go; null until the first append
  int64_t active_since = 0;   // ingestion time of the active segment's first block
  uint64_t next_seq = 1;
  // Group commit: blocks written but not yet synced, in write (and id)
  // order. One appender at a time syncs on behalf of all of them.
  std::deque<PendingBlock> pending;
  bool syncing = false;
  std::condition_variable sync_cv;

  // Guards everything below; readers hold it shared for a whole query.
  mutable std::shared_mutex index_mu;
  bool deleted = false;
  std::vector<std::unique_ptr<Segment>> segments;
  std::vector<BlockRef> blocks;  // ascending event ids (append order)
  // Time-order indexes over `blocks`: by_min sorts blocks by MinKey and
  // by_min_hi[i] is the largest MaxKey among by_min[0..i]; by_max sorts by
  // MaxKey and by_max_lo[i] is the smallest MinKey among by_max[i..].
  std::vector<uint32_t> by_min;
  std::vector<EventKey> by_min_hi;
  std::vector<uint32_t> by_max;
  std::vector<EventKey> by_max_lo;
  StreamStats stats;
  int64_t last_event_id = 0;
};

struct GroupState {
  int64_t id = 0;
  std::string name;
  int64_t creation_time = 0;
  std::optional<int> retention_days;
  std::string kms_key_id;
  std::string arn;
  std::map<std::string, std::string> tags;
  std::vector<Watermark> expired;
  std::map<std::string, std::shared_ptr<StreamState>> streams;
};

namespace {

Error GroupNotFound() {
  return ClientError("ResourceNotFoundException", "The specified log group does not exist.");
}

Error StreamNotFound() {
  return ClientError("ResourceNotFoundException", "The specified log stream does not exist.");
}

bool Hidden(const std::vector<Watermark>& expired, int64_t ts, int64_t id) {
  for (const auto& w : expired) {
    if (ts < w.timestamp && id < w.event_id) {
      return true;
    }
  }
  return false;
}

bool FullyHidden(const std::vector<Watermark>& expired, const BlockRef& b) {
  for (const auto& w : expired) {
    if (b.h.max_ts < w.timestamp && b.LastId() < w.event_id) {
      return true;
    }
  }
  return false;
}

bool PartlyHidden(const std::vector<Watermark>& expired, const BlockRef& b) {
  for (const auto& w : expired) {
    if (b.h.min_ts < w.timestamp && b.h.first_id < w.event_id) {
      return true;
    }
  }
  return false;
}

Status ReadBlock(const BlockRef& b, std::string* buf, std::vector<RecordView>* recs) {
  BERTH_TRY(b.segment->ReadAt(b.payload_offset, b.h.payload_len, buf));
  recs->clear();
  recs->reserve(b.h.count);
  if (!DecodeBlock(*buf, b.h, recs)) {
    return ServerError(
        fmt::format("logs: corrupt block at offset {} of {}", b.payload_offset, b.segment->path()));
  }
  return Ok();
}

void AddToStats(StreamStats& st, int64_t min_ts, int64_t max_ts, int64_t ingestion, uint64_t count,
                uint64_t bytes) {
  if (st.count == 0) {
    st.first_ts = min_ts;
    st.last_ts = max_ts;
  } else {
    st.first_ts = std::min(st.first_ts, min_ts);
    st.last_ts = std::max(st.last_ts, max_ts);
  }
  st.last_ingestion = std::max(st.last_ingestion, ingestion);
  st.count += count;
  st.bytes += bytes;
}

// Recomputes the stream's statistics over its events that have not expired.
// Requires index_mu held exclusively.
Status RecomputeStats(StreamState& s, const std::vector<Watermark>& expired) {
  s.stats = StreamStats{};
  std::string buf;
  std::vector<RecordView> recs;
  for (const auto& b : s.blocks) {
    if (FullyHidden(expired, b)) {
      continue;
    }
    if (!PartlyHidden(expired, b)) {
      AddToStats(s.stats, b.h.min_ts, b.h.max_ts, b.h.ingestion_time, b.h.count, b.MessageBytes());
      continue;
    }
    BERTH_TRY(ReadBlock(b, &buf, &recs));
    for (const auto& r : recs) {
      if (!Hidden(expired, r.timestamp, r.id)) {
        AddToStats(s.stats, r.timestamp, r.timestamp, b.h.ingestion_time, 1, r.message.size());
      }
    }
  }
  return Ok();
}

// Builds the time-order indexes from scratch. Requires index_mu held exclusively.
void RebuildIndex(StreamState& s) {
  const size_t n = s.blocks.size();
  s.by_min.resize(n);
  std::iota(s.by_min.begin(), s.by_min.end(), 0);
  std::sort(s.by_min.begin(), s.by_min.end(),
            [&](uint32_t a, uint32_t b) { return s.blocks[a].MinKey() < s.blocks[b].MinKey(); });
  s.by_min_hi.resize(n);
  for (size_t i = 0; i < n; ++i) {
    EventKey k = s.blocks[s.by_min[i]].MaxKey();
    s.by_min_hi[i] = i == 0 ? k : std::max(s.by_min_hi[i - 1], k);
  }
  s.by_max.resize(n);
  std::iota(s.by_max.begin(), s.by_max.end(), 0);
  std::sort(s.by_max.begin(), s.by_max.end(),
            [&](uint32_t a, uint32_t b) { return s.blocks[a].MaxKey() < s.blocks[b].MaxKey(); });
  s.by_max_lo.resize(n);
  for (size_t i = n; i-- > 0;) {
    EventKey k = s.blocks[s.by_max[i]].MinKey();
    s.by_max_lo[i] = i + 1 == n ? k : std::min(s.by_max_lo[i + 1], k);
  }
}

// Adds blocks[idx] (just appended) to the time-order indexes. Batches that
// arrive in time order land at the ends of both orders in constant time.
// Requires index_mu held exclusively.
void IndexBlock(StreamState& s, uint32_t idx) {
  const EventKey mn = s.blocks[idx].MinKey();
  const EventKey mx = s.blocks[idx].MaxKey();
  bool in_order = s.by_min.empty() || s.blocks[s.by_min.back()].MinKey() < mn;
  in_order = in_order && (s.by_max.empty() || s.blocks[s.by_max.back()].MaxKey() < mx);
  if (!in_order) {
    RebuildIndex(s);
    return;
  }
  s.by_min.push_back(idx);
  s.by_min_hi.push_back(s.by_min_hi.empty() ? mx : std::max(s.by_min_hi.back(), mx));
  s.by_max.push_back(idx);
  s.by_max_lo.push_back(mn);
  for (size_t i = s.by_max_lo.size() - 1; i-- > 0 && mn < s.by_max_lo[i];) {
    s.by_max_lo[i] = mn;
  }
}

// ---------------------------------------------------------------------------
// Cursors: sources of events in one order, merged by Merger.

// A key in iteration order: the EventKey when reading forward, its negation
// when reading backward, so that both directions read ascending DKeys.
struct DKey {
  int64_t a = 0;
  int64_t b = 0;
  auto operator<=>(const DKey&) const = default;
};

constexpr DKey kDKeyMax{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max()};

class EventSource {
 public:
  virtual ~EventSource() = default;
  bool exhausted() const { return exhausted_; }
  bool exact() const { return exact_; }
  // A lower bound on the next event's key; the key itself when exact().
  // Only meaningful while !exhausted().
  virtual DKey Bound() const = 0;
  // Positions on the next event: afterwards exhausted() or exact().
  virtual Status Prime() = 0;
  // The event primed; requires exact().
  virtual const RecordView& Current() const = 0;
  virtual int64_t CurrentIngestion() const = 0;
  // Consumes the current event.
  virtual void Pop() = 0;

 protected:
  bool exhausted_ = false;
  bool exact_ = false;
};

struct OpenBlock {
  std::string buf;
  std::vector<RecordView> recs;  // in iteration order
  size_t pos = 0;
  int64_t ingestion = 0;
};

// One stream's events in time order within the open key interval (lo, hi),
// forward or backward, skipping expired events. Blocks are read lazily: a
// block is opened only when its smallest key could come next, so batches
// that arrived out of time order are merged with the blocks they overlap.
// Requires the stream's index_mu held (shared) for the cursor's lifetime.
class TimeCursor final : public EventSource {
 public:
  TimeCursor(const StreamState& s, EventKey lo, EventKey hi, bool forward,
             const std::vector<Watermark>& expired)
      : s_(s), forward_(forward), expired_(expired), n_(s.blocks.size()) {
    dlo_ = ToD(forward ? lo : hi);
    dhi_ = ToD(forward ? hi : lo);
    // Blocks before the first whose running maximum passes dlo hold only keys
    // at or below dlo.
    size_t first = 0;
    size_t last = n_;
    while (first < last) {
      size_t mid = first + (last - first) / 2;
      if (PrefixMax(mid) > dlo_) {
        last = mid;
      } else {
        first = mid + 1;
      }
    }
    next_ = dlo_ < dhi_ ? first : n_;
    exhausted_ = next_ >= n_;
  }

  DKey Bound() const override {
    DKey bound = heap_.empty() ? kDKeyMax : KeyOf(Top());
    if (next_ < n_) {
      bound = std::min(bound, DMin(next_));
    }
    return bound;
  }

  Status Prime() override {
    exact_ = false;
    while (true) {
      while (next_ < n_) {
        DKey dmin = DMin(next_);
        if (dmin >= dhi_) {
          next_ = n_;
          break;
        }
        if (!heap_.empty() && !(dmin < KeyOf(Top()))) {
          break;
        }
        BERTH_TRY(Open(next_++));
      }
      if (heap_.empty()) {
        exhausted_ = true;
        return Ok();
      }
      const RecordView& r = Top();
      if (KeyOf(r) >= dhi_) {
        heap_.clear();
        next_ = n_;
        exhausted_ = true;
        return Ok();
      }
      if (Hidden(expired_, r.timestamp, r.id)) {
        Advance();
        continue;
      }
      exact_ = true;
      return Ok();
    }
  }

  const RecordView& Current() const override { return Top(); }
  int64_t CurrentIngestion() const override { return heap_.front()->ingestion; }

  void Pop() override {
    Advance();
    exact_ = false;
    exhausted_ = heap_.empty() && next_ >= n_;
  }

 private:
  DKey ToD(EventKey k) const {
    return forward_ ? DKey{k.timestamp, k.event_id} : DKey{-k.timestamp, -k.event_id};
  }
  DKey KeyOf(const RecordView& r) const { return ToD(EventKey{r.timestamp, r.id}); }
  const BlockRef& BlockAt(size_t i) const {
    return s_.blocks[forward_ ? s_.by_min[i] : s_.by_max[n_ - 1 - i]];
  }
  DKey DMin(size_t i) const {
    const BlockRef& b = BlockAt(i);
    return ToD(forward_ ? b.MinKey() : b.MaxKey());
  }
  // The largest key (in iteration order) among the first i + 1 blocks.
  DKey PrefixMax(size_t i) const {
    return ToD(forward_ ? s_.by_min_hi[i] : s_.by_max_lo[n_ - 1 - i]);
  }
  const RecordView& Top() const { return heap_.front()->recs[heap_.front()->pos]; }

  static bool Later(const TimeCursor* self, const std::unique_ptr<OpenBlock>& x,
                    const std::unique_ptr<OpenBlock>& y) {
    return self->KeyOf(x->recs[x->pos]) > self->KeyOf(y->recs[y->pos]);
  }

  Status Open(size_t i) {
    const BlockRef& b = BlockAt(i);
    if (FullyHidden(expired_, b)) {
      return Ok();
    }
    auto block = std::make_unique<OpenBlock>();
    BERTH_TRY(ReadBlock(b, &block->buf, &block->recs));
    if (!forward_) {
      std::reverse(block->recs.begin(), block->recs.end());
    }
    block->ingestion = b.h.ingestion_time;
    auto it = std::upper_bound(block->recs.begin(), block->recs.end(), dlo_,
                               [this](const DKey& k, const RecordView& r) { return k < KeyOf(r); });
    block->pos = static_cast<size_t>(it - block->recs.begin());
    if (block->pos < block->recs.size()) {
      heap_.push_back(std::move(block));
      std::push_heap(heap_.begin(), heap_.end(),
                     [this](const auto& x, const auto& y) { return Later(this, x, y); });
    }
    return Ok();
  }

  void Advance() {
    auto later = [this](const auto& x, const auto& y) {
      return Later(this, x, y);
    };
    std::pop_heap(heap_.begin(), heap_.end(), later);
    auto& block = heap_.back();
    if (++block->pos == block->recs.size()) {
      heap_.pop_back();
    } else {
      std::push_heap(heap_.begin(), heap_.end(), later);
    }
  }

  const StreamState& s_;
  const bool forward_;
  const std::vector<Watermark>& expired_;
  const size_t n_;
  DKey dlo_;
  DKey dhi_;
  size_t next_ = 0;
  std::vector<std::unique_ptr<OpenBlock>> heap_;
};

// One stream's events with ids in (after, upto], in id order.
// Requires the stream's index_mu held (shared) for the cursor's lifetime.
class IdCursor final : public EventSource {
 public:
  IdCursor(const StreamState& s, int64_t after, int64_t upto, const std::vector<Watermark>& expired)
      : s_(s), after_(after), upto_(upto), expired_(expired) {
    auto it = std::upper_bound(s.blocks.begin(), s.blocks.end(), after,
                               [](int64_t id, const BlockRef& b) { return id < b.LastId(); });
    next_ = static_cast<size_t>(it - s.blocks.begin());
    exhausted_ = next_ >= s.blocks.size() || s.blocks[next_].h.first_id > upto_;
  }

  DKey Bound() const override {
    if (open_) {
      return DKey{open_->recs[open_->pos].id, 0};
    }
    return DKey{std::max(s_.blocks[next_].h.first_id, after_ + 1), 0};
  }

  Status Prime() override {
    exact_ = false;
    while (true) {
      if (!open_) {
        if (next_ >= s_.blocks.size() || s_.blocks[next_].h.first_id > upto_) {
          exhausted_ = true;
          return Ok();
        }
        const BlockRef& b = s_.blocks[next_++];
        if (FullyHidden(expired_, b)) {
          continue;
        }
        auto block = std::make_unique<OpenBlock>();
        BERTH_TRY(ReadBlock(b, &block->buf, &block->recs));
        // Records are in time order and got their ids in that order.
        block->pos = after_ >= b.h.first_id ? static_cast<size_t>(after_ - b.h.first_id + 1) : 0;
        block->ingestion = b.h.ingestion_time;
        if (block->pos >= block->recs.size()) {
          continue;
        }
        open_ = std::move(block);
      }
      const RecordView& r = open_->recs[open_->pos];
      if (r.id > upto_) {
        open_.reset();
        exhausted_ = true;
        return Ok();
      }
      if (Hidden(expired_, r.timestamp, r.id)) {
        Step();
        continue;
      }
      exact_ = true;
      return Ok();
    }
  }

  const RecordView& Current() const override { return open_->recs[open_->pos]; }
  int64_t CurrentIngestion() const override { return open_->ingestion; }

  void Pop() override {
    Step();
    exact_ = false;
    exhausted_ = !open_ && (next_ >= s_.blocks.size() || s_.blocks[next_].h.first_id > upto_);
  }

 private:
  void Step() {
    if (++open_->pos == open_->recs.size()) {
      open_.reset();
    }
  }

  const StreamState& s_;
  const int64_t after_;
  const int64_t upto_;
  const std::vector<Watermark>& expired_;
  size_t next_ = 0;
  std::unique_ptr<OpenBlock> open_;
};

// Merges sources by key, priming a source only when its lower bound is the
// smallest, so sources whose data lies later are never read early.
class Merger {
 public:
  explicit Merger(std::vector<EventSource*> sources) : sources_(std::move(sources)) {
    for (uint32_t i = 0; i < sources_.size(); ++i) {
      if (!sources_[i]->exhausted()) {
        Push({sources_[i]->Bound(), false, i});
      }
    }
  }

  // Positions on the next event; false when every source is exhausted.
  Result<bool> Next() {
    while (!heap_.empty()) {
      Entry top = heap_.front();
      if (top.exact) {
        return true;
      }
      std::pop_heap(heap_.begin(), heap_.end(), Later);
      heap_.pop_back();
      EventSource& src = *sources_[top.source];
      BERTH_TRY(src.Prime());
      if (!src.exhausted()) {
        Push({src.Bound(), true, top.source});
      }
    }
    return false;
  }

  uint32_t source() const { return heap_.front().source; }
  EventSource& current() const { return *sources_[heap_.front().source]; }

  void Consume() {
    uint32_t i = heap_.front().source;
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    heap_.pop_back();
    EventSource& src = *sources_[i];
    src.Pop();
    if (!src.exhausted()) {
      Push({src.Bound(), src.exact(), i});
    }
  }

 private:
  struct Entry {
    DKey key;
    bool exact = false;
    uint32_t source = 0;
  };

  // Orders the heap as a min-heap on key; at equal keys an inexact bound
  // goes first, since its event may be the smaller one.
  static bool Later(const Entry& x, const Entry& y) {
    if (x.key != y.key) {
      return x.key > y.key;
    }
    return x.exact && !y.exact;
  }

  void Push(Entry e) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end(), Later);
  }

  std::vector<EventSource*> sources_;
  std::vector<Entry> heap_;
};

LogEvent ToLogEvent(const EventSource& src) {
  const RecordView& r = src.Current();
  return LogEvent{r.timestamp, src.CurrentIngestion(), r.id, std::string(r.message)};
}

// ---------------------------------------------------------------------------
// SQLite helpers

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }

  // Steps once: true on a row, false when done.
  Result<bool> Step() {
    if (rc_ != SQLITE_OK) {
      return Failure();
    }
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc == SQLITE_DONE) {
      return false;
    }
    return Failure();
  }

  Status Run() {
    auto r = Step();
    if (!r.ok()) {
      return r.error();
    }
    return Ok();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  Error Failure() const {
    return ServerError(std::string("logs metadata: ") + sqlite3_errmsg(db_));
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string TagsToJson(const std::map<std::string, std::string>& tags) {
  return nlohmann::json(tags).dump();
}

std::map<std::string, std::string> TagsFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::map<std::string, std::string> out;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_string()) {
        out[it.key()] = it.value().get<std::string>();
      }
    }
  }
  return out;
}

std::string WatermarksToJson(const std::vector<Watermark>& marks) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& w : marks) {
    j.push_back({w.timestamp, w.event_id});
  }
  return j.dump();
}

std::vector<Watermark> WatermarksFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::vector<Watermark> out;
  if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_array() && e.size() == 2 && e[0].is_number_integer() && e[1].is_number_integer()) {
        out.push_back({e[0].get<int64_t>(), e[1].get<int64_t>()});
      }
    }
  }
  return out;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS log_groups (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  creation_time INTEGER NOT NULL,
  retention_days INTEGER,
  kms_key_id TEXT NOT NULL DEFAULT '',
  arn TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '{}',
  expired TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS log_streams (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  creation_time INTEGER NOT NULL,
  UNIQUE (group_id, name)
);
CREATE TABLE IF NOT EXISTS log_meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
)sql";

std::string SegmentName(uint64_t seq) {
  return fmt::format("{:016d}.seg", seq);
}

}  // namespace

// ---------------------------------------------------------------------------
// Opening and recovery

LogStore::LogStore(std::string dir, LogStoreOptions options)
    : dir_(std::move(dir)), options_(options) {}

LogStore::~LogStore() {
  if (db_ != nullptr) {
    sqlite3_close(db_);
  }
}

int64_t LogStore::NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Result<std::unique_ptr<LogStore>> LogStore::Open(const std::string& dir, LogStoreOptions options) {
  std::unique_ptr<LogStore> store(new LogStore(dir, options));
  BERTH_TRY(store->Init());
  return store;
}

Status LogStore::DbExec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return ServerError("logs metadata: " + message);
  }
  return Ok();
}

Status LogStore::Init() {
  std::error_code ec;
  fs::create_directories(dir_ + "/streams", ec);
  if (ec) {
    return ServerError("logs: create " + dir_ + "/streams: " + ec.message());
  }
  const std::string db_path = dir_ + "/meta.db";
  if (sqlite3_open_v2(db_path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return ServerError("logs: open " + db_path + ": " +
                       (db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3_busy_timeout(db_, 5000);
  BERTH_TRY(DbExec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  BERTH_TRY(DbExec(kSchema));

  int64_t floor = 1;
  {
    Stmt q(db_, "SELECT value FROM log_meta WHERE key = 'next_event_id'");
    auto row = q.Step();
    if (!row.ok()) {
      return row.error();
    }
    if (*row) {
      floor = q.Int(0);
    }
  }

  std::map<int64_t, std::shared_ptr<GroupState>> by_id;
  {
    Stmt q(db_,
           "SELECT id, name, creation_time, retention_days, kms_key_id, arn, tags, expired "
           "FROM log_groups");
    while (true) {
      auto row = q.Step();
      if (!row.ok()) {
        return row.error();
      }
      if (!*row) {
        break;
      }
      auto g = std::make_shared<GroupState>();
      g->id = q.Int(0);
      g->name = q.Text(1);
      g->creation_time = q.Int(2);
      if (!q.IsNull(3)) {
        g->retention_days = static_cast<int>(q.Int(3));
      }
      g->kms_key_id = q.Text(4);
      g->arn = q.Text(5);
      g->tags = TagsFromJson(q.Text(6));
      g->expired = WatermarksFromJson(q.Text(7));
      by_id[g->id] = g;
      groups_[g->name] = g;
    }
  }

  std::set<std::string> live_dirs;
  int64_t max_id = 0;
  {
    Stmt q(db_, "SELECT id, group_id, name, creation_time FROM log_streams");
    while (true) {
      auto row = q.Step();
      if (!row.ok()) {
        return row.error();
      }
      if (!*row) {
        break;
      }
      auto it = by_id.find(q.Int(1));
      if (it == by_id.end()) {
        continue;  // a stream row left behind by a group deletion cut short
      }
      auto s = std::make_shared<StreamState>();
      s->id = q.Int(0);
      s->name = q.Text(2);
      s->creation_time = q.Int(3);
      s->dir = fmt::format("{}/streams/{}", dir_, s->id);
      BERTH_TRY(LoadStream(*it->second, s));
      max_id = std::max(max_id, s->last_event_id);
      live_dirs.insert(std::to_string(s->id));
      it->second->streams[s->name] = s;
    }
  }

  // Directories of streams whose deletion was interrupted after the metadata
  // commit are garbage now.
  for (const auto& entry : fs::directory_iterator(dir_ + "/streams", ec)) {
    std::string name = entry.path().filename().string();
    if (live_dirs.count(name) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }

  next_id_ = std::max({floor, max_id + 1, int64_t{1}});
  visible_id_ = next_id_ - 1;
  return Ok();
}

Status LogStore::LoadStream(GroupState& group, const std::shared_ptr<StreamState>& stream) {
  StreamState& s = *stream;
  std::error_code ec;
  if (!fs::exists(s.dir, ec)) {
    return Ok();
  }
  std::vector<std::pair<uint64_t, std::string>> files;
  for (const auto& entry : fs::directory_iterator(s.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 20 || name.substr(16) != ".seg") {
      continue;
    }
    files.emplace_back(std::stoull(name.substr(0, 16)), entry.path().string());
  }
  if (ec) {
    return ServerError("logs: list " + s.dir + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i < files.size(); ++i) {
    // Only the last segment can hold an unacknowledged, torn append: the
    // others were complete and synced before the next one was created.
    const bool last = i + 1 == files.size();
    std::vector<BlockLocation> locations;
    auto seg = Segment::Open(files[i].second, files[i].first, last, &locations);
    if (!seg.ok()) {
      return seg.error();
    }
    for (const auto& loc : locations) {
      s.blocks.push_back(BlockRef{seg->get(), loc.payload_offset, loc.header});
    }
    if (last) {
      s.active = seg->get();
      s.active_since = locations.empty() ? 0 : locations.front().header.ingestion_time;
    }
    s.next_seq = files[i].first + 1;
    s.segments.push_back(std::move(seg).value());
  }
  std::sort(s.blocks.begin(), s.blocks.end(),
            [](const BlockRef& a, const BlockRef& b) { return a.h.first_id < b.h.first_id; });
  RebuildIndex(s);
  for (const auto& b : s.blocks) {
    s.last_event_id = std::max(s.last_event_id, b.LastId());
  }
  return RecomputeStats(s, group.expired);
}

Status LogStore::PersistIdFloor() {
  int64_t floor;
  {
    std::lock_guard lock(id_mu_);
    floor = next_id_;
  }
  return Stmt(db_,
              "INSERT INTO log_meta (key, value) VALUES ('next_event_id', ?) "
              "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
      .Bind(1, floor)
      .Run();
}

// ---------------------------------------------------------------------------
// Groups

std::shared_ptr<GroupState> LogStore::FindGroup(const std::string& name) const {
  auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : it->second;
}

Status LogStore::CreateGroupLocked(const std::string& name, GroupOptions options, int64_t now_ms) {
  if (groups_.count(name) != 0) {
    return ClientError("ResourceAlreadyExistsException", "The specified log group already exists");
  }
  Stmt ins(db_,
           "INSERT INTO log_groups (name, creation_time, kms_key_id, arn, tags) "
           "VALUES (?, ?, ?, ?, ?)");
  ins.Bind(1, name).Bind(2, now_ms).Bind(3, options.kms_key_id).Bind(4, options.arn);
  ins.Bind(5, TagsToJson(options.tags));
  BERTH_TRY(ins.Run());
  auto g = std::make_shared<GroupState>();
  g->id = sqlite3_last_insert_rowid(db_);
  g->name = name;
  g->creation_time = now_ms;
  g->kms_key_id = std::move(options.kms_key_id);
  g->arn = std::move(options.arn);
  g->tags = std::move(options.tags);
  groups_[name] = std::move(g);
  return Ok();
}

Status LogStore::CreateGroup(const std::string& name, GroupOptions options, int64_t now_ms) {
  std::unique_lock lock(mu_);
  return CreateGroupLocked(name, std::move(options), now_ms);
}

void LogStore::RemoveStreamFiles(StreamState& s) {
  std::error_code ec;
  fs::remove_all(s.dir, ec);
  if (ec) {
    spdlog::warn("logs: cannot remove {}: {}", s.dir, ec.message());
  }
}

Status LogStore::DeleteGroup(const std::string& name) {
  std::vector<std::shared_ptr<StreamState>> doomed;
  {
    std::unique_lock lock(mu_);
    auto g = FindGroup(name);
    if (!g) {
      return GroupNotFound();
    }
    BERTH_TRY(PersistIdFloor());
    BERTH_TRY(DbExec("BEGIN"));
    Status st = Stmt(db_, "DELETE FROM log_streams WHERE group_id = ?").Bind(1, g->id).Run();
    if (st.ok()) {
      st = Stmt(db_, "DELETE FROM log_groups WHERE id = ?").Bind(1, g->id).Run();
    }
    if (!st.ok()) {
      (void)DbExec("ROLLBACK");
      return st;
    }
    BERTH_TRY(DbExec("COMMIT"));
    for (auto& [_, s] : g->streams) {
      doomed.push_back(s);
    }
    groups_.erase(name);
  }
  for (auto& s : doomed) {
    RetireStream(*s);
    RemoveStreamFiles(*s);
  }
  return SyncDirectory(dir_ + "/streams");
}

Result<GroupInfo> LogStore::GetGroup(const std::string& name) const {
  std::shared_lock lock(mu_);
  auto g = FindGroup(name);
  if (!g) {
    return GroupNotFound();
  }
  GroupInfo info{g->name, g->creation_time, g->retention_days, g->kms_key_id, g->arn, g->tags, 0};
  for (const auto& [_, s] : g->streams) {
    std::shared_lock index(s->index_mu);
    info.stored_bytes += s->stats.bytes;
  }
  return info;
}

std::vector<GroupInfo> LogStore::ListGroups(std::string_view prefix) const {
  std::shared_lock lock(mu_);
  std::vector<GroupInfo> out;
  for (auto it = groups_.lower_bound(std::string(prefix));
       it != groups_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const GroupState& g = *it->second;
    GroupInfo info{g.name, g.creation_time, g.retention_days, g.kms_key_id, g.arn, g.tags, 0};
    for (const auto& [_, s] : g.streams) {
      std::shared_lock index(s->index_mu);
      info.stored_bytes += s->stats.bytes;
    }
    out.push_back(std::move(info));
  }
  return out;
}

Status LogStore::SetRetention(const std::string& name, std::optional<int> days) {
  std::unique_lock lock(mu_);
  auto g = FindGroup(name);
  if (!g) {
    return GroupNotFound();
  }
  Stmt upd(db_, "UPDATE log_groups SET retention_days = ? WHERE id = ?");
  if (days) {
    upd.Bind(1, int64_t{*days});
  } else {
    upd.BindNull(1);
  }
  BERTH_TRY(upd.Bind(2, g->id).Run());
  g->retention_days = days;
  return Ok();
}

Status LogStore::TagGroup(const std::string& name, const std::map<std::string, std::string>& tags,
                          size_t max_tags) {
  std::unique_lock lock(mu_);
  auto g = FindGroup(name);
  if (!g) {
    return GroupNotFound();
  }
  auto merged = g->tags;
  for (const auto& [k, v] : tags) {
    merged[k] = v;
  }
  if (merged.size() > max_tags) {
    return ClientError("TooManyTagsException",
                       fmt::format("A resource can have no more than {} tags.", max_tags));
  }
  BERTH_TRY(Stmt(db_, "UPDATE log_groups SET tags = ? WHERE id = ?")
                .Bind(1, TagsToJson(merged))
                .Bind(2, g->id)
                .Run());
  g->tags = std::move(merged);
  return Ok();
}

Status LogStore::UntagGroup(const std::string& name, const std::vector<std::string>& keys) {
  std::unique_lock lock(mu_);
  auto g = FindGroup(name);
  if (!g) {
    return GroupNotFound();
  }
  auto remaining = g->tags;
  for (const auto& k : keys) {
    remaining.erase(k);
  }
  BERTH_TRY(Stmt(db_, "UPDATE log_groups SET tags = ? WHERE id = ?")
                .Bind(1, TagsToJson(remaining))
                .Bind(2, g->id)
                .Run());
  g->tags = std::move(remaining);
  return Ok();
}

// ---------------------------------------------------------------------------
// Streams

Status LogStore::CreateStreamLocked(GroupState& group, const std::string& stream, int64_t now_ms) {
  if (group.streams.count(stream) != 0) {
    return ClientError("ResourceAlreadyExistsException", "The specified log stream already exists");
  }
  BERTH_TRY(Stmt(db_, "INSERT INTO log_streams (group_id, name, creation_time) VALUES (?, ?, ?)")
                .Bind(1, group.id)
                .Bind(2, stream)
                .Bind(3, now_ms)
                .Run());
  auto s = std::make_shared<StreamState>();
  s->id = sqlite3_last_insert_rowid(db_);
  s->name = stream;
  s->creation_time = now_ms;
  s->dir = fmt::format("{}/streams/{}", dir_, s->id);
  group.streams[stream] = std::move(s);
  return Ok();
}

Status LogStore::CreateStream(const std::string& group, const std::string& stream, int64_t now_ms) {
  std::unique_lock lock(mu_);
  auto g = FindGroup(group);
  if (!g) {
    return GroupNotFound();
  }
  return CreateStreamLocked(*g, stream, now_ms);
}

Status LogStore::EnsureStream(const std::string& group, const std::string& stream, int64_t now_ms) {
  std::unique_lock lock(mu_);
  auto g = FindGroup(group);
  if (!g) {
    BERTH_TRY(CreateGroupLocked(group, GroupOptions{}, now_ms));
    g = FindGroup(group);
  }
  if (g->streams.count(stream) != 0) {
    return Ok();
  }
  return CreateStreamLocked(*g, stream, now_ms);
}

Status LogStore::DeleteStream(const std::string& group, const std::string& stream) {
  std::shared_ptr<StreamState> s;
  {
    std::unique_lock lock(mu_);
    auto g = FindGroup(group);
    if (!g) {
      return GroupNotFound();
    }
    auto it = g->streams.find(stream);
    if (it == g->streams.end()) {
      return StreamNotFound();
    }
    BERTH_TRY(PersistIdFloor());
    BERTH_TRY(Stmt(db_, "DELETE FROM log_streams WHERE id = ?").Bind(1, it->second->id).Run());
    s = it->second;
    g->streams.erase(it);
  }
  RetireStream(*s);
  RemoveStreamFiles(*s);
  return SyncDirectory(dir_ + "/streams");
}

namespace {

StreamInfo InfoOf(const StreamState& s) {
  StreamInfo info;
  info.name = s.name;
  info.creation_time = s.creation_time;
  info.event_count = s.stats.count;
  if (s.stats.count > 0) {
    info.first_event_timestamp = s.stats.first_ts;
    info.last_event_timestamp = s.stats.last_ts;
    info.last_ingestion_time = s.stats.last_ingestion;
  }
  info.last_event_id = s.last_event_id;
  info.stored_bytes = s.stats.bytes;
  return info;
}

}  // namespace

Result<StreamInfo> LogStore::GetStream(const std::string& group, const std::string& stream) const {
  std::shared_lock lock(mu_);
  auto g = FindGroup(group);
  if (!g) {
    return GroupNotFound();
  }
  auto it = g->streams.find(stream);
  if (it == g->streams.end()) {
    return StreamNotFound();
  }
  std::shared_lock index(it->second->index_mu);
  return InfoOf(*it->second);
}

Result<std::vector<StreamInfo>> LogStore::ListStreams(const std::string& group,
                                                      std::string_view prefix) const {
  std::shared_lock lock(mu_);
  auto g = FindGroup(group);
  if (!g) {
    return GroupNotFound();
  }
  std::vector<StreamInfo> out;
  for (auto it = g->streams.lower_bound(std::string(prefix));
       it != g->streams.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    std::shared_lock index(it->second->index_mu);
    out.push_back(InfoOf(*it->second));
  }
  return out;
}

Result<std::shared_ptr<StreamState>> LogStore::FindStream(const std::string& group,
                                                          const std::string& stream,
                                                          std::vector<Watermark>* expired) const {
  std::shared_lock lock(mu_);
  auto g = FindGroup(group);
  if (!g) {
    return GroupNotFound();
  }
  auto it = g->streams.find(stream);
  if (it == g->streams.end()) {
    return StreamNotFound();
  }
  if (expired != nullptr) {
    *expired = g->expired;
  }
  return it->second;
}

Result<std::vector<std::shared_ptr<StreamState>>> LogStore::SelectStreams(
    const std::string& group, const std::vector<std::string>& names, const std::string& prefix,
    std::vector<Watermark>* expired) const {
  std::shared_lock lock(mu_);
  auto g = FindGroup(group);
  if (!g) {
    return GroupNotFound();
  }
  *expired = g->expired;
  std::vector<std::shared_ptr<StreamState>> out;
  if (!names.empty()) {
    for (const auto& n : names) {
      auto it = g->streams.find(n);
      if (it != g->streams.end() && it->first.compare(0, prefix.size(), prefix) == 0) {
        out.push_back(it->second);
      }
    }
  } else {
    for (auto it = g->streams.lower_bound(prefix);
         it != g->streams.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      out.push_back(it->second);
    }
  }
  // Readers lock several streams at once: always in id order, so they cannot
  // deadlock with each other or with a writer.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Appending

Result<Segment*> LogStore::ActiveSegment(StreamState& s, size_t block_size, int64_t now_ms) {
  Segment* active = s.active;
  if (active != nullptr) {
    const bool empty = active->size() <= kSegmentHeaderSize;
    const bool full = active->size() + block_size > options_.segment_bytes;
    const bool old = now_ms - s.active_since >= options_.segment_max_age_ms;
    if (empty || !(full || old)) {
      if (empty) {
        s.active_since = now_ms;
      }
      return active;
    }
  }
  std::error_code ec;
  if (!fs::exists(s.dir, ec)) {
    if (::mkdir(s.dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return ServerError("logs: create " + s.dir + ": " + std::strerror(errno));
    }
    BERTH_TRY(SyncDirectory(dir_ + "/streams"));
  }
  auto seg = Segment::Create(s.dir + "/" + SegmentName(s.next_seq), s.next_seq);
  if (!seg.ok()) {
    return seg.error();
  }
  ++s.next_seq;
  Segment* raw = seg->get();
  {
    std::unique_lock index(s.index_mu);
    s.segments.push_back(std::move(seg).value());
  }
  s.active = raw;
  s.active_since = now_ms;
  return raw;
}

void LogStore::FinishIds(int64_t first_id) {
  std::lock_guard lock(id_mu_);
  inflight_.erase(first_id);
  visible_id_ = inflight_.empty() ? next_id_ - 1 : *inflight_.begin() - 1;
  id_cv_.notify_all();
}

Result<AppendResult> LogStore::Append(const std::string& group, const std::string& stream,
                                      std::span<const InputEvent> events, int64_t now_ms) {
  if (events.empty()) {
    return ClientError("InvalidParameterException", "A batch must hold at least one log event.");
  }
  for (const auto& e : events) {
    if (e.timestamp < 0) {
      return ClientError("InvalidParameterException", "Log event timestamps must not be negative.");
    }
  }
  // Stored blocks are sorted by timestamp; sort a copy only when needed.
  std::vector<InputEvent> sorted;
  auto by_time = [](const InputEvent& a, const InputEvent& b) {
    return a.timestamp < b.timestamp;
  };
  if (!std::is_sorted(events.begin(), events.end(), by_time)) {
    sorted.assign(events.begin(), events.end());
    std::stable_sort(sorted.begin(), sorted.end(), by_time);
    events = sorted;
  }

  auto found = FindStream(group, stream, nullptr);
  if (!found.ok()) {
    return found.error();
  }
  StreamState& s = **found;
  std::unique_lock lock(s.append_mu);
  if (s.deleted) {
    return StreamNotFound();
  }

  // Ids are taken and the block written under append_mu, so the stream's
  // blocks lie in its files in id order.
  const auto count = static_cast<int64_t>(events.size());
  int64_t first_id;
  {
    std::lock_guard ids(id_mu_);
    first_id = next_id_;
    next_id_ += count;
    inflight_.insert(first_id);
  }
  std::string block = EncodeBlock(events, first_id, now_ms);
  auto seg = ActiveSegment(s, block.size(), now_ms);
  if (!seg.ok()) {
    FinishIds(first_id);
    return seg.error();
  }
  auto offset = (*seg)->Write(block);
  if (!offset.ok()) {
    FinishIds(first_id);
    return offset.error();
  }

  PendingBlock pending;
  pending.segment = *seg;
  pending.ref.segment = *seg;
  pending.ref.payload_offset = *offset;
  pending.ref.h.payload_len = static_cast<uint32_t>(block.size() - kBlockHeaderSize);
  pending.ref.h.count = static_cast<uint32_t>(count);
  pending.ref.h.first_id = first_id;
  pending.ref.h.min_ts = events.front().timestamp;
  pending.ref.h.max_ts = events.back().timestamp;
  pending.ref.h.ingestion_time = now_ms;
  pending.outcome = std::make_shared<AppendOutcome>();
  auto outcome = pending.outcome;
  const int64_t last_id = pending.ref.LastId();
  s.pending.push_back(std::move(pending));

  // Group commit: while another appender's sync is running, more blocks
  // queue up; the next sync covers them all.
  while (!outcome->done) {
    if (s.syncing) {
      s.sync_cv.wait(lock);
    } else {
      SyncRound(s, lock);
    }
  }
  if (!outcome->status.ok()) {
    return outcome->status.error();
  }
  return AppendResult{first_id, last_id, static_cast<size_t>(count)};
}

void LogStore::SyncRound(StreamState& s, std::unique_lock<std::mutex>& lock) {
  s.syncing = true;
  const size_t batch = s.pending.size();
  std::vector<Segment*> segments;
  for (size_t i = 0; i < batch; ++i) {
    if (std::find(segments.begin(), segments.end(), s.pending[i].segment) == segments.end()) {
      segments.push_back(s.pending[i].segment);
    }
  }
  // Segments with pending blocks are neither deleted nor swept while a sync
  // runs (see RetireStream and SweepStream), so they stay valid unlocked.
  lock.unlock();
  Status synced = Ok();
  if (options_.sync) {
    for (Segment* seg : segments) {
      synced = seg->Sync();
      if (!synced.ok()) {
        break;
      }
    }
  }
  lock.lock();

  if (synced.ok()) {
    {
      std::unique_lock index(s.index_mu);
      for (size_t i = 0; i < batch; ++i) {
        const BlockRef& ref = s.pending[i].ref;
        s.blocks.push_back(ref);
        IndexBlock(s, static_cast<uint32_t>(s.blocks.size() - 1));
        AddToStats(s.stats, ref.h.min_ts, ref.h.max_ts, ref.h.ingestion_time, ref.h.count,
                   ref.MessageBytes());
        s.last_event_id = ref.LastId();
      }
    }
    for (size_t i = 0; i < batch; ++i) {
      FinishIds(s.pending[i].ref.h.first_id);
      s.pending[i].outcome->done = true;
    }
    s.pending.erase(s.pending.begin(), s.pending.begin() + static_cast<ptrdiff_t>(batch));
  } else {
    // What a failed sync left on disk is unknown. Every unsynced block sits
    // after the last synced one in its segment, so cut them all off and fail
    // their appends, including blocks written while the sync ran.
    spdlog::error("logs: sync of stream {} failed: {}", s.name, synced.error().message);
    std::map<Segment*, uint64_t> cut;
    for (const auto& p : s.pending) {
      const uint64_t start = p.ref.payload_offset - kBlockHeaderSize;
      auto [it, fresh] = cut.emplace(p.segment, start);
      if (!fresh) {
        it->second = std::min(it->second, start);
      }
    }
    for (auto& [seg, size] : cut) {
      Status st = seg->Truncate(size);
      if (!st.ok()) {
        spdlog::error("logs: {}", st.error().message);
      }
    }
    for (auto& p : s.pending) {
      FinishIds(p.ref.h.first_id);
      p.outcome->done = true;
      p.outcome->status = synced;
    }
    s.pending.clear();
  }
  s.syncing = false;
  s.sync_cv.notify_all();
}

void LogStore::RetireStream(StreamState& s) {
  std::unique_lock lock(s.append_mu);
  s.sync_cv.wait(lock, [&] { return !s.syncing; });
  for (auto& p : s.pending) {
    FinishIds(p.ref.h.first_id);
    p.outcome->done = true;
    p.outcome->status = StreamNotFound();
  }
  s.pending.clear();
  {
    std::unique_lock index(s.index_mu);
    s.deleted = true;
    s.active = nullptr;
    s.blocks.clear();
    RebuildIndex(s);
    s.segments.clear();
  }
  s.sync_cv.notify_all();
}

int64_t LogStore::VisibleEventId() const {
  std::lock_guard lock(id_mu_);
  return visible_id_;
}

// ---------------------------------------------------------------------------
// Reading

namespace {

// The open key interval for events with start <= timestamp < end.
EventKey LowerBound(int64_t start_time) {
  return EventKey{std::max<int64_t>(start_time, 0) - 1, kMaxId};
}

EventKey UpperBound(int64_t end_time) {
  // Ids start at 1, so (end, 0) sits below every event at `end`.
  return EventKey{std::clamp<int64_t>(end_time, 0, kMaxTime - 1), 0};
}

}  // namespace

Result<ReadPage> LogStore::Read(const std::string& group, const std::string& stream,
                                const ReadQuery& query) const {
  std::vector<Watermark> expired;
  auto found = FindStream(group, stream, &expired);
  if (!found.ok()) {
    return found.error();
  }
  const StreamState& s = **found;
  std::shared_lock index(s.index_mu);
  if (s.deleted) {
    return StreamNotFound();
  }
  EventKey lo = LowerBound(query.start_time);
  EventKey hi = UpperBound(query.end_time);
  if (query.after) {
    lo = std::max(lo, *query.after);
  }
  if (query.before) {
    hi = std::min(hi, *query.before);
  }

  ReadPage page;
  TimeCursor cursor(s, lo, hi, query.forward, expired);
  size_t bytes = 0;
  while (!cursor.exhausted()) {
    BERTH_TRY(cursor.Prime());
    if (cursor.exhausted()) {
      break;
    }
    const size_t size = cursor.Current().message.size() + kPerEventBytes;
    if (page.events.size() >= query.limit ||
        (bytes + size > query.max_bytes && !page.events.empty())) {
      page.more = true;
      break;
    }
    bytes += size;
    page.events.push_back(ToLogEvent(cursor));
    cursor.Pop();
  }
  if (!query.forward) {
    std::reverse(page.events.begin(), page.events.end());
  }
  return page;
}

Result<FilterPage> LogStore::Filter(const std::string& group, const FilterQuery& query) const {
  std::vector<Watermark> expired;
  auto selected = SelectStreams(group, query.stream_names, query.stream_prefix, &expired);
  if (!selected.ok()) {
    return selected.error();
  }
  std::vector<std::shared_lock<std::shared_mutex>> locks;
  locks.reserve(selected->size());
  EventKey lo = LowerBound(query.start_time);
  const EventKey hi = UpperBound(query.end_time);
  if (query.after) {
    lo = std::max(lo, *query.after);
  }

  FilterPage page;
  std::vector<std::unique_ptr<TimeCursor>> cursors;
  std::vector<EventSource*> sources;
  for (const auto& s : *selected) {
    locks.emplace_back(s->index_mu);
    if (s->deleted) {
      continue;
    }
    page.streams.push_back(s->name);
    cursors.push_back(std::make_unique<TimeCursor>(*s, lo, hi, true, expired));
    sources.push_back(cursors.back().get());
  }

  Merger merger(std::move(sources));
  const size_t budget = query.scan_budget > 0 ? query.scan_budget : options_.filter_scan_budget;
  size_t examined = 0;
  size_t bytes = 0;
  std::optional<EventKey> last_done;
  while (true) {
    auto more = merger.Next();
    if (!more.ok()) {
      return more.error();
    }
    if (!*more) {
      break;
    }
    const EventSource& src = merger.current();
    const RecordView& r = src.Current();
    if (examined >= budget) {
      page.resume_after = last_done;
      break;
    }
    ++examined;
    if (!query.matcher || query.matcher(r.message)) {
      const size_t size = r.message.size() + kPerEventBytes;
      if (page.events.size() >= query.limit ||
          (bytes + size > query.max_bytes && !page.events.empty())) {
        page.resume_after = last_done;
        break;
      }
      bytes += size;
      page.events.push_back(FilteredEvent{merger.source(), ToLogEvent(src)});
    }
    last_done = EventKey{r.timestamp, r.id};
    merger.Consume();
  }
  return page;
}

Result<FollowPage> LogStore::Follow(const std::string& group, const FollowQuery& query) const {
  {
    std::shared_lock meta(mu_);
    if (!FindGroup(group)) {
      return GroupNotFound();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + query.wait;
  int64_t after = query.after_event_id;
  while (true) {
    int64_t upto;
    {
      std::unique_lock lock(id_mu_);
      if (visible_id_ <= after &&
          !id_cv_.wait_until(lock, deadline, [&] { return visible_id_ > after; })) {
        // Still nothing new; make sure the group exists before saying so.
        lock.unlock();
        std::shared_lock meta(mu_);
        if (!FindGroup(group)) {
          return GroupNotFound();
        }
        FollowPage page;
        page.next_after = after;
        return page;
      }
      upto = visible_id_;
    }

    std::vector<Watermark> expired;
    auto selected = SelectStreams(group, query.stream_names, query.stream_prefix, &expired);
    if (!selected.ok()) {
      return selected.error();
    }
    std::vector<std::shared_lock<std::shared_mutex>> locks;
    std::vector<std::unique_ptr<IdCursor>> cursors;
    std::vector<EventSource*> sources;
    FollowPage page;
    for (const auto& s : *selected) {
      locks.emplace_back(s->index_mu);
      if (s->deleted) {
        continue;
      }
      page.streams.push_back(s->name);
      cursors.push_back(std::make_unique<IdCursor>(*s, after, upto, expired));
      sources.push_back(cursors.back().get());
    }
    Merger merger(std::move(sources));
    page.next_after = upto;
    while (true) {
      auto more = merger.Next();
      if (!more.ok()) {
        return more.error();
      }
      if (!*more) {
        break;
      }
      if (page.events.size() >= std::max<size_t>(query.limit, 1)) {
        page.next_after = page.events.back().event.event_id;
        break;
      }
      page.events.push_back(FilteredEvent{merger.source(), ToLogEvent(merger.current())});
      merger.Consume();
    }
    if (!page.events.empty() || std::chrono::steady_clock::now() >= deadline) {
      return page;
    }
    after = upto;
  }
}

// ---------------------------------------------------------------------------
// Retention

Result<SweepStats> LogStore::SweepExpired(int64_t now_ms) {
  SweepStats stats;
  std::vector<std::pair<std::shared_ptr<StreamState>, std::vector<Watermark>>> work;
  {
    std::unique_lock lock(mu_);
    int64_t id_mark;
    {
      std::lock_guard ids(id_mu_);
      id_mark = next_id_;
    }
    for (auto& [name, g] : groups_) {
      if (!g->retention_days) {
        continue;
      }
      ++stats.groups_swept;
      const Watermark mark{now_ms - int64_t{*g->retention_days} * 86'400'000, id_mark};
      bool dominated = false;
      for (const auto& w : g->expired) {
        dominated = dominated || (w.timestamp >= mark.timestamp && w.event_id >= mark.event_id);
      }
      if (!dominated) {
        std::erase_if(g->expired, [&](const Watermark& w) {
          return w.timestamp <= mark.timestamp && w.event_id <= mark.event_id;
        });
        g->expired.push_back(mark);
        BERTH_TRY(Stmt(db_, "UPDATE log_groups SET expired = ? WHERE id = ?")
                      .Bind(1, WatermarksToJson(g->expired))
                      .Bind(2, g->id)
                      .Run());
      }
      for (auto& [_, s] : g->streams) {
        work.emplace_back(s, g->expired);
      }
    }
  }
  for (auto& [s, expired] : work) {
    BERTH_TRY(SweepStream(*s, expired, &stats));
  }
  return stats;
}

Status LogStore::SweepStream(StreamState& s, const std::vector<Watermark>& expired,
                             SweepStats* stats) {
  std::lock_guard append(s.append_mu);
  std::unique_lock index(s.index_mu);
  if (s.deleted) {
    return Ok();
  }
  // A segment can go once every block in it has expired. Segments with blocks
  // still waiting for their sync stay, whatever they hold.
  std::map<const Segment*, bool> live;
  for (const auto& b : s.blocks) {
    bool& l = live[b.segment];
    l = l || !FullyHidden(expired, b);
  }
  for (const auto& p : s.pending) {
    live[p.segment] = true;
  }
  std::vector<std::unique_ptr<Segment>> doomed;
  for (auto it = s.segments.begin(); it != s.segments.end();) {
    auto l = live.find(it->get());
    if (l != live.end() && !l->second) {
      doomed.push_back(std::move(*it));
      it = s.segments.erase(it);
    } else {
      ++it;
    }
  }
  if (!doomed.empty()) {
    std::erase_if(s.blocks, [&](const BlockRef& b) {
      return std::any_of(doomed.begin(), doomed.end(),
                         [&](const auto& d) { return d.get() == b.segment; });
    });
    RebuildIndex(s);
    for (const auto& d : doomed) {
      if (d.get() == s.active) {
        s.active = nullptr;
      }
      stats->bytes_freed += d->size();
      if (::unlink(d->path().c_str()) != 0) {
        spdlog::warn("logs: cannot remove expired segment {}: {}", d->path(), std::strerror(errno));
      }
    }
    stats->segments_deleted += doomed.size();
    BERTH_TRY(SyncDirectory(s.dir));
  }
  return RecomputeStats(s, expired);
}

}  // namespace berth::logs
