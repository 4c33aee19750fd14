// SPDX-License-Identifier: Apache-2.0
// berth: the command-line client for what the AWS CLI lacks (pushing images
// from files, a task overview, logs, live stats and the environment setup).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "cli/aws_client.h"
#include "cli/commands.h"

namespace berth::cli {

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

constexpr const char* kDescription =
    "berth: the command-line client of berth, serverless containers on your own machines.\n"
    "\n"
    "Talks to berthd at --endpoint-url with the keys berthd wrote into its data dir\n"
    "(or the AWS_* variables and AWS_SHARED_CREDENTIALS_FILE). For everything else,\n"
    "use the AWS CLI or an AWS SDK; `berth env` prints the settings they need.\n";

// "berth image push" for the deepest subcommand the parser reached.
std::string CommandPath(CLI::App& app) {
  std::string path = app.get_name();
  CLI::App* cur = &app;
  while (true) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) {
      return path;
    }
    cur = subs.front();
    path += " " + cur->get_name();
  }
}

void AddGlobalFlags(CLI::App& app, GlobalFlags& g) {
  app.add_option("--endpoint-url", g.endpoint_url,
                 "berthd's URL (default: $BERTH_ENDPOINT, else http://127.0.0.1:4566)")
      ->type_name("URL");
  app.add_option("--data-dir", g.data_dir,
                 "berthd's data dir, with its keys (default: $BERTH_DATA_DIR, else "
                 "/var/lib/berth)")
      ->type_name("DIR");
  app.add_option("--region", g.region, "region to sign for (default: $AWS_REGION, else berthd's)")
      ->type_name("REGION");
  app.add_option("--profile", g.profile, "profile of the credentials file to use")
      ->type_name("NAME");
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{kDescription, "berth"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("berth ") + BERTH_VERSION);
  GlobalFlags g;
  AddGlobalFlags(app, g);

  // berth image push
  ImagePushOptions push_opts;
  CLI::App* image = app.add_subcommand("image", "Manage images in berth's registry");
  image->require_subcommand(1);
  image->fallthrough();
  CLI::App* push = image->add_subcommand(
      "push", "Push an OCI image layout or a docker-archive into a repository");
  push->footer(
      "\nThe repository must exist (aws ecr create-repository). Blobs already there are\n"
      "skipped; the rest go up in chunks that resume where they stopped after a failure.\n"
      "A docker-archive is converted to an OCI manifest with gzip layers. A layout or\n"
      "archive holding several images takes a ':<ref>' suffix to pick one. Progress goes\n"
      "to stderr; the manifest digest is printed on stdout.");
  push->fallthrough();
  push->add_option("source", push_opts.source, "OCI layout dir or docker-archive .tar[:ref]")
      ->required()
      ->type_name("SOURCE");
  push->add_option("target", push_opts.target, "repository and tag, e.g. my-ecr-repo:latest")
      ->required()
      ->type_name("REPO[:TAG]");
  push->add_option("--chunk-size", push_opts.chunk_size, "size of each upload chunk")
      ->default_val("8MiB")
      ->type_name("SIZE");
  push->add_flag("-q,--quiet", push_opts.quiet, "print only the digest");

  // berth ps
  PsOptions ps_opts;
  CLI::App* ps = app.add_subcommand("ps", "List tasks across clusters (newest first)");
  ps->fallthrough();
  ps->add_option("--cluster", ps_opts.cluster, "only this cluster")->type_name("CLUSTER");
  ps->add_flag("-a,--all", ps_opts.all, "include STOPPED tasks");
  ps->add_flag("-q,--quiet", ps_opts.quiet, "print task ids only");

  // berth logs
  LogsOptions logs_opts;
  CLI::App* logs = app.add_subcommand("logs", "Print a task's container output");
  logs->footer(
      "\nThe output comes from CloudWatch Logs, through the task definition's awslogs\n"
      "configuration. With several logged containers, each line starts with the\n"
      "container's name.");
  logs->fallthrough();
  logs->add_option("task", logs_opts.task, "task id, unique id prefix or task ARN")
      ->required()
      ->type_name("TASK");
  logs->add_flag("-f,--follow", logs_opts.follow,
                 "keep printing new lines until interrupted or the task has stopped");
  logs->add_option("--container", logs_opts.container, "only this container")->type_name("NAME");
  logs->add_option("--since", logs_opts.since, "only lines from this long ago on, e.g. 10m")
      ->type_name("DURATION");
  logs->add_flag("-t,--timestamps", logs_opts.timestamps, "prefix each line with its time");
  logs->add_option("--cluster", logs_opts.cluster, "look for the task in this cluster only")
      ->type_name("CLUSTER");

  // berth stats / berth top
  StatsOptions stats_opts;
  CLI::App* stats = app.add_subcommand("stats", "Show running tasks' cpu, memory and pids");
  stats->footer(
      "\nThe numbers come from the tasks' cgroups on berthd's node; CPU % is the share of\n"
      "one core over the interval. On a terminal the table refreshes until interrupted;\n"
      "otherwise (or with --no-stream) it is printed once.");
  stats->alias("top");
  stats->fallthrough();
  stats->add_option("tasks", stats_opts.tasks, "task ids or ARNs (default: every running task)")
      ->type_name("TASK");
  stats->add_option("--cluster", stats_opts.cluster, "only this cluster")->type_name("CLUSTER");
  stats->add_flag("--no-stream", stats_opts.no_stream, "print one table and exit");
  stats->add_option("--interval", stats_opts.interval, "seconds between samples")
      ->default_val(1.0)
      ->type_name("SECONDS");

  // berth env
  EnvOptions env_opts;
  CLI::App* env =
      app.add_subcommand("env", "Print the shell settings that point AWS tools at berth");
  env->footer(
      "\nPrints export lines for the endpoint, the credentials and config files berthd\n"
      "wrote, and the region. To use them: eval \"$(berth env)\"");
  env->fallthrough();
  env->add_flag("--unset", env_opts.unset, "print unset lines instead");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      return app.exit(e);  // --help, --version
    }
    std::string where = CommandPath(app);
    std::fprintf(stderr, "berth: %s (see '%s --help')\n", e.what(), where.c_str());
    return kExitUsage;
  }

  Status status;
  if (push->parsed()) {
    status = RunImagePush(g, push_opts);
  } else if (ps->parsed()) {
    status = RunPs(g, ps_opts);
  } else if (logs->parsed()) {
    status = RunLogs(g, logs_opts);
  } else if (stats->parsed()) {
    status = RunStats(g, stats_opts);
  } else if (env->parsed()) {
    status = RunEnv(g, env_opts);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "berth: %s\n", DescribeError(status.error()).c_str());
    return kExitError;
  }
  return 0;
}

}  // namespace berth::cli

int main(int argc, char** argv) {
  try {
    return berth::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "berth: internal error: %s\n", e.what());
    return 1;
  }
}
