// The store: every piece of control-plane state lives behind this interface.
//
// It is a small key-value store with the semantics of etcd's v3 API, so that
// an etcd implementation can replace the embedded SQLite one without changing
// callers: every write bumps one store-wide revision; each key remembers the
// revision that created it and the one that last changed it; a transaction
// applies its writes only if all of its compares hold; and a change feed
// returns the writes after a given revision. Values are opaque bytes (berth
// stores JSON documents in them).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::store {

struct Entry {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

// Holds when the key's mod_revision equals `mod_revision`; 0 means "the key
// does not exist".
struct Compare {
  std::string key;
  int64_t mod_revision = 0;
};

struct Op {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;  // for kPut
};

struct Txn {
  std::vector<Compare> compares;
  std::vector<Op> ops;

  Txn& IfRevision(std::string key, int64_t mod_revision);
  Txn& IfAbsent(std::string key) { return IfRevision(std::move(key), 0); }
  Txn& Put(std::string key, std::string value);
  Txn& Delete(std::string key);
};

struct Event {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;   // the new value for kPut; empty for kDelete
  int64_t revision = 0;  // the store revision of this write
};

// Error code returned by Commit when a compare does not hold.
inline constexpr std::string_view kConflict = "StoreConflict";

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<std::optional<Entry>> Get(std::string_view key) = 0;

  // Entries whose key starts with `prefix`, in key order, after `start_after`
  // (exclusive, "" for the beginning), at most `limit` of them (0: no limit).
  virtual Result<std::vector<Entry>> List(std::string_view prefix,
                                          std::string_view start_after = "",
                                          size_t limit = 0) = 0;

  // Applies the transaction atomically and durably (the write is on disk when
  // this returns). Returns the new store revision; when a compare fails,
  // returns an Error whose code is kConflict and writes nothing.
  virtual Result<int64_t> Commit(const Txn& txn) = 0;

  // The current store revision (0 for an empty store).
  virtual int64_t Revision() = 0;

  // The writes with revision > `after` to keys starting with `prefix`, oldest
  // first. Waits up to `wait` for at least one when there is none yet. Returns
  // an Error with code "StoreCompacted" when `after` is older than the oldest
  // change kept.
  virtual Result<std::vector<Event>> Changes(int64_t after, std::string_view prefix,
                                             std::chrono::milliseconds wait) = 0;

  // Convenience wrappers over Commit.
  Result<int64_t> Put(std::string key, std::string value);
  Result<int64_t> Delete(std::string key);
};

// Reads `key`, lets `update` compute the new value from the current entry
// (nullopt when absent) and commits it guarded by the read revision, retrying
// on conflict. `update` returning nullopt deletes the key; returning an Error
// aborts and passes the error on.
Result<int64_t> ReadModifyWrite(
    Store& store, const std::string& key,
    const std::function<Result<std::optional<std::string>>(const std::optional<Entry>&)>& update);

// Opens (creating if needed) the embedded SQLite store at `path`.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace berth::store
