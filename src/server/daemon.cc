#include "server/daemon.h"

#include <sys/stat.h>

#include <filesystem>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "api/aws_json_route.h"
#include "api/credentials.h"
#include "ecs/ecs_api.h"
#include "elb/data_plane.h"
#include "elb/elb_api.h"
#include "elb/query_route.h"
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
  std::unique_ptr<elb::DataPlane> elb_data_plane;
  std::unique_ptr<elb::ElbApi> elb;  // also the ECS side's elb::TargetRegistry
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
  impl_->ecs = std::make_unique<ecs::EcsApi>(*impl_->store, account);

  http::ServerOptions options;
  options.listen = config_.listen;
  impl_->server = std::make_unique<http::Server>(options);
  impl_->internal = std::make_shared<InternalRoute>(BERTH_VERSION);
  impl_->server->AddRoute(impl_->internal);

  auto json_route = std::make_shared<api::AwsJsonRoute>(keys, account);
  json_route->AddService(impl_->ecs->MakeService(), "InvalidParameterException");
  impl_->server->AddRoute(json_route);
  auto query_route = std::make_shared<elb::QueryRoute>(keys, account);
  query_route->AddService(impl_->elb->MakeService());
  impl_->server->AddRoute(query_route);

  auto bound = impl_->server->Listen();
  if (!bound.ok()) {
    return bound.error();
  }
  address_ = *bound;
  impl_->server->Start();
  impl_->internal->SetReady(true);
  spdlog::info("event=listening address={} data_dir={} region={} account={}", address_,
               config_.data_dir, config_.region, config_.account_id);
  return Ok();
}

void Daemon::Stop() {
  if (impl_->server) {
    impl_->server->Stop();
    impl_->server.reset();
  }
  if (impl_->elb_data_plane) {
    impl_->elb_data_plane->Stop();
  }
  impl_->ecs.reset();
  impl_->elb.reset();
  impl_->elb_data_plane.reset();
  impl_->store.reset();
}

}  // namespace berth
