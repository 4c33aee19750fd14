// Segment files: the on-disk form of a log stream's events.
//
// A stream's events live in a sequence of append-only segment files. Every
// append writes one block: a fixed header (event count, first event id, the
// smallest and largest timestamp, the ingestion time, a CRC32C) followed by the
// events of the batch sorted by timestamp. A block is the unit of durability
// (it is synced before the append is acknowledged) and of reading (the store
// keeps every block's header in memory and reads a block's payload with one
// pread when a query needs it).
//
// Recovery: opening a segment walks its block headers. With `verify` set, every
// block's CRC is checked and the file is truncated at the first block that is
// torn or corrupt, which is how a crash in the middle of an unacknowledged
// append is undone.
//
// Thread-safety: ReadAt and Sync may run concurrently with anything; Write and
// Truncate calls must be serialized by the caller.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::logs {

/// CRC32C (Castagnoli) of `data`, continuing from `crc` (0 to start).
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

/// One event as a caller hands it to the store.
struct InputEvent {
  int64_t timestamp = 0;  // epoch milliseconds
  std::string message;
};

/// The fixed-size header in front of every block.
struct BlockHeader {
  uint32_t payload_len = 0;
  uint32_t count = 0;
  int64_t first_id = 0;
  int64_t min_ts = 0;
  int64_t max_ts = 0;
  int64_t ingestion_time = 0;
};

inline constexpr size_t kBlockHeaderSize = 48;
inline constexpr size_t kSegmentHeaderSize = 16;
/// Bytes each record spends besides its message (timestamp and length).
inline constexpr size_t kRecordOverhead = 12;

/// A decoded record: a view into a block payload buffer.
struct RecordView {
  int64_t timestamp = 0;
  int64_t id = 0;
  std::string_view message;
};

/// Encodes `events` (already sorted by timestamp) as one block whose events get
/// the ids first_id, first_id + 1, ... in order.
std::string EncodeBlock(std::span<const InputEvent> events, int64_t first_id,
                        int64_t ingestion_time);

/// Decodes a block payload into records, appending to `out`. Returns false when
/// the payload does not hold exactly `header.count` well-formed records.
bool DecodeBlock(std::string_view payload, const BlockHeader& header, std::vector<RecordView>* out);

/// A block as found in a segment: its header and where its payload starts.
struct BlockLocation {
  BlockHeader header;
  uint64_t payload_offset = 0;
};

class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  /// Creates a new, empty segment file (failing if it exists) and syncs it and
  /// its directory.
  static Result<std::unique_ptr<Segment>> Create(const std::string& path, uint64_t seq);

  /// Opens an existing segment and lists its blocks. With `verify`, checks
  /// every block's CRC and truncates a torn or corrupt tail; without it, trusts
  /// the payloads and only walks the headers (still truncating a short tail).
  static Result<std::unique_ptr<Segment>> Open(const std::string& path, uint64_t seq, bool verify,
                                               std::vector<BlockLocation>* blocks);

  /// Writes one encoded block (from EncodeBlock) at the end of the file,
  /// without syncing. Returns where the block's payload starts. On failure
  /// the file is cut back to its old size.
  Result<uint64_t> Write(std::string_view block);

  /// Waits until everything written so far is on stable storage.
  Status Sync() const;

  /// Cuts the file back to `size` bytes (dropping blocks whose sync failed).
  Status Truncate(uint64_t size);

  /// Reads `len` bytes at `offset` into `out`.
  Status ReadAt(uint64_t offset, size_t len, std::string* out) const;

  uint64_t seq() const { return seq_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  Segment(std::string path, uint64_t seq, int fd, uint64_t size)
      : path_(std::move(path)), seq_(seq), fd_(fd), size_(size) {}

  std::string path_;
  uint64_t seq_;
  int fd_;
  uint64_t size_;
};

/// Syncs a directory so that entries created or removed in it are durable.
Status SyncDirectory(const std::string& dir);

}  // namespace berth::logs
