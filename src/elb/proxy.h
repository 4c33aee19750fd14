// SPDX-License-Identifier: Apache-2.0
// The load balancer's data plane: an asynchronous HTTP/1.1 reverse proxy.
//
// Each listener has one accepting socket on the control io_context; accepted
// connections are handed round-robin to worker threads, each running its own
// io_context, so a connection and everything it touches (its buffers, the
// worker's pool of kept-alive target connections) stay on one thread without
// locks. A connection serves requests in turn: it reads the request head,
// picks the action by the listener's rules (priority order, then the
// default action), picks a routable target of the chosen target group (round
// robin or least outstanding requests), and relays the request and the
// response, streaming both bodies. Answers of its own: 502 when the target
// fails, 503 when the group has no routable target, 504 when the target
// times out, 400/408/431 for bad or slow clients.
//
// Routing follows a ProxySnapshot, an immutable view the data plane builds
// after each configuration change and hands to every worker.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "elb/lb_config.h"
#include "elb/target_runtime.h"

namespace berth::elb {

struct GroupRuntime {
  std::string id;
  Algorithm algorithm = Algorithm::kRoundRobin;
  std::vector<std::shared_ptr<TargetRuntime>> targets;
  // Round-robin position; kept across snapshots so rotation continues.
  std::shared_ptr<std::atomic<uint64_t>> cursor;
};

struct RouteAction {
  ActionSpec::Kind kind = ActionSpec::Kind::kForward;
  std::vector<std::pair<const GroupRuntime*, int>> groups;  // with weights
  int total_weight = 0;
  // Fixed responses: the status line and headers (without Connection and
  // the blank line), and the body.
  std::string fixed_head;
  std::string fixed_body;
};

struct RouteRule {
  RuleSpec spec;
  RouteAction action;
};

struct ListenerRuntime {
  std::string id;
  uint16_t port = 0;
  int idle_timeout_seconds = 60;
  std::vector<RouteRule> rules;  // by priority
  RouteAction default_action;
  bool has_header_conditions = false;
};

/// What the proxy serves. Pointers inside point into the same snapshot.
struct ProxySnapshot {
  std::unordered_map<std::string, ListenerRuntime> listeners;  // by listener id
  std::unordered_map<std::string, GroupRuntime> groups;        // by target group id
};

/// Builds the route action for `spec` over the snapshot's groups.
RouteAction MakeRouteAction(const ActionSpec& spec, const ProxySnapshot& snapshot);

struct ProxyOptions {
  std::string bind_address = "127.0.0.1";
  int threads = 0;                    // worker threads; 0: one per CPU
  int header_timeout_seconds = 60;    // a request head must arrive within this once started
  int connect_timeout_seconds = 10;   // connecting to a target (504 after)
  int pooled_idle_seconds = 50;       // a kept-alive target connection is reused within this
  size_t max_pooled_per_target = 256; // idle target connections kept per worker and target
};

class Proxy {
 public:
  /// Accepting sockets live on `control`, which the caller runs.
  Proxy(ProxyOptions options, boost::asio::io_context& control);
  ~Proxy();

  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  /// Starts the worker threads.
  void Start();
  /// Closes the listeners and every connection, joins the workers.
  void Stop();

  /// Binds a listener's port on the bind address now (replacing the
  /// listener's earlier socket, if on another port). The socket accepts once
  /// a snapshot names the listener. Thread-safe.
  Status Bind(const std::string& listener_id, uint16_t port);
  /// Closes the listener's socket. Thread-safe.
  void Release(const std::string& listener_id);

  /// Serves `snapshot` from now on: workers route by it, listeners it names
  /// accept (binding those that have no socket yet), listeners it no longer
  /// names are closed. Thread-safe.
  void Update(std::shared_ptr<const ProxySnapshot> snapshot);

  /// The port a listener's socket is bound to, if any.
  std::optional<uint16_t> BoundPort(const std::string& listener_id) const;

  const ProxyOptions& options() const { return options_; }

  struct Impl;

 private:
  ProxyOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::elb
