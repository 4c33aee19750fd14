#include "logs/log_segment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace berth::logs {

static_assert(std::endian::native == std::endian::little,
              "segment files are written in the host's byte order, which must be little-endian");

namespace {

constexpr uint32_t kBlockMagic = 0x31424c42;  // "BLB1"
constexpr char kSegmentMagic[8] = {'B', 'E', 'R', 'T', 'H', 'L', 'O', 'G'};
constexpr uint32_t kSegmentVersion = 1;

// The largest block payload accepted when reading: far above what one
// PutLogEvents batch can produce, small enough to catch a garbage length.
constexpr uint32_t kMaxPayload = 64u << 20;

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    table[i] = c;
  }
  return table;
}

uint32_t Crc32cSoftware(const uint8_t* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  }
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(const uint8_t* p, size_t n,
                                                          uint32_t crc) {
  uint64_t c = ~crc & 0xffffffffu;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p);
    ++p;
    --n;
  }
  return ~c32;
}
#endif

template <typename T>
void Put(std::string* out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

template <typename T>
T Get(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

Error IoError(const std::string& what, const std::string& path, int err) {
  return ServerError(what + " " + path + ": " + std::strerror(err));
}

Status PreadAll(int fd, char* buf, size_t len, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return IoError("read", path, errno);
    }
    if (n == 0) {
      return ServerError("read " + path + ": unexpected end of file");
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Status PwriteAll(int fd, const char* buf, size_t len, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return IoError("write", path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

BlockHeader ParseHeader(const char* p) {
  BlockHeader h;
  h.payload_len = Get<uint32_t>(p + 8);
  h.count = Get<uint32_t>(p + 12);
  h.first_id = Get<int64_t>(p + 16);
  h.min_ts = Get<int64_t>(p + 24);
  h.max_ts = Get<int64_t>(p + 32);
  h.ingestion_time = Get<int64_t>(p + 40);
  return h;
}

std::string DirName(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

uint32_t Crc32c(std::string_view data, uint32_t crc) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) {
    return Crc32cHardware(p, data.size(), crc);
  }
#endif
  return Crc32cSoftware(p, data.size(), crc);
}

std::string EncodeBlock(std::span<const InputEvent> events, int64_t first_id,
                        int64_t ingestion_time) {
  size_t payload = 0;
  for (const auto& e : events) {
    payload += kRecordOverhead + e.message.size();
  }
  std::string out;
  out.reserve(kBlockHeaderSize + payload);
  Put<uint32_t>(&out, kBlockMagic);
  Put<uint32_t>(&out, 0);  // CRC, filled in below
  Put<uint32_t>(&out, static_cast<uint32_t>(payload));
  Put<uint32_t>(&out, static_cast<uint32_t>(events.size()));
  Put<int64_t>(&out, first_id);
  Put<int64_t>(&out, events.empty() ? 0 : events.front().timestamp);
  Put<int64_t>(&out, events.empty() ? 0 : events.back().timestamp);
  Put<int64_t>(&out, ingestion_time);
  for (const auto& e : events) {
    Put<int64_t>(&out, e.timestamp);
    Put<uint32_t>(&out, static_cast<uint32_t>(e.message.size()));
    out.append(e.message);
  }
  uint32_t crc = Crc32c(std::string_view(out).substr(8));
  std::memcpy(out.data() + 4, &crc, 4);
  return out;
}

bool DecodeBlock(std::string_view payload, const BlockHeader& header,
                 std::vector<RecordView>* out) {
  const char* p = payload.data();
  const char* end = p + payload.size();
  for (uint32_t i = 0; i < header.count; ++i) {
    if (end - p < static_cast<ptrdiff_t>(kRecordOverhead)) {
      return false;
    }
    RecordView r;
    r.timestamp = Get<int64_t>(p);
    auto len = Get<uint32_t>(p + 8);
    p += kRecordOverhead;
    if (static_cast<size_t>(end - p) < len) {
      return false;
    }
    r.id = header.first_id + i;
    r.message = std::string_view(p, len);
    p += len;
    out->push_back(r);
  }
  return p == end;
}

Segment::~Segment() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Result<std::unique_ptr<Segment>> Segment::Create(const std::string& path, uint64_t seq) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return IoError("create", path, errno);
  }
  std::unique_ptr<Segment> seg(new Segment(path, seq, fd, 0));
  std::string header(kSegmentMagic, sizeof(kSegmentMagic));
  Put<uint32_t>(&header, kSegmentVersion);
  Put<uint32_t>(&header, 0);
  BERTH_TRY(PwriteAll(fd, header.data(), header.size(), 0, path));
  if (::fdatasync(fd) != 0) {
    return IoError("sync", path, errno);
  }
  BERTH_TRY(SyncDirectory(DirName(path)));
  seg->size_ = header.size();
  return seg;
}

Result<std::unique_ptr<Segment>> Segment::Open(const std::string& path, uint64_t seq, bool verify,
                                               std::vector<BlockLocation>* blocks) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return IoError("open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return IoError("stat", path, err);
  }
  std::unique_ptr<Segment> seg(new Segment(path, seq, fd, static_cast<uint64_t>(st.st_size)));
  const uint64_t file_size = seg->size_;

  // A segment whose own header never reached the disk holds nothing.
  char head[kSegmentHeaderSize];
  if (file_size < kSegmentHeaderSize || !PreadAll(fd, head, sizeof(head), 0, path).ok() ||
      std::memcmp(head, kSegmentMagic, sizeof(kSegmentMagic)) != 0) {
    if (file_size >= kSegmentHeaderSize) {
      return ServerError("segment " + path + " has no valid header");
    }
    std::string header(kSegmentMagic, sizeof(kSegmentMagic));
    Put<uint32_t>(&header, kSegmentVersion);
    Put<uint32_t>(&header, 0);
    BERTH_TRY(PwriteAll(fd, header.data(), header.size(), 0, path));
    if (::ftruncate(fd, static_cast<off_t>(header.size())) != 0 || ::fdatasync(fd) != 0) {
      return IoError("repair", path, errno);
    }
    seg->size_ = header.size();
    return seg;
  }

  uint64_t offset = kSegmentHeaderSize;
  std::string buf;
  char raw[kBlockHeaderSize];
  while (offset < file_size) {
    bool good = file_size - offset >= kBlockHeaderSize &&
                PreadAll(fd, raw, kBlockHeaderSize, offset, path).ok() &&
                Get<uint32_t>(raw) == kBlockMagic;
    BlockHeader h;
    if (good) {
      h = ParseHeader(raw);
      good = h.payload_len <= kMaxPayload && file_size - offset - kBlockHeaderSize >= h.payload_len;
    }
    if (good && verify) {
      buf.resize(h.payload_len);
      good = PreadAll(fd, buf.data(), buf.size(), offset + kBlockHeaderSize, path).ok();
      if (good) {
        uint32_t crc = Crc32c(std::string_view(raw + 8, kBlockHeaderSize - 8));
        crc = Crc32c(buf, crc);
        good = crc == Get<uint32_t>(raw + 4);
      }
    }
    if (!good) {
      spdlog::warn("logs: segment {} holds a torn or corrupt block at offset {}; cutting {} bytes",
                   path, offset, file_size - offset);
      if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 || ::fdatasync(fd) != 0) {
        return IoError("truncate", path, errno);
      }
      seg->size_ = offset;
      break;
    }
    blocks->push_back(BlockLocation{h, offset + kBlockHeaderSize});
    offset += kBlockHeaderSize + h.payload_len;
  }
  return seg;
}

Result<uint64_t> Segment::Write(std::string_view block) {
  const uint64_t at = size_;
  Status written = PwriteAll(fd_, block.data(), block.size(), at, path_);
  if (!written.ok()) {
    // Leave no partial block behind for the next write to follow.
    if (::ftruncate(fd_, static_cast<off_t>(at)) != 0) {
      spdlog::error("logs: cannot cut {} back to {} bytes: {}", path_, at, std::strerror(errno));
    }
    return written.error();
  }
  size_ = at + block.size();
  return at + kBlockHeaderSize;
}

Status Segment::Sync() const {
  if (::fdatasync(fd_) != 0) {
    return IoError("sync", path_, errno);
  }
  return Ok();
}

Status Segment::Truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return IoError("truncate", path_, errno);
  }
  size_ = size;
  return Ok();
}

Status Segment::ReadAt(uint64_t offset, size_t len, std::string* out) const {
  out->resize(len);
  return PreadAll(fd_, out->data(), len, offset, path_);
}

Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return IoError("open directory", dir, errno);
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return IoError("sync directory", dir, err);
  }
  return Ok();
}

}  // namespace berth::logs
