// The embedded store: the Store interface over one SQLite database file.
//
// The database runs in WAL mode with synchronous=FULL, so a Commit that has
// returned survives a crash of the process or of the machine. One connection,
// behind a mutex, does all writes; reads use a small pool of their own
// connections and never wait for a write to finish. A lock file next to the
// database (`<path>.lock`) keeps a second process, or a second store in the
// same process, from opening the same database.
//
// The schema is versioned: `schema_version` records every numbered migration
// applied, and opening applies the missing ones in order. Opening a database
// written by a newer build (a higher version than kSqliteSchemaVersion) fails.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "store/store.h"

namespace berth::store {

/// The schema version this build writes; opening brings a database up to it.
inline constexpr int kSqliteSchemaVersion = 1;

struct SqliteStoreOptions {
  /// How many changes the change feed keeps at least. Older ones are dropped
  /// a whole revision at a time, and Changes() after a dropped revision
  /// returns "StoreCompacted". At least 1.
  size_t max_changes = 100000;

  /// The most events one Changes() call returns. A call never splits the
  /// events of one revision, so it may return more when a single transaction
  /// wrote more keys than this.
  size_t max_events_per_call = 10000;

  /// How long a connection waits for a lock held by another connection.
  std::chrono::milliseconds busy_timeout{5000};
};

/// Opens (creating if needed) the SQLite store at `path` with `options`. The
/// directory holding `path` must exist. Fails with a ServerError when the
/// database cannot be opened or migrated, or when it is already open.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteStoreOptions& options);

}  // namespace berth::store
