#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sqlite3.h>

namespace berth::store {

namespace {

// ---------------------------------------------------------------------------
// Schema

struct Migration {
  int version;
  const char* sql;
};

// Applied in order, each exactly once; never edit one that has shipped, add a
// new one instead.
constexpr Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE kv (
        key BLOB PRIMARY KEY NOT NULL,
        value BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        mod_revision INTEGER NOT NULL
      );
      CREATE TABLE changes (
        id INTEGER PRIMARY KEY,
        revision INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL
      );
      CREATE INDEX changes_by_revision ON changes (revision);
      CREATE TABLE meta (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
      );
      INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
    )sql"},
};

static_assert(std::size(kMigrations) > 0 &&
                  kMigrations[std::size(kMigrations) - 1].version == kSqliteSchemaVersion,
              "the last migration must bring the schema to kSqliteSchemaVersion");

// How a change is written to the `changes.kind` column.
constexpr int64_t kChangePut = 1;
constexpr int64_t kChangeDelete = 2;

// Idle read connections kept open; more are opened on demand and closed when
// handed back to a full pool.
constexpr size_t kMaxIdleReaders = 8;

constexpr char kSqlJournalModeWal[] = "PRAGMA journal_mode = WAL";
constexpr char kSqlBegin[] = "BEGIN";
constexpr char kSqlBeginImmediate[] = "BEGIN IMMEDIATE";
constexpr char kSqlCommit[] = "COMMIT";
constexpr char kSqlRollback[] = "ROLLBACK";
constexpr char kSqlGet[] =
    "SELECT key, value, create_revision, mod_revision FROM kv WHERE key = ?1";
constexpr char kSqlGetModRevision[] = "SELECT mod_revision FROM kv WHERE key = ?1";
// List comes in four shapes (inclusive or exclusive lower bound, with or
// without an upper bound) so that each one is a plain index range scan.
constexpr char kSqlListFromBounded[] =
    "SELECT key, value, create_revision, mod_revision FROM kv"
    " WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3";
constexpr char kSqlListFrom[] =
    "SELECT key, value, create_revision, mod_revision FROM kv"
    " WHERE key >= ?1 ORDER BY key LIMIT ?3";
constexpr char kSqlListAfterBounded[] =
    "SELECT key, value, create_revision, mod_revision FROM kv"
    " WHERE key > ?1 AND key < ?2 ORDER BY key LIMIT ?3";
constexpr char kSqlListAfter[] =
    "SELECT key, value, create_revision, mod_revision FROM kv"
    " WHERE key > ?1 ORDER BY key LIMIT ?3";
constexpr char kSqlUpsert[] =
    "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?3)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
    " mod_revision = excluded.mod_revision";
constexpr char kSqlDelete[] = "DELETE FROM kv WHERE key = ?1";
constexpr char kSqlRecordChange[] =
    "INSERT INTO changes (revision, kind, key, value) VALUES (?1, ?2, ?3, ?4)";
constexpr char kSqlChanges[] =
    "SELECT revision, kind, key, value FROM changes"
    " WHERE revision > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3)"
    " ORDER BY revision, id";
constexpr char kSqlCountChanges[] = "SELECT COUNT(*) FROM changes";
constexpr char kSqlOldestKeptRevision[] =
    "SELECT revision FROM changes ORDER BY revision, id LIMIT 1 OFFSET ?1";
constexpr char kSqlDropChanges[] = "DELETE FROM changes WHERE revision < ?1";
constexpr char kSqlGetMeta[] = "SELECT value FROM meta WHERE name = ?1";
constexpr char kSqlSetMeta[] = "UPDATE meta SET value = ?2 WHERE name = ?1";
constexpr char kSqlSchemaVersion[] = "SELECT COALESCE(MAX(version), 0) FROM schema_version";
constexpr char kSqlRecordMigration[] =
    "INSERT INTO schema_version (version, applied_at) VALUES (?1, strftime('%s', 'now'))";

Error Failure(std::string_view operation, std::string_view why) {
  return ServerError("store: " + std::string(operation) + " failed: " + std::string(why));
}

Error SqliteFailure(std::string_view operation, sqlite3* db) {
  return Failure(operation, sqlite3_errmsg(db));
}

// The smallest string greater than every string starting with `prefix`, or
// nullopt when there is none (an empty prefix, or one of only 0xff bytes).
std::optional<std::string> PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) {
    end.pop_back();
  }
  if (end.empty()) {
    return std::nullopt;
  }
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

// ---------------------------------------------------------------------------
// SQLite wrappers

// A cached prepared statement in use; resets it and clears its bindings when
// it goes out of scope so the next user finds it fresh.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  Statement(Statement&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)), db_(other.db_) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  // Keys and values are bound as blobs so that they compare byte by byte.
  // Bound without a copy: the caller keeps `value` alive until the last Step.
  void BindBlob(int index, std::string_view value) {
    if (value.empty()) {
      // A null pointer would bind SQL NULL, not an empty blob.
      sqlite3_bind_zeroblob(stmt_, index, 0);
    } else {
      sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
    }
  }
  // For TEXT columns (meta.name): SQLite never finds a blob equal to text.
  void BindText(int index, std::string_view value) {
    sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
  }
  void BindInt(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void BindNull(int index) { sqlite3_bind_null(stmt_, index); }

  // SQLITE_ROW, SQLITE_DONE or an error code (see sqlite3_errmsg).
  int Step() { return sqlite3_step(stmt_); }

  // Runs a statement that returns no rows.
  Status Run(std::string_view operation) {
    if (Step() != SQLITE_DONE) {
      return SqliteFailure(operation, db_);
    }
    return Ok();
  }

  int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  std::string Blob(int column) {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    if (data == nullptr || size <= 0) {
      return {};
    }
    return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
  }
  Entry ReadEntry() { return Entry{Blob(0), Blob(1), Int(2), Int(3)}; }

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
};

// One SQLite connection with its prepared statements. Used by one thread at a
// time (the store's mutex or the reader pool sees to that).
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, bool create,
                                                  std::chrono::milliseconds busy_timeout) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (create) {
      flags |= SQLITE_OPEN_CREATE;
    }
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto conn = std::unique_ptr<Connection>(new Connection(db));
    if (rc != SQLITE_OK) {
      if (db == nullptr) {
        return Failure("open " + path, sqlite3_errstr(rc));
      }
      return SqliteFailure("open " + path, db);
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
    return conn;
  }

  ~Connection() {
    for (auto& [sql, stmt] : cache_) {
      sqlite3_finalize(stmt);
    }
    sqlite3_close_v2(db_);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() { return db_; }

  // `sql` must be one of the string constants above: the cache is keyed by
  // its address.
  Result<Statement> Prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
          SQLITE_OK) {
        return SqliteFailure("prepare", db_);
      }
      it = cache_.emplace(sql, stmt).first;
    }
    return Statement(it->second, db_);
  }

  // Runs one cached statement that returns no rows.
  Status Run(const char* sql, std::string_view operation) {
    auto stmt = Prepare(sql);
    if (!stmt.ok()) {
      return stmt.error();
    }
    return stmt->Run(operation);
  }

  // Runs ad-hoc SQL, possibly several statements, without caching it.
  Status Exec(const char* sql, std::string_view operation) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string why = message != nullptr ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      return Failure(operation, why);
    }
    return Ok();
  }

  // A statement returning one integer in its first row and column.
  Result<int64_t> QueryInt(const char* sql, std::string_view operation) {
    auto stmt = Prepare(sql);
    if (!stmt.ok()) {
      return stmt.error();
    }
    if (stmt->Step() != SQLITE_ROW) {
      return SqliteFailure(operation, db_);
    }
    return stmt->Int(0);
  }

  Result<int64_t> GetMeta(std::string_view name) {
    auto stmt = Prepare(kSqlGetMeta);
    if (!stmt.ok()) {
      return stmt.error();
    }
    stmt->BindText(1, name);
    return ReadMeta(*stmt, name);
  }

  Status SetMeta(std::string_view name, int64_t value) {
    auto stmt = Prepare(kSqlSetMeta);
    if (!stmt.ok()) {
      return stmt.error();
    }
    stmt->BindText(1, name);
    stmt->BindInt(2, value);
    return stmt->Run("write " + std::string(name));
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  Result<int64_t> ReadMeta(Statement& stmt, std::string_view name) {
    int rc = stmt.Step();
    if (rc == SQLITE_ROW) {
      return stmt.Int(0);
    }
    if (rc == SQLITE_DONE) {
      return Failure("read " + std::string(name), "missing from the meta table");
    }
    return SqliteFailure("read " + std::string(name), db_);
  }

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// Ends the connection's open transaction with a rollback unless it was
// committed: every early return on an error leaves the connection clean.
class TxnGuard {
 public:
  explicit TxnGuard(Connection& conn) : conn_(conn) {}
  ~TxnGuard() {
    if (sqlite3_get_autocommit(conn_.db()) == 0) {
      (void)conn_.Run(kSqlRollback, "rollback");
    }
  }
  TxnGuard(const TxnGuard&) = delete;
  TxnGuard& operator=(const TxnGuard&) = delete;

 private:
  Connection& conn_;
};

// Holds an exclusive lock on `<path>.lock` for as long as the store is open.
class LockFile {
 public:
  static Result<std::unique_ptr<LockFile>> Acquire(const std::string& path) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Failure("open " + path, std::strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      close(fd);
      if (err == EWOULDBLOCK) {
        return Failure("lock " + path, "the store is already open");
      }
      return Failure("lock " + path, std::strerror(err));
    }
    return std::unique_ptr<LockFile>(new LockFile(fd));
  }

  ~LockFile() { close(fd_); }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_;
};

// Makes the creation of the database file itself durable.
Status SyncDirectory(const std::string& file_path) {
  std::filesystem::path dir = std::filesystem::path(file_path).parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Failure("open directory " + dir.string(), std::strerror(errno));
  }
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return Failure("sync directory " + dir.string(), std::strerror(err));
  }
  return Ok();
}

// ---------------------------------------------------------------------------
// The store

class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& path,
                                             const SqliteStoreOptions& options);

  Result<std::optional<Entry>> Get(std::string_view key) override;
  Result<std::vector<Entry>> List(std::string_view prefix, std::string_view start_after,
                                  size_t limit) override;
  Result<int64_t> Commit(const Txn& txn) override;
  int64_t Revision() override { return revision_.load(); }
  Result<std::vector<Event>> Changes(int64_t after, std::string_view prefix,
                                     std::chrono::milliseconds wait) override;

 private:
  // A read connection borrowed from the pool, handed back when destroyed.
  class Reader {
   public:
    Reader(SqliteStore& store, std::unique_ptr<Connection> conn)
        : store_(&store), conn_(std::move(conn)) {}
    Reader(Reader&& other) noexcept
        : store_(other.store_), conn_(std::move(other.conn_)) {}
    Reader& operator=(Reader&&) = delete;
    ~Reader() {
      if (conn_ != nullptr) {
        store_->ReturnReader(std::move(conn_));
      }
    }
    Connection& operator*() { return *conn_; }
    Connection* operator->() { return conn_.get(); }

   private:
    SqliteStore* store_;
    std::unique_ptr<Connection> conn_;
  };

  SqliteStore(std::string path, SqliteStoreOptions options, std::unique_ptr<LockFile> lock,
              std::unique_ptr<Connection> writer)
      : path_(std::move(path)),
        options_(options),
        lock_(std::move(lock)),
        writer_(std::move(writer)) {}

  Status Configure();
  Status Migrate();
  Status LoadState();

  Result<Reader> BorrowReader();
  void ReturnReader(std::unique_ptr<Connection> conn);

  // Requires write_mu_ held, inside the write transaction.
  Status CheckCompares(const Txn& txn);
  Result<int64_t> ApplyOps(const Txn& txn, int64_t revision);
  Status RecordChange(int64_t revision, int64_t kind, const std::string& key,
                      std::string_view value);
  Result<int64_t> Compact(int64_t change_count);

  // One read of the change feed, no waiting. Empty when nothing matches.
  Result<std::vector<Event>> ReadChanges(int64_t after, std::string_view prefix);

  const std::string path_;
  const SqliteStoreOptions options_;
  const std::unique_ptr<LockFile> lock_;

  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_
  int64_t change_count_ = 0;            // rows in `changes`; guarded by write_mu_

  // The last committed revision. Written only with feed_mu_ held so that a
  // waiter in Changes() cannot miss the wake-up.
  std::atomic<int64_t> revision_{0};
  std::mutex feed_mu_;
  std::condition_variable feed_cv_;

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;  // guarded by readers_mu_
};

Result<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path,
                                                 const SqliteStoreOptions& options) {
  auto lock = LockFile::Acquire(path + ".lock");
  if (!lock.ok()) {
    return lock.error();
  }
  auto writer = Connection::Open(path, /*create=*/true, options.busy_timeout);
  if (!writer.ok()) {
    return writer.error();
  }

  SqliteStoreOptions fixed = options;
  fixed.max_changes = std::max<size_t>(fixed.max_changes, 1);
  fixed.max_events_per_call = std::max<size_t>(fixed.max_events_per_call, 1);
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(path, fixed, std::move(*lock), std::move(*writer)));

  BERTH_TRY(store->Configure());
  BERTH_TRY(store->Migrate());
  BERTH_TRY(store->LoadState());
  BERTH_TRY(SyncDirectory(path));
  return std::unique_ptr<Store>(std::move(store));
}

Status SqliteStore::Configure() {
  // journal_mode answers with the mode in effect; a file system without
  // shared memory support silently keeps the rollback journal.
  {
    auto stmt = writer_->Prepare(kSqlJournalModeWal);
    if (!stmt.ok()) {
      return stmt.error();
    }
    if (stmt->Step() != SQLITE_ROW) {
      return SqliteFailure("enable WAL", writer_->db());
    }
    std::string mode = stmt->Blob(0);
    if (mode != "wal") {
      return Failure("enable WAL", "the database stays in journal mode '" + mode + "'");
    }
  }
  // FULL syncs the WAL on every commit: a commit that returned is on disk.
  return writer_->Exec("PRAGMA synchronous = FULL", "set synchronous");
}

Status SqliteStore::Migrate() {
  BERTH_TRY(writer_->Exec(
      "CREATE TABLE IF NOT EXISTS schema_version ("
      " version INTEGER PRIMARY KEY NOT NULL, applied_at INTEGER NOT NULL)",
      "create schema_version"));

  TxnGuard guard(*writer_);
  BERTH_TRY(writer_->Run(kSqlBeginImmediate, "begin migration"));
  auto current = writer_->QueryInt(kSqlSchemaVersion, "read schema version");
  if (!current.ok()) {
    return current.error();
  }
  if (*current > kSqliteSchemaVersion) {
    return Failure("open " + path_, "the database has schema version " +
                                        std::to_string(*current) + ", newer than version " +
                                        std::to_string(kSqliteSchemaVersion) +
                                        " this build knows");
  }

  for (const Migration& migration : kMigrations) {
    if (migration.version <= *current) {
      continue;
    }
    std::string operation = "migrate to schema version " + std::to_string(migration.version);
    BERTH_TRY(writer_->Exec(migration.sql, operation));
    auto record = writer_->Prepare(kSqlRecordMigration);
    if (!record.ok()) {
      return record.error();
    }
    record->BindInt(1, migration.version);
    BERTH_TRY(record->Run(operation));
  }
  return writer_->Run(kSqlCommit, "commit migration");
}

Status SqliteStore::LoadState() {
  auto revision = writer_->GetMeta("revision");
  if (!revision.ok()) {
    return revision.error();
  }
  auto count = writer_->QueryInt(kSqlCountChanges, "count changes");
  if (!count.ok()) {
    return count.error();
  }
  revision_.store(*revision);
  change_count_ = *count;
  return Ok();
}

Result<SqliteStore::Reader> SqliteStore::BorrowReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      auto conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return Reader(*this, std::move(conn));
    }
  }
  auto conn = Connection::Open(path_, /*create=*/false, options_.busy_timeout);
  if (!conn.ok()) {
    return conn.error();
  }
  BERTH_TRY((*conn)->Exec("PRAGMA query_only = ON", "configure reader"));
  return Reader(*this, std::move(*conn));
}

void SqliteStore::ReturnReader(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) {
    idle_readers_.push_back(std::move(conn));
  }
}

Result<std::optional<Entry>> SqliteStore::Get(std::string_view key) {
  auto reader = BorrowReader();
  if (!reader.ok()) {
    return reader.error();
  }
  auto stmt = (*reader)->Prepare(kSqlGet);
  if (!stmt.ok()) {
    return stmt.error();
  }
  stmt->BindBlob(1, key);
  int rc = stmt->Step();
  if (rc == SQLITE_ROW) {
    return std::optional<Entry>(stmt->ReadEntry());
  }
  if (rc == SQLITE_DONE) {
    return std::optional<Entry>();
  }
  return SqliteFailure("get", (*reader)->db());
}

Result<std::vector<Entry>> SqliteStore::List(std::string_view prefix,
                                             std::string_view start_after, size_t limit) {
  // Start at the prefix, or just after `start_after` when that lies past it.
  bool after = !start_after.empty() && start_after >= prefix;
  std::string_view lower = after ? start_after : prefix;
  std::optional<std::string> upper = PrefixEnd(prefix);
  const char* sql = after ? (upper ? kSqlListAfterBounded : kSqlListAfter)
                          : (upper ? kSqlListFromBounded : kSqlListFrom);

  auto reader = BorrowReader();
  if (!reader.ok()) {
    return reader.error();
  }
  auto stmt = (*reader)->Prepare(sql);
  if (!stmt.ok()) {
    return stmt.error();
  }
  stmt->BindBlob(1, lower);
  if (upper) {
    stmt->BindBlob(2, *upper);
  }
  stmt->BindInt(3, limit == 0 ? -1 : static_cast<int64_t>(limit));

  std::vector<Entry> entries;
  int rc;
  while ((rc = stmt->Step()) == SQLITE_ROW) {
    entries.push_back(stmt->ReadEntry());
  }
  if (rc != SQLITE_DONE) {
    return SqliteFailure("list", (*reader)->db());
  }
  return entries;
}

Result<int64_t> SqliteStore::Commit(const Txn& txn) {
  for (const Op& op : txn.ops) {
    if (op.key.empty()) {
      return Error{400, "StoreInvalidKey", "store: commit failed: empty key", {}};
    }
  }

  std::lock_guard lock(write_mu_);
  TxnGuard guard(*writer_);
  BERTH_TRY(writer_->Run(kSqlBeginImmediate, "begin"));
  BERTH_TRY(CheckCompares(txn));

  int64_t revision = revision_.load() + 1;
  auto changed = ApplyOps(txn, revision);
  if (!changed.ok()) {
    return changed.error();
  }
  if (*changed == 0) {
    // Nothing changed (no ops, or deletes of absent keys): like etcd, the
    // revision stays. The guard rolls the empty transaction back.
    return revision - 1;
  }

  BERTH_TRY(writer_->SetMeta("revision", revision));
  auto change_count = Compact(change_count_ + *changed);
  if (!change_count.ok()) {
    return change_count.error();
  }
  BERTH_TRY(writer_->Run(kSqlCommit, "commit"));

  change_count_ = *change_count;
  {
    std::lock_guard feed_lock(feed_mu_);
    revision_.store(revision);
  }
  feed_cv_.notify_all();
  return revision;
}

Status SqliteStore::CheckCompares(const Txn& txn) {
  for (const Compare& compare : txn.compares) {
    auto stmt = writer_->Prepare(kSqlGetModRevision);
    if (!stmt.ok()) {
      return stmt.error();
    }
    stmt->BindBlob(1, compare.key);
    int rc = stmt->Step();
    int64_t actual = 0;
    if (rc == SQLITE_ROW) {
      actual = stmt->Int(0);
    } else if (rc != SQLITE_DONE) {
      return SqliteFailure("compare", writer_->db());
    }
    if (actual != compare.mod_revision) {
      return Error{409, std::string(kConflict),
                   "store: compare failed on " + compare.key + ": expected revision " +
                       std::to_string(compare.mod_revision) + ", found " +
                       std::to_string(actual),
                   {}};
    }
  }
  return Ok();
}

// Returns how many changes were written.
Result<int64_t> SqliteStore::ApplyOps(const Txn& txn, int64_t revision) {
  int64_t changed = 0;
  for (const Op& op : txn.ops) {
    if (op.kind == Op::Kind::kPut) {
      auto stmt = writer_->Prepare(kSqlUpsert);
      if (!stmt.ok()) {
        return stmt.error();
      }
      stmt->BindBlob(1, op.key);
      stmt->BindBlob(2, op.value);
      stmt->BindInt(3, revision);
      BERTH_TRY(stmt->Run("put"));
      BERTH_TRY(RecordChange(revision, kChangePut, op.key, op.value));
      ++changed;
      continue;
    }

    auto stmt = writer_->Prepare(kSqlDelete);
    if (!stmt.ok()) {
      return stmt.error();
    }
    stmt->BindBlob(1, op.key);
    BERTH_TRY(stmt->Run("delete"));
    if (sqlite3_changes(writer_->db()) > 0) {
      BERTH_TRY(RecordChange(revision, kChangeDelete, op.key, ""));
      ++changed;
    }
  }
  return changed;
}

Status SqliteStore::RecordChange(int64_t revision, int64_t kind, const std::string& key,
                                 std::string_view value) {
  auto stmt = writer_->Prepare(kSqlRecordChange);
  if (!stmt.ok()) {
    return stmt.error();
  }
  stmt->BindInt(1, revision);
  stmt->BindInt(2, kind);
  stmt->BindBlob(3, key);
  stmt->BindBlob(4, value);
  return stmt->Run("record change");
}

// Drops the oldest revisions' changes while more than max_changes would stay,
// never part of a revision. Returns how many changes remain.
Result<int64_t> SqliteStore::Compact(int64_t change_count) {
  auto keep = static_cast<int64_t>(options_.max_changes);
  if (change_count <= keep) {
    return change_count;
  }

  // The revision of the oldest change among the newest `keep`: everything
  // older than that revision can go.
  int64_t oldest_kept;
  {
    auto stmt = writer_->Prepare(kSqlOldestKeptRevision);
    if (!stmt.ok()) {
      return stmt.error();
    }
    stmt->BindInt(1, change_count - keep);
    if (stmt->Step() != SQLITE_ROW) {
      return SqliteFailure("find changes to compact", writer_->db());
    }
    oldest_kept = stmt->Int(0);
  }

  auto stmt = writer_->Prepare(kSqlDropChanges);
  if (!stmt.ok()) {
    return stmt.error();
  }
  stmt->BindInt(1, oldest_kept);
  BERTH_TRY(stmt->Run("compact changes"));
  int64_t dropped = sqlite3_changes64(writer_->db());
  if (dropped > 0) {
    BERTH_TRY(writer_->SetMeta("compacted", oldest_kept - 1));
  }
  return change_count - dropped;
}

Result<std::vector<Event>> SqliteStore::Changes(int64_t after, std::string_view prefix,
                                                std::chrono::milliseconds wait) {
  after = std::max<int64_t>(after, 0);
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    int64_t seen = revision_.load();
    if (after < seen) {
      auto events = ReadChanges(after, prefix);
      if (!events.ok() || !events->empty()) {
        return events;
      }
    }

    // Nothing (matching) up to `seen`: sleep until a later commit or the
    // deadline. The read may have seen commits past `seen`; then this returns
    // at once and the loop reads again, which is harmless.
    std::unique_lock lock(feed_mu_);
    if (!feed_cv_.wait_until(lock, deadline, [&] { return revision_.load() > seen; })) {
      return std::vector<Event>();
    }
  }
}

Result<std::vector<Event>> SqliteStore::ReadChanges(int64_t after, std::string_view prefix) {
  auto reader = BorrowReader();
  if (!reader.ok()) {
    return reader.error();
  }
  Connection& conn = **reader;

  // One read transaction, so the compaction mark and the rows agree.
  TxnGuard guard(conn);
  BERTH_TRY(conn.Run(kSqlBegin, "begin read"));
  auto compacted = conn.GetMeta("compacted");
  if (!compacted.ok()) {
    return compacted.error();
  }
  if (after < *compacted) {
    return Error{410, "StoreCompacted",
                 "store: changes after revision " + std::to_string(after) +
                     " are compacted; the oldest kept follow revision " +
                     std::to_string(*compacted),
                 {}};
  }

  auto stmt = conn.Prepare(kSqlChanges);
  if (!stmt.ok()) {
    return stmt.error();
  }
  std::optional<std::string> upper = PrefixEnd(prefix);
  stmt->BindInt(1, after);
  stmt->BindBlob(2, prefix);
  if (upper) {
    stmt->BindBlob(3, *upper);
  } else {
    stmt->BindNull(3);
  }

  std::vector<Event> events;
  int rc;
  while ((rc = stmt->Step()) == SQLITE_ROW) {
    int64_t revision = stmt->Int(0);
    if (events.size() >= options_.max_events_per_call && revision != events.back().revision) {
      rc = SQLITE_DONE;
      break;
    }
    Event event;
    event.kind = stmt->Int(1) == kChangeDelete ? Event::Kind::kDelete : Event::Kind::kPut;
    event.key = stmt->Blob(2);
    event.value = stmt->Blob(3);
    event.revision = revision;
    events.push_back(std::move(event));
  }
  if (rc != SQLITE_DONE) {
    return SqliteFailure("read changes", conn.db());
  }
  return events;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteStoreOptions& options) {
  return SqliteStore::Open(path, options);
}

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return OpenSqliteStore(path, SqliteStoreOptions{});
}

}  // namespace berth::store
