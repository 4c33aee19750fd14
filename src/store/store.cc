#include "store/store.h"

#include <algorithm>
#include <random>
#include <thread>

namespace berth::store {

namespace {

// Enough for heavy contention on one key; a caller that loses this many
// times in a row is better served by an error than by spinning forever.
constexpr int kMaxReadModifyWriteAttempts = 1000;

// Sleeps a short random time that grows with the number of conflicts, so
// writers racing on one key stop colliding in lockstep.
void BackOff(int attempt) {
  if (attempt < 2) {
    std::this_thread::yield();
    return;
  }
  thread_local std::minstd_rand rng(std::random_device{}());
  int64_t ceiling_us = int64_t{50} << std::min(attempt, 8);
  std::uniform_int_distribution<int64_t> pick(0, ceiling_us);
  std::this_thread::sleep_for(std::chrono::microseconds(pick(rng)));
}

}  // namespace

Txn& Txn::IfRevision(std::string key, int64_t mod_revision) {
  compares.push_back(Compare{std::move(key), mod_revision});
  return *this;
}

Txn& Txn::Put(std::string key, std::string value) {
  ops.push_back(Op{Op::Kind::kPut, std::move(key), std::move(value)});
  return *this;
}

Txn& Txn::Delete(std::string key) {
  ops.push_back(Op{Op::Kind::kDelete, std::move(key), {}});
  return *this;
}

Result<int64_t> Store::Put(std::string key, std::string value) {
  Txn txn;
  txn.Put(std::move(key), std::move(value));
  return Commit(txn);
}

Result<int64_t> Store::Delete(std::string key) {
  Txn txn;
  txn.Delete(std::move(key));
  return Commit(txn);
}

Result<int64_t> ReadModifyWrite(
    Store& store, const std::string& key,
    const std::function<Result<std::optional<std::string>>(const std::optional<Entry>&)>&
        update) {
  for (int attempt = 0; attempt < kMaxReadModifyWriteAttempts; ++attempt) {
    auto current = store.Get(key);
    if (!current.ok()) {
      return current.error();
    }

    auto next = update(*current);
    if (!next.ok()) {
      return next.error();
    }

    // Guarded by the revision read above (0 when the key was absent), so a
    // write by anyone in between turns this commit into a conflict.
    Txn txn;
    txn.IfRevision(key, current->has_value() ? (*current)->mod_revision : 0);
    if (next->has_value()) {
      txn.Put(key, std::move(**next));
    } else {
      txn.Delete(key);
    }

    auto committed = store.Commit(txn);
    if (committed.ok() || committed.error().code != kConflict) {
      return committed;
    }
    BackOff(attempt);
  }
  return ServerError("store: read-modify-write of " + key + " failed: still conflicting after " +
                     std::to_string(kMaxReadModifyWriteAttempts) + " attempts");
}

}  // namespace berth::store
