// berthd: serverless containers the way AWS Fargate runs them.
#include <signal.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "server/daemon.h"

namespace {

int Serve(berth::Config config) {
  berth::SetUpLogging(config.log_level);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread started below
  signal(SIGPIPE, SIG_IGN);

  berth::Daemon daemon(config);
  berth::Status st = daemon.Start();
  if (!st.ok()) {
    spdlog::critical("event=start_failed error=\"{}\"", st.error().message);
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("event=shutdown signal={}", sig);
  daemon.Stop();
  spdlog::info("event=stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"berthd: serverless containers the way AWS Fargate runs them"};
  app.set_version_flag("--version", std::string("berthd ") + BERTH_VERSION);
  app.require_subcommand(1);

  // A config file gives the settings the command line does not: it is read
  // before the flags are parsed, and every flag given overrides its key.
  berth::Config config;
  std::string config_file;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_file = argv[i + 1];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_file = arg.substr(9);
    }
  }
  if (!config_file.empty()) {
    berth::Status st = berth::LoadConfigFile(config_file, config);
    if (!st.ok()) {
      std::cerr << "berthd: " << st.error().message << "\n";
      return 2;
    }
  }
  auto* serve = app.add_subcommand("serve", "Run every plane and one local agent in this process");
  serve->add_option("--config", config_file, "Read settings from this file (key = value lines)");
  serve->add_option("--listen", config.listen, "Address of the API, registry and health endpoint")
      ->capture_default_str();
  serve->add_option("--data-dir", config.data_dir, "Where state, images and logs live")
      ->capture_default_str();
  serve->add_option("--region", config.region, "The AWS region berth answers as")
      ->capture_default_str();
  serve->add_option("--account-id", config.account_id, "The AWS account id in ARNs")
      ->capture_default_str();
  serve->add_option("--log-level", config.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  serve->add_option("--credentials-file", config.credentials_file,
                    "Extra access keys, in the AWS CLI's credentials file format");
  serve->add_option("--registry-host", config.registry_host,
                    "host:port clients use for the registry (default localhost:<port>)");
  serve->add_option("--registry-gc-interval", config.registry_gc_interval,
                    "Seconds between registry garbage collections")
      ->capture_default_str();
  serve->add_option("--registry-gc-grace", config.registry_gc_grace,
                    "Seconds an idle upload or unreferenced blob is kept")
      ->capture_default_str();
  serve->add_flag("!--no-agent", config.agent, "Do not run the local node agent");
  serve->add_option("--bridge", config.bridge, "Bridge for task networks")->capture_default_str();
  serve->add_option("--subnet", config.subnet, "Subnet for task IPs")->capture_default_str();
  serve->add_option("--allocation-factor", config.allocation_factor,
                    "Share of the node's cpu and memory offered to tasks")
      ->capture_default_str();
  serve->add_option("--runtime", config.runtime, "OCI runtime binary")->capture_default_str();
  serve->add_option("--cgroup-parent", config.cgroup_parent, "Cgroup that holds task cgroups")
      ->capture_default_str();
  serve->add_option("--metadata-port", config.metadata_port,
                    "Port of the task metadata endpoint on the bridge address")
      ->capture_default_str();
  serve->add_option("--init-binary", config.init_binary,
                    "Static init for initProcessEnabled (default: berth-init beside berthd)");
  serve->add_option("--shim-binary", config.shim_binary,
                    "Static waiter that parents each container's init (default: berth-shim "
                    "beside berthd)");
  serve->add_option("--registry-auth", config.registry_auth_file,
                    "Credentials for other registries: a docker-style config.json with "
                    "\"auths\" (read at every pull)");
  serve->add_option("--image-gc-interval", config.image_gc_interval,
                    "Seconds between collections of unused image layers on the node (0: never)")
      ->capture_default_str();
  serve->add_option("--image-gc-grace", config.image_gc_grace,
                    "Seconds an image layer no task uses any more is kept")
      ->capture_default_str();
  bool stop_tasks = config.stop_tasks_on_exit;
  serve->add_flag("--stop-tasks-on-exit", stop_tasks,
                  "Stop every task when berthd exits (default: leave them running; a "
                  "restarted berthd takes them back)");
  serve->add_option("--node-timeout", config.node_timeout_seconds,
                    "Seconds of agent silence after which a node is lost and its tasks stop")
      ->capture_default_str();
  serve->add_option("--lb-bind-address", config.lb_bind_address,
                    "Address load balancer listeners bind on")
      ->capture_default_str();
  serve->add_option("--lb-threads", config.lb_threads,
                    "Load balancer worker threads (0: one per CPU)")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed()) {
    if (stop_tasks) {
      config.stop_tasks_on_exit = true;
    }
    return Serve(config);
  }
  return 0;
}
