// SPDX-License-Identifier: Apache-2.0
#include "elb/proxy.h"

#include <algorithm>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/beast/http/status.hpp>
#include <spdlog/spdlog.h>

#include "elb/proxy_internal.h"

namespace berth::elb {

namespace proxy_internal {

bool IsHopByHop(bhttp::field f) {
  switch (f) {
    case bhttp::field::connection:
    case bhttp::field::keep_alive:
    case bhttp::field::proxy_connection:
    case bhttp::field::te:
    case bhttp::field::trailer:
    case bhttp::field::upgrade:
      return true;
    default:
      return false;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) {
      return false;
    }
  }
  return true;
}

// X-Forwarded-For, -Proto and -Port: the load balancer sets them.
bool IsForwardedField(std::string_view name) {
  return name.size() >= 15 && name.size() <= 17 && IEquals(name.substr(0, 12), "x-forwarded-") &&
         (IEquals(name.substr(12), "for") || IEquals(name.substr(12), "proto") ||
          IEquals(name.substr(12), "port"));
}

// The host of a Host header value, without the port.
std::string_view HostOnly(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

// An answer of the load balancer's own, in the HTML AWS load balancers use.
std::string OwnAnswerHead(int status, size_t body_size, const char* content_type) {
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  std::string head = "HTTP/1.1 " + std::to_string(status) + " ";
  head.append(reason.data(), reason.size());
  head += "\r\nServer: berth-elb\r\nContent-Type: ";
  head += content_type;
  head += "\r\nContent-Length: " + std::to_string(body_size) + "\r\n";
  return head;
}

std::string OwnAnswerBody(int status) {
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  std::string title = std::to_string(status) + " " + std::string(reason);
  return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
         "</h1></center>\r\n</body>\r\n</html>\r\n";
}

uint64_t NextRandom() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  return rng();
}

}  // namespace proxy_internal

using proxy_internal::Clock;
using proxy_internal::ListenerSocket;
using proxy_internal::Session;
using proxy_internal::Socket;
using proxy_internal::Task;
using proxy_internal::Worker;
using proxy_internal::error_code;
using proxy_internal::kPendingBindGrace;
using proxy_internal::kUse;
using proxy_internal::OwnAnswerHead;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

RouteAction MakeRouteAction(const ActionSpec& spec, const ProxySnapshot& snapshot) {
  RouteAction action;
  action.kind = spec.kind;
  if (spec.kind == ActionSpec::Kind::kFixedResponse) {
    action.fixed_body = spec.body;
    action.fixed_head = OwnAnswerHead(
        spec.status, spec.body.size(),
        spec.content_type.empty() ? "text/plain; charset=utf-8" : spec.content_type.c_str());
    return action;
  }
  for (const auto& [id, weight] : spec.groups) {
    auto it = snapshot.groups.find(id);
    if (it != snapshot.groups.end() && weight > 0) {
      action.groups.emplace_back(&it->second, weight);
      action.total_weight += weight;
    }
  }
  return action;
}

// ---------------------------------------------------------------------------
// Listeners

Result<std::shared_ptr<ListenerSocket>> Proxy::Impl::Open(const std::string& listener_id,
                                                         uint16_t port) {
  error_code ec;
  auto address = asio::ip::make_address(options.bind_address, ec);
  if (ec) {
    return ClientError("InvalidConfigurationRequest",
                       "Invalid load balancer bind address " + options.bind_address);
  }
  auto ls = std::make_shared<ListenerSocket>(control, listener_id, port);
  tcp::endpoint ep(address, port);
  ls->acceptor.open(ep.protocol(), ec);
  if (!ec) {
    ls->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    ls->acceptor.bind(ep, ec);
  }
  if (!ec) {
    ls->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return ClientError("InvalidConfigurationRequest",
                       "Port " + std::to_string(port) + " cannot be bound on " +
                           options.bind_address + ": " + ec.message());
  }
  return ls;
}

void Proxy::Impl::StartAccepting(const std::shared_ptr<ListenerSocket>& ls) {
  if (workers.empty() || ls->accepting.exchange(true)) {
    return;
  }
  asio::co_spawn(control, AcceptLoop(ls), asio::detached);
}

void Proxy::Impl::Close(std::shared_ptr<ListenerSocket> ls) {
  asio::post(control, [ls] {
    error_code ignored;
    ls->acceptor.close(ignored);
  });
}

awaitable<void> Proxy::Impl::AcceptLoop(std::shared_ptr<ListenerSocket> ls) {
  asio::steady_timer backoff(control);
  for (;;) {
    Worker& worker = PickWorker();
    Socket socket(*worker.io);
    error_code ec;
    co_await ls->acceptor.async_accept(socket, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !ls->acceptor.is_open()) {
        co_return;
      }
      // Out of file descriptors and the like: pause instead of spinning.
      spdlog::warn("event=lb_accept_failed listener={} error=\"{}\"", ls->listener_id,
                   ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    std::string id = ls->listener_id;
    asio::co_spawn(
        *worker.io,
        [&worker, s = std::move(socket), id]() mutable -> Task<void> {
          Session session(worker, std::move(s), std::move(id));
          co_await session.Run();
        },
        asio::detached);
  }
}

// ---------------------------------------------------------------------------
// Proxy

Proxy::Proxy(ProxyOptions options, asio::io_context& control)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_, control)) {}

Proxy::~Proxy() { Stop(); }

void Proxy::Start() {
  if (impl_->started) {
    return;
  }
  impl_->started = true;
  int threads = options_.threads > 0 ? options_.threads
                                     : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    impl_->workers.push_back(std::make_unique<Worker>(*impl_));
  }
  for (auto& w : impl_->workers) {
    Worker* worker = w.get();
    asio::co_spawn(*worker->io, worker->Tick(), asio::detached);
    worker->thread = std::thread([worker] {
      auto guard = asio::make_work_guard(*worker->io);
      worker->io->run();
    });
  }
}

void Proxy::Stop() {
  if (!impl_->started) {
    return;
  }
  impl_->started = false;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [id, ls] : impl_->sockets) {
      impl_->Close(ls);
    }
    impl_->sockets.clear();
  }
  for (auto& w : impl_->workers) {
    w->io->stop();
  }
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
  for (auto& w : impl_->workers) {
    // Idle target connections first: they need their io_context alive.
    w->pools.clear();
    w->snapshot.reset();
    w->io.reset();  // destroys the sessions still suspended in it
  }
  impl_->workers.clear();
}

Status Proxy::Bind(const std::string& listener_id, uint16_t port) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->sockets.find(listener_id);
  if (it != impl_->sockets.end() && it->second->port == port) {
    return Ok();
  }
  auto opened = impl_->Open(listener_id, port);
  if (!opened.ok()) {
    return opened.error();
  }
  if (it != impl_->sockets.end()) {
    bool was_accepting = it->second->accepting;
    impl_->Close(it->second);
    it->second = *opened;
    if (was_accepting) {
      asio::post(impl_->control, [impl = impl_.get(), ls = *opened] { impl->StartAccepting(ls); });
    }
  } else {
    impl_->sockets.emplace(listener_id, *opened);
  }
  return Ok();
}

void Proxy::Release(const std::string& listener_id) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->sockets.find(listener_id);
  if (it == impl_->sockets.end()) {
    return;
  }
  impl_->Close(it->second);
  impl_->sockets.erase(it);
}

void Proxy::Update(std::shared_ptr<const ProxySnapshot> snapshot) {
  for (auto& w : impl_->workers) {
    asio::post(*w->io, [worker = w.get(), snapshot] { worker->snapshot = snapshot; });
  }
  std::lock_guard lock(impl_->mu);
  auto now = Clock::now();
  for (auto it = impl_->sockets.begin(); it != impl_->sockets.end();) {
    bool named = snapshot->listeners.count(it->first) != 0;
    if (!named && (it->second->accepting || now - it->second->bound_at > kPendingBindGrace)) {
      impl_->Close(it->second);
      it = impl_->sockets.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [id, listener] : snapshot->listeners) {
    auto it = impl_->sockets.find(id);
    if (it == impl_->sockets.end()) {
      auto opened = impl_->Open(id, listener.port);
      if (!opened.ok()) {
        spdlog::error("event=lb_listener_bind_failed listener={} port={} error=\"{}\"", id,
                      listener.port, opened.error().message);
        continue;
      }
      it = impl_->sockets.emplace(id, *opened).first;
    }
    asio::post(impl_->control, [impl = impl_.get(), ls = it->second] { impl->StartAccepting(ls); });
  }
}

std::optional<uint16_t> Proxy::BoundPort(const std::string& listener_id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->sockets.find(listener_id);
  if (it == impl_->sockets.end()) {
    return std::nullopt;
  }
  error_code ec;
  auto ep = it->second->acceptor.local_endpoint(ec);
  return ec ? std::nullopt : std::optional<uint16_t>(ep.port());
}

}  // namespace berth::elb
