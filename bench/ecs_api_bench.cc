// ecs_api_bench: DescribeTasks and ListTasks throughput through the full HTTP + SigV4 path.
//
// A store of the run's own is seeded in-process through the same ECS handlers berthd runs
// (CreateCluster, RegisterTaskDefinition, RunTask against simulated nodes) with 10,000 tasks;
// then a berthd is started on that data directory on a loopback port and driven by client
// threads here that sign every JSON 1.1 request with SigV4 over kept-alive connections, as an
// SDK does. Each workload runs for a fixed time and prints requests/s, the p50 and p99 latency,
// berthd's own CPU time per request, and the ratios to the goal (5,000 requests/s) and to the
// floor measured in the same run: the same client and connections doing an unsigned GET of
// berthd's health endpoint, which costs the HTTP server and nothing else.
//
// No ECS emulator that answers DescribeTasks without Docker is packaged for this machine, so
// the floor, not another product, is the comparison printed beside berth.
#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_http.h"
#include "ecs/ecs_api.h"
#include "store/sqlite_store.h"

namespace {

namespace fs = std::filesystem;
using berth::bench::Clock;
using berth::bench::SecondsSince;
using Json = nlohmann::json;

constexpr double kGoal = 5000;
constexpr const char* kCluster = "bench";
constexpr const char* kEcsTarget = "AmazonEC2ContainerServiceV20141113";

std::atomic<bool> g_interrupted{false};

// Seeds `dir`/state.db as berthd would hold it: one cluster, one task definition, `tasks`
// tasks placed on simulated nodes with `started_by` groups of 100. Returns the task ARNs.
berth::Result<std::vector<std::string>> Seed(const std::string& dir, int tasks) {
  auto store = berth::store::OpenSqliteStore(dir + "/state.db");
  if (!store.ok()) {
    return store.error();
  }
  berth::api::AccountInfo account;
  berth::ecs::EcsApi ecs(**store, account);
  berth::api::CallContext ctx{account.account_id, account.region, "seed", "seed"};
  BERTH_TRY(ecs.CreateCluster({{"clusterName", kCluster}}, ctx));
  BERTH_TRY(ecs.RegisterTaskDefinition(
      {{"family", "web"},
       {"requiresCompatibilities", {"FARGATE"}},
       {"networkMode", "awsvpc"},
       {"cpu", "256"},
       {"memory", "512"},
       {"containerDefinitions",
        {{{"name", "app"},
          {"image", "busybox"},
          {"essential", true},
          {"portMappings", {{{"containerPort", 80}}}},
          {"environment", {{{"name", "MODE"}, {"value", "bench"}}}}}}}},
      ctx));
  // Nodes big enough for every task (the allocation factor is the default 1.0).
  const int nodes = std::max(1, tasks / 400 + 1);
  for (int i = 0; i < nodes; ++i) {
    berth::ecs::NodeRegistration reg;
    reg.node_id = fmt::format("bench-node-{}", i);
    reg.cpu = 128 * 1024;
    reg.memory = 256 * 1024;
    reg.availability_zone = std::string("us-east-1") + static_cast<char>('a' + i % 3);
    BERTH_TRY(ecs.tasks().RegisterNode(reg));
  }
  Json net = {{"awsvpcConfiguration", {{"subnets", {"subnet-0123456789abcdef0"}}}}};
  std::vector<std::string> arns;
  for (int i = 0; i < tasks && !g_interrupted; i += 10) {
    int count = std::min(10, tasks - i);
    auto out = ecs.RunTask({{"cluster", kCluster},
                            {"taskDefinition", "web"},
                            {"count", count},
                            {"launchType", "FARGATE"},
                            {"startedBy", fmt::format("batch-{}", (i / 100) % 100)},
                            {"networkConfiguration", net}},
                           ctx);
    if (!out.ok()) {
      return out.error();
    }
    if (!(*out)["failures"].empty()) {
      return berth::ServerError("seeding failed: " + (*out)["failures"].dump());
    }
    for (const auto& t : (*out)["tasks"]) {
      arns.push_back(t["taskArn"].get<std::string>());
    }
  }
  return arns;
}

// berthd's user + system CPU seconds so far.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int i = 3; rest >> field; ++i) {
    if (i == 14) {
      utime = std::stod(field);
    } else if (i == 15) {
      stime = std::stod(field);
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Outcome {
  size_t requests = 0;
  size_t items = 0;  // tasks described or listed
  double seconds = 0;
  double server_cpu_s = 0;
  std::vector<double> latencies_ms;
  std::string error;

  double rate() const { return seconds > 0 ? static_cast<double>(requests) / seconds : 0; }
};

// One request of a workload: fills `items` with what it returned; false on an error, with
// the answer in `response`.
using Step = std::function<bool(berth::bench::SignedJsonClient& client, std::mt19937& rng,
                                std::string* response, size_t* items)>;

Outcome Drive(const berth::bench::BerthdProcess& d, const berth::bench::Credentials& creds,
              int connections, double seconds, const Step& step) {
  std::atomic<size_t> requests{0};
  std::atomic<size_t> items{0};
  std::mutex mu;
  Outcome out;
  std::vector<std::thread> threads;
  const double cpu0 = ProcessCpuSeconds(d.pid());
  const auto start = Clock::now();
  for (int k = 0; k < connections; ++k) {
    threads.emplace_back([&, k] {
      berth::bench::SignedJsonClient client(d.endpoint(), d.host(), creds, kEcsTarget, "ecs");
      std::mt19937 rng(static_cast<uint32_t>(k * 7919 + 1));
      std::vector<double> lat;
      std::string response;
      std::string error;
      while (!g_interrupted && SecondsSince(start) < seconds) {
        size_t n = 0;
        auto t0 = Clock::now();
        if (!step(client, rng, &response, &n)) {
          error = response.substr(0, 300);
          break;
        }
        lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        items += n;
        ++requests;
      }
      std::lock_guard lock(mu);
      out.latencies_ms.insert(out.latencies_ms.end(), lat.begin(), lat.end());
      if (!error.empty() && out.error.empty()) {
        out.error = error;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  out.seconds = SecondsSince(start);
  out.server_cpu_s = ProcessCpuSeconds(d.pid()) - cpu0;
  out.requests = requests;
  out.items = items;
  return out;
}

void Print(const std::string& what, const Outcome& r, double floor_rate, bool against_goal) {
  if (!r.error.empty()) {
    fmt::print("  {:<40} FAILED: {}\n", what, r.error);
    return;
  }
  std::string ratios;
  if (floor_rate > 0) {
    ratios = fmt::format("  x{:.2f} of floor", r.rate() / floor_rate);
  }
  if (against_goal) {
    ratios += fmt::format("  x{:.2f} of goal", r.rate() / kGoal);
  }
  std::string items;
  if (r.items != r.requests && r.requests > 0) {
    items = fmt::format("  ({:.0f} tasks/s)", static_cast<double>(r.items) / r.seconds);
  }
  fmt::print("  {:<40} {:>8.0f} req/s  p50 {:6.2f} ms  p99 {:6.2f} ms  server cpu {:5.0f} us/req"
             "{}{}\n",
             what, r.rate(), berth::bench::Percentile(r.latencies_ms, 50),
             berth::bench::Percentile(r.latencies_ms, 99),
             r.requests ? r.server_cpu_s * 1e6 / static_cast<double>(r.requests) : 0, ratios,
             items);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmarks DescribeTasks and ListTasks through berthd's HTTP + SigV4 path"};
  int tasks = 10000;
  int connections = 4;
  double seconds = 5;
  std::string base_dir = "/var/tmp";
  std::string berthd = BERTH_DAEMON_BINARY;
  app.add_option("--tasks", tasks, "Tasks stored")->capture_default_str();
  app.add_option("--connections", connections, "Client connections (one thread each)")
      ->capture_default_str();
  app.add_option("--seconds", seconds, "Seconds per workload")->capture_default_str();
  app.add_option("--dir", base_dir, "Where the temporary data directory lives")
      ->capture_default_str();
  app.add_option("--berthd", berthd, "The berthd binary")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (tasks < 100 || connections < 1 || seconds <= 0 || seconds > 120) {
    fmt::print(stderr, "ecs_api_bench: --tasks >= 100, --connections >= 1, --seconds 0-120\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  berth::bench::WatchSignals(g_interrupted, "ecs_api_bench");
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::string tmpl = base_dir + "/ecs-api-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    fmt::print(stderr, "ecs_api_bench: mkdtemp in {}: {}\n", base_dir, std::strerror(errno));
    return 1;
  }
  const std::string dir = tmpl;
  fmt::print("ecs_api_bench: {} tasks stored, {} connections, {} s per workload\n", tasks,
             connections, seconds);
  fmt::print("  {} cores, {}\n\n", std::thread::hardware_concurrency(),
             berth::bench::MachineLoad());

  int rc = 0;
  auto seed_start = Clock::now();
  auto arns = Seed(dir, tasks);
  if (!arns.ok()) {
    fmt::print(stderr, "ecs_api_bench: seeding: {}: {}\n", arns.error().code,
               arns.error().message);
    fs::remove_all(dir);
    return 1;
  }
  fmt::print("seeded {} tasks through RunTask in-process in {:.1f} s\n\n", arns->size(),
             SecondsSince(seed_start));

  // The simulated nodes never report: a long node timeout keeps their tasks as they are.
  berth::bench::BerthdProcess d(berthd, dir, {"--node-timeout", "86400"});
  berth::bench::Credentials creds;
  std::string error;
  if (!d.Start(&error)) {
    fmt::print(stderr, "ecs_api_bench: {}\n", error);
    rc = 1;
  } else if (!berth::bench::ReadCredentials(dir + "/credentials", &creds)) {
    fmt::print(stderr, "ecs_api_bench: no credentials in berthd's data directory\n");
    rc = 1;
  } else {
    const std::vector<std::string>& all = *arns;
    auto pick = [&](std::mt19937& rng) {
      return all[std::uniform_int_distribution<size_t>(0, all.size() - 1)(rng)];
    };
    // The client reads answers without parsing them whole: on 2 cores its own JSON work would
    // take CPU from berthd and be measured as berthd's. A task in DescribeTasks holds
    // "clusterArn" once (its containers do not); an ARN in ListTasks holds ":task/" once.
    auto count_of = [](const std::string& body, const char* member) -> std::optional<size_t> {
      if (body.find(std::string("\"") + member + "\":[") == std::string::npos) {
        return std::nullopt;
      }
      const std::string needle =
          std::string(member) == "tasks" ? std::string("\"clusterArn\"") : std::string(":task/");
      size_t n = 0;
      for (size_t at = body.find(needle); at != std::string::npos;
           at = body.find(needle, at + needle.size())) {
        ++n;
      }
      return n;
    };
    auto next_token = [](const std::string& body) {
      const std::string key = "\"nextToken\":\"";
      size_t at = body.find(key);
      if (at == std::string::npos) {
        return std::string();
      }
      at += key.size();
      return body.substr(at, body.find('"', at) - at);
    };

    fmt::print("berthd on {}:\n", d.endpoint());
    // Warm-up: connections open, pages cached.
    Drive(d, creds, connections, 1.0, [&](auto& c, auto& rng, std::string* r, size_t* n) {
      *n = 1;
      return c.Call("DescribeTasks",
                    Json{{"cluster", kCluster}, {"tasks", {pick(rng)}}}.dump(), r);
    });

    auto floor = Drive(d, creds, connections, seconds, [](auto& c, auto&, std::string* r,
                                                          size_t* n) {
      *n = 1;
      return c.Get("/_berth/health", r);
    });
    Print("floor: GET /_berth/health (unsigned)", floor, 0, false);
    const double floor_rate = floor.error.empty() ? floor.rate() : 0;

    auto list_clusters = Drive(d, creds, connections, seconds,
                               [&](auto& c, auto&, std::string* r, size_t* n) {
                                 *n = 1;
                                 return c.Call("ListClusters", "{}", r);
                               });
    Print("ListClusters (signed, no task data)", list_clusters, floor_rate, false);

    auto describe_one = Drive(d, creds, connections, seconds,
                              [&](auto& c, auto& rng, std::string* r, size_t* n) {
                                bool ok = c.Call(
                                    "DescribeTasks",
                                    Json{{"cluster", kCluster}, {"tasks", {pick(rng)}}}.dump(), r);
                                auto got = count_of(*r, "tasks");
                                *n = got.value_or(0);
                                return ok && got == 1u;
                              });
    Print("DescribeTasks, 1 task", describe_one, floor_rate, true);

    auto describe_100 = Drive(d, creds, connections, seconds,
                              [&](auto& c, auto& rng, std::string* r, size_t* n) {
                                Json ids = Json::array();
                                for (int i = 0; i < 100; ++i) {
                                  ids.push_back(pick(rng));
                                }
                                bool ok = c.Call("DescribeTasks",
                                                 Json{{"cluster", kCluster}, {"tasks", ids}}.dump(),
                                                 r);
                                auto got = count_of(*r, "tasks");
                                *n = got.value_or(0);
                                return ok && got.has_value() && *got > 0;
                              });
    Print("DescribeTasks, 100 tasks", describe_100, floor_rate, false);

    // ListTasks walks the whole cluster page by page (100 a page), each thread on its own walk.
    auto list_pages = Drive(d, creds, connections, seconds,
                            [&](auto& c, auto&, std::string* r, size_t* n) {
                              thread_local std::string token;
                              Json req = {{"cluster", kCluster}, {"maxResults", 100}};
                              if (!token.empty()) {
                                req["nextToken"] = token;
                              }
                              bool ok = c.Call("ListTasks", req.dump(), r);
                              auto got = count_of(*r, "taskArns");
                              if (!ok || !got) {
                                return false;
                              }
                              *n = *got;
                              token = next_token(*r);
                              return true;
                            });
    Print("ListTasks, 100 a page, walking pages", list_pages, floor_rate, true);

    auto list_filtered = Drive(d, creds, connections, seconds,
                               [&](auto& c, auto& rng, std::string* r, size_t* n) {
                                 int batch = std::uniform_int_distribution<int>(0, 99)(rng);
                                 bool ok = c.Call("ListTasks",
                                                  Json{{"cluster", kCluster},
                                                       {"startedBy", fmt::format("batch-{}", batch)}}
                                                      .dump(),
                                                  r);
                                 auto got = count_of(*r, "taskArns");
                                 *n = got.value_or(0);
                                 return ok && got.has_value();
                               });
    Print("ListTasks, startedBy filter", list_filtered, floor_rate, true);

    for (const auto* o : {&floor, &list_clusters, &describe_one, &describe_100, &list_pages,
                          &list_filtered}) {
      rc |= o->error.empty() ? 0 : 1;
    }
  }
  d.Stop();
  fs::remove_all(dir);
  curl_global_cleanup();
  fmt::print("\ngoal: DescribeTasks and ListTasks above {:.0f} requests/s on 2 cores\n", kGoal);
  fmt::print("at the end: {}\n", berth::bench::MachineLoad());
  return g_interrupted ? 130 : rc;
}
