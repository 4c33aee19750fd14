// SPDX-License-Identifier: Apache-2.0
// What one client connection of the proxy does: read a request, route it,
// relay it to a target and the answer back (see elb/proxy.h).
#include <algorithm>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "elb/proxy_internal.h"
#include "elb/response_head.h"

namespace berth::elb::proxy_internal {

using namespace std::string_view_literals;

Task<void> Worker::Tick() {
  Timer timer(*io);
  for (;;) {
    timer.expires_after(kTick);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUse, ec));
    if (ec) {
      co_return;
    }
    auto now = Clock::now();
    for (Session* s = sessions; s != nullptr; s = s->next) {
      if (s->deadline <= now) {
        s->Expire();
      }
    }
    // Kept-alive target connections: drop stale ones and those of targets
    // that no longer take requests (draining, unhealthy, removed).
    auto max_idle = std::chrono::seconds(impl.options.pooled_idle_seconds);
    for (auto it = pools.begin(); it != pools.end();) {
      auto& idle = it->second.idle;
      bool routable = it->second.target->routable.load(std::memory_order_relaxed);
      idle.erase(std::remove_if(idle.begin(), idle.end(),
                                [&](const Pooled& p) {
                                  return !routable || now - p.idle_since > max_idle;
                                }),
                 idle.end());
      if (idle.empty()) {
        it = pools.erase(it);
      } else {
        ++it;
      }
    }
  }
}

const std::string& Session::ClientIp() {
  if (client_ip_.empty()) {
    error_code ec;
    auto ep = client.remote_endpoint(ec);
    client_ip_ = ec ? "unknown" : ep.address().to_string();
  }
  return client_ip_;
}

const ListenerRuntime* Session::CurrentListener() {
  if (snapshot_ != worker.snapshot || listener_ == nullptr) {
    snapshot_ = worker.snapshot;
    listener_ = nullptr;
    if (snapshot_ != nullptr) {
      auto it = snapshot_->listeners.find(listener_id);
      if (it != snapshot_->listeners.end()) {
        listener_ = &it->second;
      }
    }
  }
  return listener_;
}

namespace {

std::string_view HeaderOf(const void* context, std::string_view name) {
  const auto& fields = *static_cast<const std::vector<Field>*>(context);
  for (const auto& f : fields) {
    if (IEquals(f.name_string, name)) {
      return Trim(f.value);
    }
  }
  return {};
}

}  // namespace

const RouteAction& Session::Route(const ListenerRuntime& listener, const RequestParser& req) {
  if (listener.rules.empty()) {
    return listener.default_action;
  }
  RequestFacts facts;
  facts.method = req.method_string;
  std::string_view target = req.target;
  facts.path = target.substr(0, target.find('?'));
  for (const auto& f : fields_) {
    if (f.name == bhttp::field::host) {
      facts.host = HostOnly(Trim(f.value));
      break;
    }
  }
  facts.header = &HeaderOf;
  facts.header_context = &fields_;
  for (const auto& rule : listener.rules) {
    if (RuleMatches(rule.spec, facts)) {
      return rule.action;
    }
  }
  return listener.default_action;
}

// LIMITATION: with no routable target the answer is 503. AWS instead "fails
// open" and spreads requests over all targets when every one is unhealthy.
TargetRuntime* Session::PickTarget(const RouteAction& action, bool& counted) {
  if (action.total_weight <= 0) {
    return nullptr;
  }
  const GroupRuntime* group = action.groups.front().first;
  if (action.groups.size() > 1) {
    int r = static_cast<int>(NextRandom() % static_cast<uint64_t>(action.total_weight));
    for (const auto& [g, weight] : action.groups) {
      if (r < weight) {
        group = g;
        break;
      }
      r -= weight;
    }
  }
  counted = group->algorithm == Algorithm::kLeastOutstandingRequests;
  const auto& targets = group->targets;
  size_t n = targets.size();
  if (n == 0) {
    return nullptr;
  }
  uint64_t start = group->cursor->fetch_add(1, std::memory_order_relaxed);
  TargetRuntime* best = nullptr;
  for (size_t i = 0; i < n; ++i) {
    TargetRuntime* t = targets[(start + i) % n].get();
    if (!t->routable.load(std::memory_order_relaxed)) {
      continue;
    }
    if (group->algorithm == Algorithm::kRoundRobin) {
      return t;
    }
    if (best == nullptr || t->outstanding.load(std::memory_order_relaxed) <
                               best->outstanding.load(std::memory_order_relaxed)) {
      best = t;
    }
  }
  return best;
}

bool Session::BuildUpstreamHead(const RequestParser& req, const ListenerRuntime& listener,
                                const TargetRuntime& target) {
  // The client's head can go as it came, with our fields added at its end,
  // when it is HTTP/1.1 with a Host and nothing for us to drop or merge.
  std::string_view prior_xff;
  bool has_host = false;
  bool as_is = req.version == 11;
  for (const auto& f : fields_) {
    if (IsHopByHop(f.name) || f.name == bhttp::field::expect) {
      as_is = false;
    } else if (f.name == bhttp::field::host) {
      has_host = true;
    } else if (f.name == bhttp::field::unknown && IsForwardedField(f.name_string)) {
      as_is = false;
      if (IEquals(f.name_string, "x-forwarded-for")) {
        prior_xff = Trim(f.value);
      }
    }
  }
  as_is = as_is && has_host;

  head_.clear();
  if (!as_is) {
    head_.append(req.method_string);
    head_ += ' ';
    head_.append(req.target);
    head_ += " HTTP/1.1\r\n"sv;
    for (const auto& f : fields_) {
      if (IsHopByHop(f.name) || f.name == bhttp::field::expect ||
          (f.name == bhttp::field::unknown && IsForwardedField(f.name_string))) {
        continue;
      }
      head_.append(f.name_string);
      head_ += ": "sv;
      head_.append(f.value);
      head_ += "\r\n"sv;
    }
    if (!has_host) {
      // HTTP/1.0 clients may omit Host; HTTP/1.1 targets need one.
      head_ += "Host: "sv;
      head_ += target.ip;
      head_ += ':';
      head_ += std::to_string(target.port);
      head_ += "\r\n"sv;
    }
  }
  head_ += "X-Forwarded-For: "sv;
  if (!prior_xff.empty()) {
    head_.append(prior_xff);
    head_ += ", "sv;
  }
  if (forwarded_tail_port_ != listener.port) {
    forwarded_tail_ = ClientIp() + "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: " +
                      std::to_string(listener.port) + "\r\n\r\n";
    forwarded_tail_port_ = listener.port;
  }
  head_ += forwarded_tail_;
  return as_is;
}

Task<bool> Session::ReadRequestHead(RequestParser& req, size_t& head_size,
                                         int idle_seconds) {
  bool started = !in_.empty();
  Arm(started ? worker.impl.options.header_timeout_seconds : idle_seconds);
  for (;;) {
    if (!in_.empty()) {
      error_code ec;
      size_t n = req.put(asio::buffer(in_.data(), in_.size()), ec);
      if (!ec) {
        head_size = n;
        Disarm();
        co_return true;
      }
      if (ec != bhttp::error::need_more) {
        std::string body = OwnAnswerBody(400);
        std::string head = OwnAnswerHead(400, body.size(), "text/html") + "Connection: close\r\n\r\n";
        co_await WriteClient(head, body.data(), body.size());
        co_return false;
      }
    }
    auto space = in_.Prepare(kHeaderLimit);
    if (space.size() == 0) {
      std::string body = OwnAnswerBody(431);
      std::string head = OwnAnswerHead(431, body.size(), "text/html") + "Connection: close\r\n\r\n";
      co_await WriteClient(head, body.data(), body.size());
      co_return false;
    }
    error_code ec;
    size_t got = co_await client.async_read_some(space, asio::redirect_error(kUse, ec));
    if (ec) {
      if (timed_out && started) {
        std::string body = OwnAnswerBody(408);
        std::string head =
            OwnAnswerHead(408, body.size(), "text/html") + "Connection: close\r\n\r\n";
        co_await WriteClient(head, body.data(), body.size());
      }
      co_return false;
    }
    in_.Commit(got);
    if (!started) {
      started = true;
      Arm(worker.impl.options.header_timeout_seconds);
    }
  }
}

Task<bool> Session::WriteClient(const std::string& a, const char* b, size_t b_size) {
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(a), asio::buffer(b, b_size)};
  error_code ec;
  co_await asio::async_write(client, buffers, asio::redirect_error(kUse, ec));
  co_return !ec;
}

Task<bool> Session::Answer(RequestParser& req, const std::string& head,
                                const std::string& body, bool& keep_alive) {
  // Step over whatever of the request body already arrived; a body still on
  // its way means the connection cannot carry another request.
  if (!req.is_done() && !in_.empty()) {
    req.eager(true);
    error_code ec;
    size_t n = req.put(asio::buffer(in_.data(), in_.size()), ec);
    in_.Consume(n);
  }
  keep_alive = keep_alive && req.is_done();
  std::string full = head;
  if (!keep_alive) {
    full += "Connection: close\r\n";
  } else if (req.version == 10) {
    full += "Connection: keep-alive\r\n";
  }
  full += "\r\n";
  bool head_only = req.method == bhttp::verb::head;
  co_return co_await WriteClient(full, head_only ? nullptr : body.data(),
                                 head_only ? 0 : body.size());
}

bool Session::TakePooled(TargetRuntime& target) {
  auto pool = worker.pools.find(target.id);
  if (pool == worker.pools.end() || pool->second.idle.empty()) {
    return false;
  }
  upstream = std::move(pool->second.idle.back().socket);
  pool->second.idle.pop_back();
  return true;
}

Task<bool> Session::Connect(TargetRuntime& target, int& failure_status) {
  upstream = Socket(*worker.io);
  Arm(worker.impl.options.connect_timeout_seconds);
  error_code ec;
  co_await upstream.async_connect(target.endpoint, asio::redirect_error(kUse, ec));
  Disarm();
  if (ec) {
    failure_status = timed_out ? 504 : 502;
    spdlog::debug("event=lb_target_connect_failed target={}:{} error=\"{}\"", target.ip,
                  target.port, ec.message());
    error_code ignored;
    upstream.close(ignored);
    co_return false;
  }
  upstream.set_option(tcp::no_delay(true), ec);
  co_return true;
}

void Session::ReleaseUpstream(TargetRuntime& target, bool reusable) {
  error_code ignored;
  if (!reusable || !upstream.is_open() || !target.routable.load(std::memory_order_relaxed)) {
    upstream.close(ignored);
    return;
  }
  auto& pool = worker.pools[target.id];
  if (pool.target == nullptr) {
    for (const auto& [id, group] : snapshot_->groups) {
      for (const auto& t : group.targets) {
        if (t.get() == &target) {
          pool.target = t;
        }
      }
    }
  }
  if (pool.target == nullptr || pool.idle.size() >= worker.impl.options.max_pooled_per_target) {
    upstream.close(ignored);
    return;
  }
  pool.idle.push_back(Worker::Pooled{std::move(upstream), Clock::now()});
  upstream = Socket(*worker.io);
}

Task<Session::Relay> Session::RelayResponse(const RequestParser& req, TargetRuntime& target,
                                             int idle_seconds, bool retryable, bool& keep_alive,
                                             int& failure_status) {
  up_in_.Clear();
  Arm(idle_seconds);
  ResponseHead head;
  for (;;) {
    if (!up_in_.empty()) {
      HeadParse parsed = ParseResponseHead({up_in_.data(), up_in_.size()}, kHeaderLimit, head);
      if (parsed == HeadParse::kDone) {
        break;
      }
      if (parsed == HeadParse::kUnsupported) {
        co_return co_await RelayParsed(req, target, idle_seconds, keep_alive, failure_status);
      }
      if (parsed == HeadParse::kInvalid) {
        spdlog::debug("event=lb_target_response_invalid target={}:{}", target.ip, target.port);
        failure_status = 502;
        co_return Relay::kFailed;
      }
    }
    auto space = up_in_.Prepare(kHeaderLimit);
    error_code ec;
    size_t got = co_await upstream.async_read_some(space, asio::redirect_error(kUse, ec));
    if (ec) {
      failure_status = timed_out ? 504 : 502;
      bool retry = up_in_.empty() && retryable && !timed_out;
      spdlog::debug("event=lb_target_read_failed target={}:{} error=\"{}\" retry={}", target.ip,
                    target.port, ec.message(), retry);
      co_return retry ? Relay::kRetry : Relay::kFailed;
    }
    up_in_.Commit(got);
  }

  // A head with a known body length. It goes to the client as it came when
  // nothing in it concerns only the target's connection; otherwise without
  // the hop-by-hop fields and with the client connection's own.
  bool bodiless = req.method == bhttp::verb::head || head.status == 204 || head.status == 304;
  uint64_t remaining = bodiless ? 0 : head.content_length;
  bool as_is = head.passes_as_is && head.version == 11 && keep_alive && req.version == 11;
  if (!as_is) {
    resp_head_.clear();
    AppendEndToEnd({up_in_.data(), head.size}, resp_head_);
    if (!keep_alive) {
      resp_head_ += "Connection: close\r\n"sv;
    } else if (req.version == 10 || head.version == 10) {
      resp_head_ += "Connection: keep-alive\r\n"sv;
    }
    resp_head_ += "\r\n"sv;
  }
  size_t body_now =
      static_cast<size_t>(std::min<uint64_t>(remaining, up_in_.size() - head.size));
  if (body_now == remaining) {
    TargetAnswered();
  }
  asio::const_buffer body(up_in_.data() + head.size, body_now);
  std::array<asio::const_buffer, 2> first =
      as_is ? std::array<asio::const_buffer, 2>{asio::buffer(up_in_.data(), head.size + body_now),
                                                asio::const_buffer()}
            : std::array<asio::const_buffer, 2>{asio::buffer(resp_head_), body};
  Arm(idle_seconds);
  error_code ec;
  co_await asio::async_write(client, first, asio::redirect_error(kUse, ec));
  if (ec) {
    keep_alive = false;
    failure_status = 0;
    co_return Relay::kFailed;
  }
  up_in_.Consume(head.size + body_now);
  remaining -= body_now;
  while (remaining > 0) {
    Arm(idle_seconds);
    auto space = up_in_.Prepare(kReadChunk);
    size_t got = co_await upstream.async_read_some(space, asio::redirect_error(kUse, ec));
    if (ec) {
      keep_alive = false;  // a truncated answer must not pass for a whole one
      failure_status = 0;
      co_return Relay::kFailed;
    }
    up_in_.Commit(got);
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, up_in_.size()));
    if (n == remaining) {
      TargetAnswered();
    }
    co_await asio::async_write(client, asio::buffer(up_in_.data(), n),
                               asio::redirect_error(kUse, ec));
    if (ec) {
      keep_alive = false;
      failure_status = 0;
      co_return Relay::kFailed;
    }
    up_in_.Consume(n);
    remaining -= n;
  }
  Disarm();
  bool target_keeps = head.version == 11 ? !head.connection_close : head.connection_keep_alive;
  ReleaseUpstream(target, target_keeps && up_in_.empty());
  co_return Relay::kDone;
}

Task<Session::Relay> Session::RelayParsed(const RequestParser& req, TargetRuntime& target,
                                               int idle_seconds, bool& keep_alive,
                                               int& failure_status) {
  size_t head_size = 0;
  std::optional<ResponseParser> resp;
  for (;;) {
    // Read one response head; interim (1xx) answers go to the client as they are.
    resp.emplace(up_fields_);
    if (req.method == bhttp::verb::head) {
      resp->skip(true);
    }
    for (;;) {
      if (!up_in_.empty()) {
        error_code ec;
        size_t n = resp->put(asio::buffer(up_in_.data(), up_in_.size()), ec);
        if (!ec) {
          head_size = n;
          break;
        }
        if (ec != bhttp::error::need_more) {
          spdlog::debug("event=lb_target_response_invalid target={}:{} error=\"{}\"", target.ip,
                        target.port, ec.message());
          failure_status = 502;
          co_return Relay::kFailed;
        }
      }
      auto space = up_in_.Prepare(kHeaderLimit);
      if (space.size() == 0) {
        failure_status = 502;
        co_return Relay::kFailed;
      }
      error_code ec;
      size_t got = co_await upstream.async_read_some(space, asio::redirect_error(kUse, ec));
      if (ec) {
        if (timed_out) {
          failure_status = 504;
          co_return Relay::kFailed;
        }
        failure_status = 502;
        spdlog::debug("event=lb_target_read_failed target={}:{} error=\"{}\"", target.ip,
                      target.port, ec.message());
        co_return Relay::kFailed;
      }
      up_in_.Commit(got);
    }
    if (resp->status / 100 == 1 && resp->status != 101) {
      std::string interim(up_in_.data(), head_size);
      up_in_.Consume(head_size);
      if (!co_await WriteClient(interim)) {
        failure_status = 0;
        co_return Relay::kFailed;
      }
      continue;
    }
    break;
  }

  // The final response head, rewritten for the client's connection.
  bool chunked = resp->chunked();
  bool dechunk = chunked && req.version == 10;
  bool until_eof = resp->need_eof() && !resp->is_done();
  bool close_client = !keep_alive || until_eof || dechunk;
  resp_head_.clear();
  resp_head_ += "HTTP/1.1 ";
  resp_head_ += std::to_string(resp->status);
  resp_head_ += ' ';
  resp_head_.append(resp->reason);
  resp_head_ += "\r\n";
  for (const auto& f : up_fields_) {
    if (IsHopByHop(f.name) || (dechunk && f.name == bhttp::field::transfer_encoding)) {
      continue;
    }
    resp_head_.append(f.name_string);
    resp_head_ += ": ";
    resp_head_.append(f.value);
    resp_head_ += "\r\n";
  }
  if (close_client) {
    resp_head_ += "Connection: close\r\n";
  } else if (req.version == 10) {
    resp_head_ += "Connection: keep-alive\r\n";
  }
  resp_head_ += "\r\n";
  up_in_.Consume(head_size);
  keep_alive = !close_client;

  // The body, relayed as it arrives.
  resp->eager(true);
  dechunked_.clear();
  resp->dechunked = dechunk ? &dechunked_ : nullptr;
  bool first = true;
  while (first || !resp->is_done()) {
    if (!first) {
      Arm(idle_seconds);
      auto space = up_in_.Prepare(kReadChunk);
      if (space.size() == 0) {
        keep_alive = false;  // a chunk header that never ends
        failure_status = 0;
        co_return Relay::kFailed;
      }
      error_code ec;
      size_t got =
          co_await upstream.async_read_some(space, asio::redirect_error(kUse, ec));
      if (ec == asio::error::eof && resp->need_eof()) {
        resp->put_eof(ec);
        Disarm();
        break;
      }
      if (ec) {
        // The target broke off mid-body; the client must not take the
        // truncated answer for a whole one.
        keep_alive = false;
        failure_status = 0;
        co_return Relay::kFailed;
      }
      up_in_.Commit(got);
    }
    size_t n = 0;
    if (!up_in_.empty() && !resp->is_done()) {
      error_code ec;
      n = resp->put(asio::buffer(up_in_.data(), up_in_.size()), ec);
      if (ec && ec != bhttp::error::need_more) {
        keep_alive = false;
        failure_status = 0;
        co_return Relay::kFailed;
      }
    }
    if (resp->is_done()) {
      TargetAnswered();
    }
    const char* raw = dechunk ? dechunked_.data() : up_in_.data();
    size_t raw_size = dechunk ? dechunked_.size() : n;
    if (first || raw_size > 0) {
      Arm(idle_seconds);
      bool written = first ? co_await WriteClient(resp_head_, raw, raw_size)
                           : co_await WriteClient(kNothing, raw, raw_size);
      Disarm();
      if (!written) {
        keep_alive = false;
        failure_status = 0;
        co_return Relay::kFailed;
      }
    }
    up_in_.Consume(n);
    dechunked_.clear();
    first = false;
  }
  ReleaseUpstream(target, resp->keep_alive() && up_in_.empty());
  co_return Relay::kDone;
}

Task<Session::Send> Session::SendRequest(RequestParser& req, const Outgoing& out, size_t& held,
                                         int idle_seconds, int& failure_status) {
  // The client's head as it came (without its blank line) and our fields
  // after it, or the rebuilt head; then the body bytes already read.
  Arm(idle_seconds);
  asio::const_buffer body(in_.data() + out.head_size, out.first_body);
  std::array<asio::const_buffer, 3> first =
      out.raw_head ? std::array<asio::const_buffer, 3>{asio::buffer(in_.data(), out.head_size - 2),
                                                       asio::buffer(head_), body}
                   : std::array<asio::const_buffer, 3>{asio::buffer(head_), body,
                                                       asio::const_buffer()};
  error_code ec;
  co_await asio::async_write(upstream, first, asio::redirect_error(kUse, ec));
  Disarm();
  if (ec) {
    failure_status = timed_out ? 504 : 502;
    co_return Send::kTargetFailed;
  }
  if (req.is_done()) {
    co_return Send::kSent;  // the bytes stay held for a retry
  }

  // The rest of the body, streamed as it arrives.
  in_.Consume(held);
  held = 0;
  while (!req.is_done()) {
    Arm(idle_seconds);
    auto space = in_.Prepare(kReadChunk);
    if (space.size() == 0) {
      co_return Send::kClientFailed;  // a chunk header that never ends
    }
    size_t got = co_await client.async_read_some(space, asio::redirect_error(kUse, ec));
    if (ec) {
      co_return Send::kClientFailed;
    }
    in_.Commit(got);
    size_t n = req.put(asio::buffer(in_.data(), in_.size()), ec);
    if (ec && ec != bhttp::error::need_more) {
      co_return Send::kClientFailed;
    }
    co_await asio::async_write(upstream, asio::buffer(in_.data(), n),
                               asio::redirect_error(kUse, ec));
    if (ec) {
      failure_status = timed_out ? 504 : 502;
      co_return Send::kTargetFailedMidBody;
    }
    in_.Consume(n);
  }
  Disarm();
  co_return Send::kSent;
}

Task<bool> Session::Forward(RequestParser& req, size_t head_size,
                            const ListenerRuntime& listener, const RouteAction& action,
                            bool& keep_alive) {
  bool counted = false;
  TargetRuntime* target = PickTarget(action, counted);
  if (target == nullptr) {
    in_.Consume(head_size);
    static const std::string kBody = OwnAnswerBody(503);
    static const std::string kHead = OwnAnswerHead(503, kBody.size(), "text/html");
    co_return co_await Answer(req, kHead, kBody, keep_alive);
  }
  // Only least-outstanding-requests groups count requests in flight.
  OutstandingGuard guard(*this, counted ? target : nullptr);

  Outgoing out;
  out.head_size = head_size;
  bool expects_continue = ExpectsContinue();
  out.raw_head = BuildUpstreamHead(req, listener, *target);
  // The request's bytes stay at the front of in_ (`held`) while they may be
  // sent again: when they are the whole request, a failure on a reused
  // target connection is retried on a fresh one.
  req.eager(true);
  if (!req.is_done() && in_.size() > head_size) {
    error_code ec;
    out.first_body = req.put(asio::buffer(in_.data() + head_size, in_.size() - head_size), ec);
    if (ec && ec != bhttp::error::need_more) {
      keep_alive = false;
      co_return false;
    }
  }
  size_t held = head_size + out.first_body;
  bool complete = req.is_done();
  if (expects_continue && !complete) {
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!co_await WriteClient(kContinue)) {
      co_return false;
    }
  }

  int failure_status = 502;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = attempt == 0 && TakePooled(*target);
    if (!reused && !co_await Connect(*target, failure_status)) {
      break;
    }
    bool retryable = reused && complete && attempt == 0;
    Send sent = co_await SendRequest(req, out, held, listener.idle_timeout_seconds,
                                     failure_status);
    Relay relay = Relay::kFailed;
    if (sent == Send::kSent) {
      relay = co_await RelayResponse(req, *target, listener.idle_timeout_seconds, retryable,
                                     keep_alive, failure_status);
      if (relay == Relay::kDone) {
        in_.Consume(held);
        co_return true;
      }
    }
    error_code ignored;
    upstream.close(ignored);
    if (sent == Send::kClientFailed) {
      keep_alive = false;
      co_return false;
    }
    if (sent == Send::kTargetFailedMidBody) {
      keep_alive = false;  // the rest of the request body is still on its way
      break;
    }
    if ((sent == Send::kTargetFailed && retryable) || relay == Relay::kRetry) {
      continue;  // the target had closed the kept-alive connection: try a fresh one
    }
    if (failure_status == 0) {
      // Part of the answer went out already; only closing can tell the client.
      keep_alive = false;
      co_return false;
    }
    break;
  }
  in_.Consume(held);
  std::string body = OwnAnswerBody(failure_status);
  std::string head = OwnAnswerHead(failure_status, body.size(), "text/html");
  co_return co_await Answer(req, head, body, keep_alive);
}

bool Session::ExpectsContinue() const {
  for (const auto& f : fields_) {
    if (f.name == bhttp::field::expect && IEquals(Trim(f.value), "100-continue")) {
      return true;
    }
  }
  return false;
}

Task<void> Session::Run() {
  error_code ec;
  client.set_option(tcp::no_delay(true), ec);
  for (;;) {
    const ListenerRuntime* listener = CurrentListener();
    if (listener == nullptr) {
      break;  // the listener was deleted
    }
    RequestParser req(fields_);
    size_t head_size = 0;
    if (!co_await ReadRequestHead(req, head_size, listener->idle_timeout_seconds)) {
      break;
    }
    listener = CurrentListener();
    if (listener == nullptr) {
      break;
    }
    bool keep_alive = req.keep_alive();
    const RouteAction& action = Route(*listener, req);
    bool usable = false;
    if (action.kind == ActionSpec::Kind::kFixedResponse) {
      in_.Consume(head_size);
      usable = co_await Answer(req, action.fixed_head, action.fixed_body, keep_alive);
    } else {
      usable = co_await Forward(req, head_size, *listener, action, keep_alive);
    }
    if (!usable || !keep_alive) {
      break;
    }
  }
  Disarm();
  error_code ignored;
  client.shutdown(Socket::shutdown_send, ignored);
  client.close(ignored);
  upstream.close(ignored);
}

}  // namespace berth::elb::proxy_internal
