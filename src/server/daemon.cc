#include "server/daemon.h"

#include <sys/stat.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "api/aws_json_route.h"
#include "api/credentials.h"
#include "ecs/agent_protocol.h"
#include "ecs/agent_route.h"
#include "ecs/ecs_api.h"
#include "ecs/service_controller.h"
#include "logs/log_store.h"
#include "logs/logs_api.h"
#include "registry/ecr_api.h"
#include "registry/oci_route.h"
#include "registry/registry.h"
#include "elb/data_plane.h"
#include "elb/elb_api.h"
#include "elb/query_route.h"
#include "server/http_server.h"
#include "server/internal_route.h"
#include "server/lb_binder.h"
#include "server/local_agent.h"
#include "server/task_stats_route.h"
#include "store/store.h"

namespace berth {

using Json = nlohmann::json;

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("berthd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

struct Daemon::Impl {
  std::unique_ptr<store::Store> store;
  std::shared_ptr<api::KeyRing> keys;
  std::unique_ptr<ecs::EcsApi> ecs;
  std::unique_ptr<ecs::ServiceController> services;
  std::shared_ptr<ecs::AgentRoute> agent_route;
  std::unique_ptr<registry::Registry> registry;
  std::unique_ptr<registry::EcrApi> ecr;
  std::unique_ptr<logs::LogStore> logs;
  std::unique_ptr<elb::DataPlane> elb_data_plane;
  std::unique_ptr<elb::ElbApi> elb;  // also the ECS side's elb::TargetRegistry
  std::shared_ptr<InternalRoute> internal;
  std::shared_ptr<TaskStatsRoute> task_stats;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<LocalAgent> agent;
  std::unique_ptr<LoadBalancerBinder> lb_binder;
  std::string node_token;
  // Periodic housekeeping (log retention).
  std::thread sweeper;
  std::mutex sweep_mu;
  std::condition_variable sweep_cv;
  bool stopping = false;
};

namespace {

// Appends a container's shipped output to its awslogs stream.
void ShipToLogStore(logs::LogStore& store, const agent::ShippedLog& log) {
  int64_t now = logs::LogStore::NowMs();
  if (!store.GetGroup(log.group).ok() && !log.create_group) {
    spdlog::warn("event=log_group_missing group={} stream={}", log.group, log.stream);
    return;
  }
  Status st = store.EnsureStream(log.group, log.stream, now);
  if (!st.ok()) {
    spdlog::warn("event=log_stream_failed group={} error=\"{}\"", log.group,
                 st.error().message);
    return;
  }
  std::vector<logs::InputEvent> events;
  events.reserve(log.events.size());
  for (const auto& [ts, msg] : log.events) {
    events.push_back(logs::InputEvent{ts, msg});
  }
  auto appended = store.Append(log.group, log.stream, events, now);
  if (!appended.ok()) {
    spdlog::warn("event=log_append_failed group={} error=\"{}\"", log.group,
                 appended.error().message);
  }
}

}  // namespace

Daemon::Daemon(Config config) : config_(std::move(config)), impl_(std::make_unique<Impl>()) {}

Daemon::~Daemon() { Stop(); }

Status Daemon::Start() {
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) {
    return ServerError("cannot create data dir " + config_.data_dir + ": " + ec.message());
  }
  ::chmod(config_.data_dir.c_str(), 0700);

  auto keys = std::make_shared<api::KeyRing>();
  BERTH_TRY(api::EnsureDataDirCredentials(config_.data_dir, config_.region, *keys));
  if (!config_.credentials_file.empty()) {
    BERTH_TRY(api::LoadCredentialsFile(config_.credentials_file, *keys));
  }
  impl_->keys = keys;
  spdlog::info("event=keys_loaded count={}", keys->size());

  auto store = store::OpenSqliteStore(config_.data_dir + "/state.db");
  if (!store.ok()) {
    return store.error();
  }
  impl_->store = std::move(store.value());

  api::AccountInfo account{config_.account_id, config_.region};
  ecs::TaskManagerOptions task_options;
  task_options.allocation_factor = config_.allocation_factor;
  task_options.node_timeout_seconds = config_.node_timeout_seconds;
  impl_->ecs = std::make_unique<ecs::EcsApi>(*impl_->store, account, task_options);
  auto node_token = ecs::EnsureNodeToken(config_.data_dir);
  if (!node_token.ok()) {
    return node_token.error();
  }
  registry::RegistryOptions registry_options;
  registry_options.root = config_.data_dir + "/registry";
  registry_options.account = account;
  registry_options.gc_grace = std::chrono::seconds(config_.registry_gc_grace);
  auto reg = registry::Registry::Open(*impl_->store, registry_options);
  if (!reg.ok()) {
    return reg.error();
  }
  impl_->registry = std::move(reg.value());
  impl_->ecr = std::make_unique<registry::EcrApi>(*impl_->registry);
  auto log_store = logs::LogStore::Open(config_.data_dir + "/logs");
  if (!log_store.ok()) {
    return log_store.error();
  }
  impl_->logs = std::move(log_store.value());
  elb::DataPlaneOptions lb_options;
  lb_options.proxy.bind_address = config_.lb_bind_address;
  lb_options.proxy.threads = config_.lb_threads;
  impl_->elb_data_plane = std::make_unique<elb::DataPlane>(*impl_->store, lb_options);
  impl_->elb = std::make_unique<elb::ElbApi>(*impl_->store, account, impl_->elb_data_plane.get());
  impl_->elb->SetBindAddressForMessages(config_.lb_bind_address);
  impl_->elb_data_plane->SetDrainExpirer([elb = impl_->elb.get()] {
    return elb->ExpireDrainedTargets();
  });
  BERTH_TRY(impl_->elb_data_plane->Start());

  http::ServerOptions options;
  options.listen = config_.listen;
  impl_->server = std::make_unique<http::Server>(options);
  impl_->internal = std::make_shared<InternalRoute>(BERTH_VERSION);
  // The agent route lives under /_berth/ too, so it goes before the internal route.
  impl_->agent_route = std::make_shared<ecs::AgentRoute>(impl_->ecs->tasks(), *node_token);
  impl_->server->AddRoute(impl_->agent_route);
  impl_->task_stats = std::make_shared<TaskStatsRoute>(keys, config_.region);
  impl_->server->AddRoute(impl_->task_stats);
  impl_->server->AddRoute(impl_->internal);

  impl_->server->AddRoute(std::make_shared<registry::OciRoute>(*impl_->registry));
  auto json_route = std::make_shared<api::AwsJsonRoute>(keys, account);
  json_route->AddService(impl_->ecs->MakeService(), "InvalidParameterException");
  json_route->AddService(impl_->ecr->MakeService(), "InvalidParameterException");
  json_route->AddService(std::make_shared<api::JsonService>(logs::MakeLogsService(*impl_->logs)),
                         "InvalidParameterException");
  impl_->server->AddRoute(json_route);
  auto query_route = std::make_shared<elb::QueryRoute>(keys, account);
  query_route->AddService(impl_->elb->MakeService());
  impl_->server->AddRoute(query_route);

  auto bound = impl_->server->Listen();
  if (!bound.ok()) {
    return bound.error();
  }
  address_ = *bound;
  impl_->registry->SetRegistryHost(
      !config_.registry_host.empty()
          ? config_.registry_host
          : "localhost:" + address_.substr(address_.rfind(':') + 1));
  impl_->registry->StartCollector(std::chrono::seconds(config_.registry_gc_interval));
  impl_->server->Start();
  impl_->ecs->tasks().StartHousekeeping(std::chrono::seconds(1), std::chrono::minutes(1));
  impl_->services =
      std::make_unique<ecs::ServiceController>(*impl_->store, impl_->ecs->task_manager());
  impl_->services->Start();
  {
    elb::TargetRegistry* targets = impl_->elb.get();
    impl_->ecs->SetTargetGroupValidator([targets](const Json& lbs, const Json& td) {
      return CheckServiceTargetGroups(*targets, lbs, td);
    });
    impl_->lb_binder = std::make_unique<LoadBalancerBinder>(
        *impl_->store, impl_->ecs->task_manager(), *impl_->elb);
    impl_->lb_binder->Start();
  }
  impl_->node_token = *node_token;
  impl_->sweeper = std::thread([impl = impl_.get()] {
    std::unique_lock lock(impl->sweep_mu);
    while (!impl->sweep_cv.wait_for(lock, std::chrono::seconds(60),
                                    [impl] { return impl->stopping; })) {
      lock.unlock();
      (void)impl->logs->SweepExpired(logs::LogStore::NowMs());
      auto purged = impl->ecs->PurgeDeletedTaskDefinitions();
      if (!purged.ok()) {
        spdlog::warn("component=ecs event=taskdef_purge_failed error=\"{}\"",
                     purged.error().message);
      } else if (*purged > 0) {
        spdlog::info("component=ecs event=taskdefs_deleted count={}", *purged);
      }
      lock.lock();
    }
  });
  if (config_.agent) {
    LocalAgentHooks hooks;
    logs::LogStore* logs = impl_->logs.get();
    registry::Registry* reg = impl_->registry.get();
    hooks.ship_logs = [logs](const agent::ShippedLog& log) { ShipToLogStore(*logs, log); };
    hooks.registry_password = [reg] {
      return reg->tokens().Issue(std::chrono::system_clock::now() + std::chrono::hours(12),
                                 "berth-agent");
    };
    impl_->agent = std::make_unique<LocalAgent>(config_, address_, *node_token, hooks);
    Status started = impl_->agent->Start();
    if (!started.ok()) {
      spdlog::error("event=agent_start_failed error=\"{}\"", started.error().message);
      return started;
    }
    LocalAgent* local = impl_->agent.get();
    impl_->task_stats->SetSource(
        [local](const std::string& id) { return local->StatsForTask(id); });
  }
  impl_->internal->SetReady(true);
  spdlog::info("event=listening address={} data_dir={} region={} account={}", address_,
               config_.data_dir, config_.region, config_.account_id);
  return Ok();
}

void Daemon::Stop() {
  if (impl_->task_stats) {
    impl_->task_stats->SetSource(nullptr);
  }
  if (impl_->lb_binder) {
    impl_->lb_binder->Stop();
    impl_->lb_binder.reset();
  }
  if (impl_->services) {
    impl_->services->Stop();
    impl_->services.reset();
  }
  if (impl_->agent) {
    impl_->agent->Stop(config_.stop_tasks_on_exit);
    impl_->agent.reset();
  }
  {
    std::lock_guard lock(impl_->sweep_mu);
    impl_->stopping = true;
  }
  impl_->sweep_cv.notify_all();
  if (impl_->sweeper.joinable()) {
    impl_->sweeper.join();
  }
  if (impl_->ecs) {
    impl_->ecs->tasks().Shutdown();  // ends long polls before the server joins its workers
  }
  if (impl_->server) {
    impl_->server->Stop();
    impl_->server.reset();
  }
  if (impl_->registry) {
    impl_->registry->StopCollector();
  }
  impl_->ecr.reset();
  impl_->registry.reset();
  impl_->ecs.reset();
  impl_->logs.reset();
  if (impl_->elb_data_plane) {
    impl_->elb_data_plane->Stop();
  }
  impl_->ecs.reset();
  impl_->elb.reset();
  impl_->elb_data_plane.reset();
  impl_->store.reset();
}

}  // namespace berth
