#include "server/daemon.h"

#include <sys/stat.h>

#include <filesystem>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "api/aws_json_route.h"
#include "api/credentials.h"
#include "ecs/agent_protocol.h"
#include "ecs/agent_route.h"
#include "ecs/ecs_api.h"
#include "ecs/service_controller.h"
#include "server/http_server.h"
#include "server/internal_route.h"
#include "store/store.h"

namespace berth {

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
  std::shared_ptr<InternalRoute> internal;
  std::unique_ptr<http::Server> server;
};

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

  http::ServerOptions options;
  options.listen = config_.listen;
  impl_->server = std::make_unique<http::Server>(options);
  impl_->internal = std::make_shared<InternalRoute>(BERTH_VERSION);
  // The agent route lives under /_berth/ too, so it goes before the internal route.
  impl_->agent_route = std::make_shared<ecs::AgentRoute>(impl_->ecs->tasks(), *node_token);
  impl_->server->AddRoute(impl_->agent_route);
  impl_->server->AddRoute(impl_->internal);

  auto json_route = std::make_shared<api::AwsJsonRoute>(keys, account);
  json_route->AddService(impl_->ecs->MakeService(), "InvalidParameterException");
  impl_->server->AddRoute(json_route);

  auto bound = impl_->server->Listen();
  if (!bound.ok()) {
    return bound.error();
  }
  address_ = *bound;
  impl_->server->Start();
  impl_->ecs->tasks().StartHousekeeping(std::chrono::seconds(1), std::chrono::minutes(1));
  impl_->services =
      std::make_unique<ecs::ServiceController>(*impl_->store, impl_->ecs->task_manager());
  impl_->services->Start();
  impl_->internal->SetReady(true);
  spdlog::info("event=listening address={} data_dir={} region={} account={}", address_,
               config_.data_dir, config_.region, config_.account_id);
  return Ok();
}

void Daemon::Stop() {
  if (impl_->services) {
    impl_->services->Stop();
    impl_->services.reset();
  }
  if (impl_->ecs) {
    impl_->ecs->tasks().Shutdown();  // ends long polls before the server joins its workers
  }
  if (impl_->server) {
    impl_->server->Stop();
    impl_->server.reset();
  }
  impl_->ecs.reset();
  impl_->store.reset();
}

}  // namespace berth
