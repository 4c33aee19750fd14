// SPDX-License-Identifier: Apache-2.0
#include "elb/proxy.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/status.hpp>
#include <spdlog/spdlog.h>

#include "elb/response_head.h"

namespace berth::elb {

using namespace std::string_view_literals;

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Everything on a worker runs on its io_context; naming the executor type
// (rather than the type-erased any_io_executor) saves work on every
// operation.
using Executor = asio::io_context::executor_type;
template <typename T>
using Task = asio::awaitable<T, Executor>;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, Executor>;
constexpr asio::use_awaitable_t<Executor> kUse;

namespace {

constexpr size_t kInitialBuffer = 16 * 1024;
constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
constexpr auto kTick = std::chrono::milliseconds(250);
const std::string kNothing;
// An accepting socket the API bound but no snapshot named yet is kept this
// long before it counts as abandoned.
constexpr auto kPendingBindGrace = std::chrono::seconds(60);

// A byte buffer read into at the end and consumed from the front.
class IoBuffer {
 public:
  IoBuffer() : data_(new char[kInitialBuffer]), capacity_(kInitialBuffer) {}

  const char* data() const { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void Consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) {
      begin_ = end_ = 0;
    }
  }
  void Clear() { begin_ = end_ = 0; }

  // Room for at least one more read; moves the data to the front or grows up
  // to `limit`. Returns an empty buffer when full at the limit.
  asio::mutable_buffer Prepare(size_t limit) {
    if (end_ == capacity_ && begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == capacity_ && capacity_ < limit) {
      size_t grown = std::min(limit, capacity_ * 2);
      std::unique_ptr<char[]> bigger(new char[grown]);
      std::memcpy(bigger.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      data_ = std::move(bigger);
      capacity_ = grown;
    }
    return asio::buffer(data_.get() + end_, std::min(capacity_ - end_, kReadChunk));
  }
  void Commit(size_t n) { end_ += n; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

struct Field {
  bhttp::field name;
  std::string_view name_string;
  std::string_view value;
};

// Parses a request head into views of the connection's buffer and steps over
// body bytes without copying them (they are relayed raw).
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(std::vector<Field>& fields) : fields_(fields) {
    fields_.clear();
    header_limit(kHeaderLimit);
    // Not boost::none: this Beast compares lengths against an empty limit as
    // if it were smaller than any length.
    body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  bhttp::verb method = bhttp::verb::unknown;
  std::string_view method_string;
  std::string_view target;
  int version = 11;

 private:
  void on_request_impl(bhttp::verb m, std::string_view ms, std::string_view t, int v,
                       error_code&) override {
    method = m;
    method_string = ms;
    target = t;
    version = v;
  }
  void on_response_impl(int, std::string_view, int, error_code&) override {}
  void on_field_impl(bhttp::field f, std::string_view n, std::string_view v,
                     error_code&) override {
    fields_.push_back({f, n, v});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  size_t on_body_impl(std::string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t, std::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, std::string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  std::vector<Field>& fields_;
};

// Parses a target's response head; the body is relayed raw, or, for HTTP/1.0
// clients that cannot read chunked bodies, decoded into `dechunked`.
class ResponseParser final : public bhttp::basic_parser<false> {
 public:
  explicit ResponseParser(std::vector<Field>& fields) : fields_(fields) {
    fields_.clear();
    header_limit(kHeaderLimit);
    // Not boost::none: this Beast compares lengths against an empty limit as
    // if it were smaller than any length.
    body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  int status = 0;
  std::string_view reason;
  std::string* dechunked = nullptr;

 private:
  void on_request_impl(bhttp::verb, std::string_view, std::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, std::string_view r, int, error_code&) override {
    status = code;
    reason = r;
  }
  void on_field_impl(bhttp::field f, std::string_view n, std::string_view v,
                     error_code&) override {
    fields_.push_back({f, n, v});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  size_t on_body_impl(std::string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t, std::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, std::string_view body, error_code&) override {
    if (dechunked != nullptr) {
      dechunked->append(body.data(), body.size());
    }
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  std::vector<Field>& fields_;
};

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

}  // namespace

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
// Workers, listeners and sessions

struct Session;

struct Worker {
  explicit Worker(Proxy::Impl& owner)
      : impl(owner), io(std::make_unique<asio::io_context>(1)) {}

  struct Pooled {
    Socket socket;
    Clock::time_point idle_since;
  };
  struct Pool {
    std::shared_ptr<TargetRuntime> target;
    std::vector<Pooled> idle;
  };

  Proxy::Impl& impl;
  std::unique_ptr<asio::io_context> io;
  std::shared_ptr<const ProxySnapshot> snapshot;  // touched on the worker thread only
  std::unordered_map<uint64_t, Pool> pools;       // by target id
  Session* sessions = nullptr;                    // intrusive list, for timeouts
  std::thread thread;

  Task<void> Tick();
};

struct ListenerSocket {
  ListenerSocket(asio::io_context& io, std::string id, uint16_t p)
      : listener_id(std::move(id)), port(p), acceptor(io), bound_at(Clock::now()) {}
  std::string listener_id;
  uint16_t port;
  tcp::acceptor acceptor;
  std::atomic<bool> accepting{false};
  Clock::time_point bound_at;
};

struct Proxy::Impl {
  Impl(ProxyOptions& o, asio::io_context& c) : options(o), control(c) {}

  ProxyOptions& options;
  asio::io_context& control;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<size_t> next_worker{0};
  bool started = false;

  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<ListenerSocket>> sockets;  // by listener id; guarded by mu

  Worker& PickWorker() { return *workers[next_worker++ % workers.size()]; }
  Result<std::shared_ptr<ListenerSocket>> Open(const std::string& listener_id, uint16_t port);
  void StartAccepting(const std::shared_ptr<ListenerSocket>& ls);
  void Close(std::shared_ptr<ListenerSocket> ls);
  awaitable<void> AcceptLoop(std::shared_ptr<ListenerSocket> ls);
};

// One client connection and the requests it carries.
struct Session {
  Session(Worker& w, Socket s, std::string id)
      : worker(w), client(std::move(s)), upstream(*w.io), listener_id(std::move(id)) {
    next = worker.sessions;
    if (next != nullptr) {
      next->prev = this;
    }
    worker.sessions = this;
  }
  ~Session() {
    if (prev != nullptr) {
      prev->next = next;
    } else {
      worker.sessions = next;
    }
    if (next != nullptr) {
      next->prev = prev;
    }
  }

  void Arm(int seconds) {
    deadline = Clock::now() + std::chrono::seconds(seconds);
    timed_out = false;
  }
  void Disarm() { deadline = Clock::time_point::max(); }
  void Expire() {
    timed_out = true;
    deadline = Clock::time_point::max();
    error_code ignored;
    client.cancel(ignored);
    upstream.cancel(ignored);
  }

  Task<void> Run();

 private:
  enum class Relay { kDone, kRetry, kFailed };
  enum class Send { kSent, kTargetFailed, kTargetFailedMidBody, kClientFailed };
  // How the request goes out: the head (raw or rebuilt in head_) and the
  // body bytes that came with it.
  struct Outgoing {
    size_t head_size = 0;
    size_t first_body = 0;
    bool raw_head = false;
  };
  // Counts a request as outstanding at its target until the target has
  // answered it in full (not until the client has the answer: by then the
  // client may already be asking again, on another worker).
  struct OutstandingGuard {
    OutstandingGuard(Session& s, TargetRuntime* t) : session(s), target(t) {
      if (target != nullptr) {
        target->outstanding.fetch_add(1, std::memory_order_relaxed);
      }
      session.outstanding_ = this;
    }
    ~OutstandingGuard() {
      Release();
      session.outstanding_ = nullptr;
    }
    void Release() {
      if (target != nullptr) {
        target->outstanding.fetch_sub(1, std::memory_order_relaxed);
        target = nullptr;
      }
    }
    Session& session;
    TargetRuntime* target;
  };
  // The target has sent its whole answer.
  void TargetAnswered() {
    if (outstanding_ != nullptr) {
      outstanding_->Release();
    }
  }

  const ListenerRuntime* CurrentListener();
  const RouteAction& Route(const ListenerRuntime& listener, const RequestParser& req);
  TargetRuntime* PickTarget(const RouteAction& action, bool& counted);
  bool BuildUpstreamHead(const RequestParser& req, const ListenerRuntime& listener,
                         const TargetRuntime& target);
  Task<bool> ReadRequestHead(RequestParser& req, size_t& head_size, int idle_seconds);
  Task<bool> WriteClient(const std::string& a, const char* b = nullptr, size_t b_size = 0);
  Task<bool> Answer(RequestParser& req, const std::string& head, const std::string& body,
                         bool& keep_alive);
  Task<bool> Forward(RequestParser& req, size_t head_size, const ListenerRuntime& listener,
                          const RouteAction& action, bool& keep_alive);
  // A kept-alive connection to the target from the worker's pool, if any.
  bool TakePooled(TargetRuntime& target);
  Task<bool> Connect(TargetRuntime& target, int& failure_status);
  Task<Relay> RelayResponse(const RequestParser& req, TargetRuntime& target,
                                 int idle_seconds, bool retryable, bool& keep_alive,
                                 int& failure_status);
  Task<Relay> RelayParsed(const RequestParser& req, TargetRuntime& target, int idle_seconds,
                          bool& keep_alive, int& failure_status);
  Task<Send> SendRequest(RequestParser& req, const Outgoing& out, size_t& held, int idle_seconds,
                         int& failure_status);
  bool ExpectsContinue() const;
  void ReleaseUpstream(TargetRuntime& target, bool reusable);
  const std::string& ClientIp();

 public:
  Worker& worker;
  Socket client;
  Socket upstream;
  std::string listener_id;
  Session* prev = nullptr;
  Session* next = nullptr;
  Clock::time_point deadline = Clock::time_point::max();
  bool timed_out = false;

 private:
  IoBuffer in_;
  IoBuffer up_in_;
  std::vector<Field> fields_;
  std::vector<Field> up_fields_;
  std::string head_;
  std::string resp_head_;
  std::string dechunked_;
  std::string client_ip_;
  std::string forwarded_tail_;  // client IP, X-Forwarded-Proto and -Port lines
  uint16_t forwarded_tail_port_ = 0;
  std::shared_ptr<const ProxySnapshot> snapshot_;
  const ListenerRuntime* listener_ = nullptr;
  OutstandingGuard* outstanding_ = nullptr;
};

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
