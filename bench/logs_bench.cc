// logs_bench: ingest and filtered-scan throughput of the CloudWatch Logs plane.
//
// Measures, in one run:
//   1. the machine's floor: fdatasync latency of a small and of a batch-sized append in the
//      same directory the store writes to (every acknowledged PutLogEvents batch costs one);
//   2. the log store in-process (LogStore::Append and LogStore::Filter, which is what the
//      PutLogEvents and FilterLogEvents handlers call), durable as berthd runs it: 1,000,000
//      events of 100 bytes in batches of 1,000 by one writer, by 4 writers into 4 streams and
//      by 4 writers into one stream, then filtered scans with a term that matches 1% of them;
//   3. the same through the full HTTP path: a berthd started for the run on a loopback port,
//      driven by a client here that signs every request with SigV4 (fewer events).
//
// It prints events/s and the ratio to the goals (ingest 500,000/s, scan 2,000,000/s). Every
// file it writes lives in one temporary directory that is removed at the end; the berthd it
// starts is stopped by its pid. Each phase stops at a time limit and says so.
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench_http.h"
#include "logs/filter_pattern.h"
#include "logs/log_store.h"

namespace {

namespace fs = std::filesystem;
using berth::bench::Clock;
using berth::bench::Credentials;
using berth::bench::MachineLoad;
using berth::bench::Percentile;
using berth::bench::ReadCredentials;
using berth::bench::SecondsSince;
using Berthd = berth::bench::BerthdProcess;
using berth::logs::InputEvent;

constexpr double kIngestGoal = 500'000;
constexpr double kScanGoal = 2'000'000;
constexpr size_t kMessageBytes = 100;
constexpr const char* kTerm = "ERROR";  // in every 100th message, nowhere else

std::atomic<bool> g_interrupted{false};

std::string Rate(double events_per_s) {
  return fmt::format("{:>12.0f} events/s", events_per_s);
}

// A 100-byte log line that looks like an access log. Line i carries the term when i % 100 == 0.
std::string Message(size_t i) {
  const char* level = i % 100 == 0 ? kTerm : "INFO";
  std::string m = fmt::format(
      "level={} req={:08x} method=GET path=/v1/items/{:05d} status=200 bytes={:05d} up=backend-{} ",
      level, static_cast<uint32_t>(i * 2654435761u), i % 100000, (i * 37) % 100000, i % 7);
  m.resize(kMessageBytes, 'x');
  return m;
}

// `total` events in batches of `batch`, with timestamps rising by 1 ms every 10 events from
// `t0`. Batch b goes to stream b % streams.
struct Workload {
  std::vector<std::vector<InputEvent>> batches;
  size_t total = 0;
  size_t matching = 0;
};

Workload MakeWorkload(size_t total, size_t batch, int64_t t0) {
  Workload w;
  w.total = total;
  for (size_t i = 0; i < total; i += batch) {
    std::vector<InputEvent> b;
    b.reserve(batch);
    for (size_t j = i; j < std::min(total, i + batch); ++j) {
      b.push_back(InputEvent{t0 + static_cast<int64_t>(j / 10), Message(j)});
      w.matching += j % 100 == 0 ? 1 : 0;
    }
    w.batches.push_back(std::move(b));
  }
  return w;
}

// ---------------------------------------------------------------------------
// The machine's floor: what one durable append costs here.

struct SyncFloor {
  double small_p50_ms = 0;
  double small_p99_ms = 0;
  double batch_p50_ms = 0;
  double batch_p99_ms = 0;
};

std::vector<double> TimeSyncs(const std::string& path, size_t bytes, int count) {
  std::vector<double> samples;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return samples;
  }
  std::string block(bytes, 'f');
  for (int i = 0; i < count && !g_interrupted; ++i) {
    auto t = Clock::now();
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0) {
      break;
    }
    samples.push_back(SecondsSince(t) * 1000);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return samples;
}

SyncFloor MeasureSyncFloor(const std::string& dir, size_t batch_bytes) {
  SyncFloor f;
  auto small = TimeSyncs(dir + "/fsync-small", 4096, 200);
  auto batch = TimeSyncs(dir + "/fsync-batch", batch_bytes, 200);
  f.small_p50_ms = Percentile(small, 50);
  f.small_p99_ms = Percentile(small, 99);
  f.batch_p50_ms = Percentile(batch, 50);
  f.batch_p99_ms = Percentile(batch, 99);
  return f;
}

// ---------------------------------------------------------------------------
// In-process: the log store itself.

struct IngestResult {
  size_t events = 0;
  double seconds = 0;
  std::string error;

  double rate() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
};

// Appends every batch of `w`: writer k takes batches k, k + writers, ...; batch b goes to
// streams[b % streams.size()].
IngestResult IngestStore(berth::logs::LogStore& store, const std::string& group,
                         const std::vector<std::string>& streams, const Workload& w, int writers,
                         double time_limit_s) {
  std::atomic<size_t> done{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mu;
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int k = 0; k < writers; ++k) {
    threads.emplace_back([&, k] {
      for (size_t b = static_cast<size_t>(k); b < w.batches.size(); b += writers) {
        if (failed || g_interrupted || SecondsSince(start) > time_limit_s) {
          return;
        }
        const auto& batch = w.batches[b];
        auto r = store.Append(group, streams[b % streams.size()], batch);
        if (!r.ok()) {
          std::lock_guard lock(error_mu);
          error = r.error().message;
          failed = true;
          return;
        }
        done += batch.size();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  IngestResult r;
  r.events = done;
  r.seconds = SecondsSince(start);
  r.error = error;
  return r;
}

struct ScanResult {
  size_t scanned = 0;  // events in the group (each examined once)
  size_t matched = 0;
  size_t pages = 0;
  double seconds = 0;
  std::string error;

  double rate() const { return seconds > 0 ? static_cast<double>(scanned) / seconds : 0; }
};

// FilterLogEvents over the whole group, page after page, as the API pages it (10,000 events
// or 1 MiB a page).
ScanResult ScanStore(const berth::logs::LogStore& store, const std::string& group, size_t total,
                     double time_limit_s) {
  ScanResult r;
  auto pattern = berth::logs::FilterPattern::Parse(kTerm);
  if (!pattern.ok()) {
    r.error = pattern.error().message;
    return r;
  }
  berth::logs::FilterQuery q;
  q.matcher = [&](std::string_view m) {
    return pattern->Matches(m);
  };
  auto start = Clock::now();
  while (!g_interrupted && SecondsSince(start) < time_limit_s) {
    auto page = store.Filter(group, q);
    if (!page.ok()) {
      r.error = page.error().message;
      break;
    }
    ++r.pages;
    r.matched += page->events.size();
    if (!page->resume_after) {
      r.scanned = total;
      break;
    }
    q.after = page->resume_after;
  }
  r.seconds = SecondsSince(start);
  return r;
}

// ---------------------------------------------------------------------------
// Over HTTP: a berthd of the run's own, driven with SigV4-signed JSON 1.1 requests.

// One kept-alive connection to the Logs API.
class LogsClient : public berth::bench::SignedJsonClient {
 public:
  LogsClient(std::string endpoint, std::string host, Credentials creds)
      : SignedJsonClient(std::move(endpoint), std::move(host), std::move(creds),
                         "Logs_20140328", "logs") {}
};

// The PutLogEvents body for one batch, written out directly (messages need no escaping).
std::string PutBody(const std::string& group, const std::string& stream,
                    const std::vector<InputEvent>& batch) {
  std::string out =
      fmt::format(R"({{"logGroupName":"{}","logStreamName":"{}","logEvents":[)", group, stream);
  out.reserve(batch.size() * (kMessageBytes + 40) + out.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    out += fmt::format(R"({}{{"timestamp":{},"message":"{}"}})", i ? "," : "", batch[i].timestamp,
                       batch[i].message);
  }
  out += "]}";
  return out;
}

IngestResult IngestHttp(const Berthd& d, const Credentials& creds, const std::string& group,
                        const std::vector<std::string>& streams, const Workload& w, int writers,
                        double time_limit_s) {
  // Bodies are made before the clock starts: the client's own JSON writing is not measured.
  std::vector<std::string> bodies;
  for (size_t b = 0; b < w.batches.size(); ++b) {
    bodies.push_back(PutBody(group, streams[b % streams.size()], w.batches[b]));
  }
  std::atomic<size_t> done{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mu;
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int k = 0; k < writers; ++k) {
    threads.emplace_back([&, k] {
      LogsClient client(d.endpoint(), d.host(), creds);
      std::string response;
      for (size_t b = static_cast<size_t>(k); b < bodies.size(); b += writers) {
        if (failed || g_interrupted || SecondsSince(start) > time_limit_s) {
          return;
        }
        if (!client.Call("PutLogEvents", bodies[b], &response)) {
          std::lock_guard lock(error_mu);
          error = response.substr(0, 300);
          failed = true;
          return;
        }
        done += w.batches[b].size();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  IngestResult r;
  r.events = done;
  r.seconds = SecondsSince(start);
  r.error = error;
  return r;
}

ScanResult ScanHttp(const Berthd& d, const Credentials& creds, const std::string& group,
                    size_t total, double time_limit_s) {
  ScanResult r;
  LogsClient client(d.endpoint(), d.host(), creds);
  nlohmann::json request = {{"logGroupName", group}, {"filterPattern", kTerm}};
  std::string response;
  auto start = Clock::now();
  while (!g_interrupted && SecondsSince(start) < time_limit_s) {
    if (!client.Call("FilterLogEvents", request.dump(), &response)) {
      r.error = response.substr(0, 300);
      break;
    }
    auto page = nlohmann::json::parse(response, nullptr, false);
    if (page.is_discarded()) {
      r.error = "unparsable FilterLogEvents answer";
      break;
    }
    ++r.pages;
    r.matched += page["events"].size();
    if (!page.contains("nextToken")) {
      r.scanned = total;
      break;
    }
    request["nextToken"] = page["nextToken"];
  }
  r.seconds = SecondsSince(start);
  return r;
}

// ---------------------------------------------------------------------------
// Reporting

void PrintIngest(const std::string& what, const IngestResult& r, size_t expected) {
  std::string note;
  if (!r.error.empty()) {
    note = " FAILED: " + r.error;
  } else if (g_interrupted) {
    note = fmt::format(" (interrupted after {} events)", r.events);
  } else if (r.events < expected) {
    note = fmt::format(" (stopped at the time limit after {} events)", r.events);
  }
  fmt::print("  {:<44} {}  {:6.2f} s  x{:.2f} of goal{}\n", what, Rate(r.rate()), r.seconds,
             r.rate() / kIngestGoal, note);
}

void PrintScan(const std::string& what, const ScanResult& r, size_t expected_matches) {
  std::string note;
  if (!r.error.empty()) {
    note = " FAILED: " + r.error;
  } else if (g_interrupted) {
    note = " (interrupted)";
  } else if (r.scanned == 0) {
    note = " (stopped at the time limit)";
  } else if (r.matched != expected_matches) {
    note = fmt::format(" WRONG: {} matches, expected {}", r.matched, expected_matches);
  }
  fmt::print("  {:<44} {}  {:6.2f} s  x{:.2f} of goal  ({} matches, {} pages){}\n", what,
             Rate(r.rate()), r.seconds, r.rate() / kScanGoal, r.matched, r.pages, note);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmarks the CloudWatch Logs plane: the log store and the HTTP API"};
  size_t events = 1'000'000;
  size_t http_events = 200'000;
  size_t batch = 1000;
  std::string base_dir = "/var/tmp";
  std::string berthd = BERTH_DAEMON_BINARY;
  bool skip_http = false;
  double phase_limit = 90;
  app.add_option("--events", events, "Events per in-process run")->capture_default_str();
  app.add_option("--http-events", http_events, "Events per HTTP run")->capture_default_str();
  app.add_option("--batch", batch, "Events per batch")->capture_default_str();
  app.add_option("--dir", base_dir, "Where the temporary store lives (its disk is measured)")
      ->capture_default_str();
  app.add_option("--berthd", berthd, "The berthd binary for the HTTP runs")->capture_default_str();
  app.add_flag("--no-http", skip_http, "Skip the HTTP runs");
  app.add_option("--phase-limit", phase_limit, "Seconds after which a run stops")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (batch == 0 || batch > 10000 || events == 0) {
    fmt::print(stderr, "logs_bench: --batch must be 1..10000 and --events positive\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  berth::bench::WatchSignals(g_interrupted, "logs_bench");
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::string tmpl = base_dir + "/logs-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    fmt::print(stderr, "logs_bench: mkdtemp in {}: {}\n", base_dir, std::strerror(errno));
    return 1;
  }
  const std::string dir = tmpl;
  int rc = 0;

  const int64_t t0 = berth::logs::LogStore::NowMs() - 3600 * 1000;
  fmt::print("logs_bench: {} events of {} bytes in batches of {}; filter term \"{}\" (1%)\n",
             events, kMessageBytes, batch, kTerm);
  fmt::print("  store directory: {}; {} cores, {}\n\n", base_dir,
             std::thread::hardware_concurrency(), MachineLoad());

  Workload w = MakeWorkload(events, batch, t0);
  const size_t batch_bytes =
      berth::logs::kBlockHeaderSize + batch * (kMessageBytes + berth::logs::kRecordOverhead);

  // 1. The floor.
  SyncFloor floor = MeasureSyncFloor(dir, batch_bytes);
  const double ceiling = floor.batch_p50_ms > 0 ? batch * 1000.0 / floor.batch_p50_ms : 0;
  fmt::print("machine floor (fdatasync after an append, 200 each):\n");
  fmt::print("  4 KiB append + fdatasync        p50 {:.2f} ms  p99 {:.2f} ms\n", floor.small_p50_ms,
             floor.small_p99_ms);
  fmt::print(
      "  {} KiB append + fdatasync      p50 {:.2f} ms  p99 {:.2f} ms"
      "  (one synced batch per {:.2f} ms: {:.0f} events/s for one writer)\n\n",
      batch_bytes / 1024, floor.batch_p50_ms, floor.batch_p99_ms, floor.batch_p50_ms, ceiling);

  // 2. In-process.
  {
    fmt::print("log store, in-process (Append fdatasyncs every batch, as berthd does):\n");
    auto store = berth::logs::LogStore::Open(dir + "/store");
    if (!store.ok()) {
      fmt::print(stderr, "logs_bench: open store: {}\n", store.error().message);
      fs::remove_all(dir);
      return 1;
    }
    auto& s = **store;
    const int64_t now = berth::logs::LogStore::NowMs();
    std::vector<std::string> one = {"s0"};
    std::vector<std::string> four = {"s0", "s1", "s2", "s3"};
    for (const char* g : {"/bench/one-writer", "/bench/four-streams", "/bench/four-one-stream"}) {
      (void)s.CreateGroup(g, {}, now);
      for (const auto& st : four) {
        (void)s.CreateStream(g, st, now);
      }
    }
    auto single = IngestStore(s, "/bench/one-writer", one, w, 1, phase_limit);
    PrintIngest("ingest, 1 writer, 1 stream", single, events);
    auto multi = IngestStore(s, "/bench/four-streams", four, w, 4, phase_limit);
    PrintIngest("ingest, 4 writers, 4 streams", multi, events);
    auto shared = IngestStore(s, "/bench/four-one-stream", one, w, 4, phase_limit);
    PrintIngest("ingest, 4 writers, 1 stream (group commit)", shared, events);

    auto scan1 = ScanStore(s, "/bench/one-writer", single.events, phase_limit);
    PrintScan("filter scan, 1 stream", scan1, single.events == events ? w.matching : scan1.matched);
    auto scan4 = ScanStore(s, "/bench/four-streams", multi.events, phase_limit);
    PrintScan("filter scan, 4 streams merged", scan4,
              multi.events == events ? w.matching : scan4.matched);
    auto scan1b = ScanStore(s, "/bench/four-one-stream", shared.events, phase_limit);
    PrintScan("filter scan, 1 stream of 4 writers' batches", scan1b,
              shared.events == events ? w.matching : scan1b.matched);
    for (const auto* r : {&single, &multi, &shared}) {
      rc |= r->error.empty() ? 0 : 1;
    }
    for (const auto* r : {&scan1, &scan4, &scan1b}) {
      rc |= r->error.empty() ? 0 : 1;
    }
  }
  fs::remove_all(dir + "/store");
  w = Workload{};

  // 3. Over HTTP.
  if (!skip_http && !g_interrupted) {
    fmt::print("\nfull HTTP path (berthd on loopback, SigV4-signed JSON 1.1, {} events):\n",
               http_events);
    Berthd d(berthd, dir + "/berthd");
    std::string error;
    Credentials creds;
    if (!d.Start(&error)) {
      fmt::print("  SKIPPED: {}\n", error);
      rc = 1;
    } else if (!ReadCredentials(d.data_dir() + "/credentials", &creds)) {
      fmt::print("  SKIPPED: no credentials in berthd's data dir\n");
      rc = 1;
    } else {
      const int64_t t1 = berth::logs::LogStore::NowMs() - 1800 * 1000;
      Workload hw = MakeWorkload(http_events, batch, t1);
      LogsClient setup(d.endpoint(), d.host(), creds);
      std::string out;
      std::vector<std::string> four = {"s0", "s1", "s2", "s3"};
      for (const char* g : {"/bench/http-one", "/bench/http-four"}) {
        setup.Call("CreateLogGroup", nlohmann::json{{"logGroupName", g}}.dump(), &out);
        for (const auto& st : four) {
          setup.Call("CreateLogStream",
                     nlohmann::json{{"logGroupName", g}, {"logStreamName", st}}.dump(), &out);
        }
      }
      auto h1 = IngestHttp(d, creds, "/bench/http-one", {"s0"}, hw, 1, phase_limit);
      PrintIngest("PutLogEvents, 1 connection, 1 stream", h1, http_events);
      auto h4 = IngestHttp(d, creds, "/bench/http-four", four, hw, 4, phase_limit);
      PrintIngest("PutLogEvents, 4 connections, 4 streams", h4, http_events);
      auto hs1 = ScanHttp(d, creds, "/bench/http-one", h1.events, phase_limit);
      PrintScan("FilterLogEvents, 1 stream", hs1,
                h1.events == http_events ? hw.matching : hs1.matched);
      auto hs4 = ScanHttp(d, creds, "/bench/http-four", h4.events, phase_limit);
      PrintScan("FilterLogEvents, 4 streams merged", hs4,
                h4.events == http_events ? hw.matching : hs4.matched);
      for (const auto* r : {&h1, &h4}) {
        rc |= r->error.empty() ? 0 : 1;
      }
      for (const auto* r : {&hs1, &hs4}) {
        rc |= r->error.empty() ? 0 : 1;
      }
    }
    d.Stop();
  }

  fs::remove_all(dir);
  curl_global_cleanup();
  fmt::print("\ngoals: ingest {:.0f} events/s, filtered scan {:.0f} events/s\n", kIngestGoal,
             kScanGoal);
  fmt::print("at the end: {}\n", MachineLoad());
  return g_interrupted ? 130 : rc;
}
