// SPDX-License-Identifier: Apache-2.0
// The proxy's insides, shared by proxy.cc (listeners, workers) and
// proxy_session.cc (what a client connection does); see elb/proxy.h.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/basic_parser.hpp>

#include "elb/proxy.h"

namespace berth::elb {
namespace proxy_internal {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
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
inline constexpr asio::use_awaitable_t<Executor> kUse;

inline constexpr size_t kInitialBuffer = 16 * 1024;
inline constexpr size_t kHeaderLimit = 64 * 1024;
inline constexpr size_t kReadChunk = 64 * 1024;
inline constexpr auto kTick = std::chrono::milliseconds(250);
inline const std::string kNothing;
// An accepting socket the API bound but no snapshot named yet is kept this
// long before it counts as abandoned.
inline constexpr auto kPendingBindGrace = std::chrono::seconds(60);

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

// Small HTTP helpers shared by the session code (proxy_session.cc).
bool IsHopByHop(bhttp::field f);
std::string_view Trim(std::string_view s);
bool IEquals(std::string_view a, std::string_view b);
// X-Forwarded-For, -Proto and -Port: the load balancer sets them.
bool IsForwardedField(std::string_view name);
// The host of a Host header value, without the port.
std::string_view HostOnly(std::string_view host);
// An answer of the load balancer's own, in the HTML AWS load balancers use.
std::string OwnAnswerHead(int status, size_t body_size, const char* content_type);
std::string OwnAnswerBody(int status);
uint64_t NextRandom();

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

}  // namespace proxy_internal

struct Proxy::Impl {
  Impl(ProxyOptions& o, boost::asio::io_context& c) : options(o), control(c) {}

  ProxyOptions& options;
  boost::asio::io_context& control;
  std::vector<std::unique_ptr<proxy_internal::Worker>> workers;
  std::atomic<size_t> next_worker{0};
  bool started = false;

  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<proxy_internal::ListenerSocket>> sockets;  // by listener id; guarded by mu

  proxy_internal::Worker& PickWorker() { return *workers[next_worker++ % workers.size()]; }
  Result<std::shared_ptr<proxy_internal::ListenerSocket>> Open(const std::string& listener_id, uint16_t port);
  void StartAccepting(const std::shared_ptr<proxy_internal::ListenerSocket>& ls);
  void Close(std::shared_ptr<proxy_internal::ListenerSocket> ls);
  boost::asio::awaitable<void> AcceptLoop(std::shared_ptr<proxy_internal::ListenerSocket> ls);
};

}  // namespace berth::elb
