#include "elb/proxy.h"

#include <chrono>
#include <map>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/http_server.h"

namespace berth::elb {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

// A target: berth's own HTTP server answering with its name, the body size it
// got, and the X-Forwarded-For it saw.
class NameRoute : public http::Route {
 public:
  explicit NameRoute(std::string name) : name_(std::move(name)) {}
  bool Matches(const http::Request&) const override { return true; }
  http::Response Serve(http::Request& request, http::BodySink*) override {
    http::Response r;
    if (request.path == "/sleep") {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    }
    if (request.path == "/chunked") {
      r.body = "chunked:" + std::to_string(request.body.size());
    } else {
      r.body = name_ + " xff=" + request.Header("X-Forwarded-For");
    }
    return r;
  }

 private:
  std::string name_;
};

class Backend {
 public:
  explicit Backend(const std::string& name) {
    http::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.io_threads = 1;
    options.worker_threads = 2;
    server_ = std::make_unique<http::Server>(options);
    server_->AddRoute(std::make_shared<NameRoute>(name));
    auto bound = server_->Listen();
    EXPECT_TRUE(bound.ok());
    port_ = http::SplitHostPort(*bound)->second;
    server_->Start();
  }
  ~Backend() { server_->Stop(); }
  uint16_t port() const { return port_; }

 private:
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
};

// A target that answers every request as if it kept the connection alive
// and then closes it anyway, the way servers with short keep-alive timeouts
// do. It echoes the request body's size.
class ClosingBackend {
 public:
  ClosingBackend() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] {
      for (;;) {
        tcp::socket socket(io_);
        boost::system::error_code ec;
        acceptor_.accept(socket, ec);
        if (ec || stopping_) {
          return;
        }
        beast::flat_buffer buffer;
        bhttp::request<bhttp::string_body> req;
        bhttp::read(socket, buffer, req, ec);
        if (ec) {
          continue;
        }
        ++requests;
        bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
        res.body() = "len=" + std::to_string(req.body().size());
        res.prepare_payload();
        bhttp::write(socket, res, ec);
      }
    });
  }
  ~ClosingBackend() {
    stopping_ = true;
    boost::system::error_code ignored;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ignored);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::atomic<int> requests{0};

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

uint16_t UnusedPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// A kept-alive client connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  bhttp::response<bhttp::string_body> Send(bhttp::request<bhttp::string_body> req) {
    req.prepare_payload();
    bhttp::write(socket_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res);
    return res;
  }
  bhttp::response<bhttp::string_body> Get(const std::string& target,
                                          const std::string& host = "lb.test") {
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, host);
    return Send(std::move(req));
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_thread_ = std::thread([this] {
      auto guard = asio::make_work_guard(control_);
      control_.run();
    });
    ProxyOptions options;
    options.threads = 2;
    options.connect_timeout_seconds = 2;
    options.header_timeout_seconds = 1;
    proxy_ = std::make_unique<Proxy>(options, control_);
    proxy_->Start();
  }
  void TearDown() override {
    proxy_->Stop();
    control_.stop();
    control_thread_.join();
  }

  std::shared_ptr<TargetRuntime> Target(const std::string& group, uint16_t port,
                                        bool routable = true) {
    auto t = std::make_shared<TargetRuntime>(
        group, "127.0.0.1", port, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    t->routable = routable;
    return t;
  }

  // Serves one listener whose default action forwards to group "g" and
  // whose rules route "/fixed" to a fixed response and "/other/*" to "o".
  uint16_t Serve(std::vector<std::shared_ptr<TargetRuntime>> g,
                 std::vector<std::shared_ptr<TargetRuntime>> o = {},
                 Algorithm algorithm = Algorithm::kRoundRobin, int idle_timeout_seconds = 60) {
    auto snapshot = std::make_shared<ProxySnapshot>();
    for (auto& [id, targets] : std::map<std::string, std::vector<std::shared_ptr<TargetRuntime>>>{
             {"g", g}, {"o", o}}) {
      GroupRuntime group;
      group.id = id;
      group.algorithm = algorithm;
      group.targets = targets;
      group.cursor = std::make_shared<std::atomic<uint64_t>>(0);
      snapshot->groups.emplace(id, std::move(group));
    }
    uint16_t port = UnusedPort();
    ListenerRuntime l;
    l.id = "l1";
    l.port = port;
    l.idle_timeout_seconds = idle_timeout_seconds;
    ActionSpec forward;
    forward.groups = {{"g", 1}};
    l.default_action = MakeRouteAction(forward, *snapshot);
    RuleSpec fixed_rule;
    fixed_rule.priority = 1;
    fixed_rule.conditions = {{ConditionSpec::Field::kPath, "", {"/fixed"}}};
    fixed_rule.action.kind = ActionSpec::Kind::kFixedResponse;
    fixed_rule.action.status = 418;
    fixed_rule.action.body = "teapot";
    RuleSpec other_rule;
    other_rule.priority = 2;
    other_rule.conditions = {{ConditionSpec::Field::kPath, "", {"/other/*"}}};
    other_rule.action.groups = {{"o", 1}};
    l.rules.push_back(RouteRule{fixed_rule, MakeRouteAction(fixed_rule.action, *snapshot)});
    l.rules.push_back(RouteRule{other_rule, MakeRouteAction(other_rule.action, *snapshot)});
    snapshot->listeners.emplace("l1", std::move(l));
    EXPECT_TRUE(proxy_->Bind("l1", port).ok());
    proxy_->Update(snapshot);
    snapshot_ = snapshot;
    return port;
  }

  asio::io_context control_;
  std::thread control_thread_;
  std::unique_ptr<Proxy> proxy_;
  std::shared_ptr<ProxySnapshot> snapshot_;
};

TEST_F(ProxyTest, RoundRobinsOverOneKeptAliveConnection) {
  Backend a("a");
  Backend b("b");
  uint16_t port = Serve({Target("g", a.port()), Target("g", b.port())});
  Client client(port);
  std::vector<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    auto res = client.Get("/x");
    EXPECT_EQ(200, res.result_int());
    seen.push_back(res.body().substr(0, 1));
  }
  EXPECT_EQ((std::vector<std::string>{"a", "b", "a", "b"}), seen);
}

TEST_F(ProxyTest, AddsForwardedHeaders) {
  Backend a("a");
  uint16_t port = Serve({Target("g", a.port())});
  Client client(port);
  EXPECT_EQ("a xff=127.0.0.1", client.Get("/").body());
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/", 11};
  req.set(bhttp::field::host, "lb.test");
  req.set("X-Forwarded-For", "198.51.100.1");
  EXPECT_EQ("a xff=198.51.100.1, 127.0.0.1", client.Send(std::move(req)).body());
}

TEST_F(ProxyTest, RoutesByRulesThenTheDefaultAction) {
  Backend a("a");
  Backend o("o");
  uint16_t port = Serve({Target("g", a.port())}, {Target("o", o.port())});
  Client client(port);
  auto fixed = client.Get("/fixed");
  EXPECT_EQ(418, fixed.result_int());
  EXPECT_EQ("teapot", fixed.body());
  EXPECT_EQ("o", client.Get("/other/thing").body().substr(0, 1));
  EXPECT_EQ("a", client.Get("/otherwise").body().substr(0, 1));
}

TEST_F(ProxyTest, Answers503WithoutARoutableTarget) {
  Backend a("a");
  uint16_t port = Serve({Target("g", a.port(), false)});
  Client client(port);
  auto res = client.Get("/");
  EXPECT_EQ(503, res.result_int());
  EXPECT_THAT(res.body(), HasSubstr("503 Service Unavailable"));
  // The connection stays usable.
  EXPECT_EQ(503, client.Get("/").result_int());
}

TEST_F(ProxyTest, Answers502WhenTheTargetRefuses) {
  uint16_t port = Serve({Target("g", UnusedPort())});
  Client client(port);
  EXPECT_EQ(502, client.Get("/").result_int());
}

TEST_F(ProxyTest, LeastOutstandingRequestsAvoidsBusyTargets) {
  Backend a("a");
  Backend b("b");
  auto busy = Target("g", a.port());
  busy->outstanding = 3;
  uint16_t port = Serve({busy, Target("g", b.port())}, {}, Algorithm::kLeastOutstandingRequests);
  Client client(port);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ("b", client.Get("/").body().substr(0, 1));
  }
  busy->outstanding = 0;
}

TEST_F(ProxyTest, StreamsChunkedRequestBodies) {
  Backend a("a");
  uint16_t port = Serve({Target("g", a.port())});
  Client client(port);
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/chunked", 11};
  req.set(bhttp::field::host, "lb.test");
  req.body() = std::string(300000, 'x');
  req.chunked(true);
  auto res = client.Send(std::move(req));
  EXPECT_EQ(200, res.result_int());
  EXPECT_EQ("chunked:300000", res.body());
}

TEST_F(ProxyTest, Answers504WhenTheTargetOutlastsTheIdleTimeout) {
  Backend a("a");
  uint16_t port = Serve({Target("g", a.port())}, {}, Algorithm::kRoundRobin, 1);
  Client client(port);
  auto started = std::chrono::steady_clock::now();
  auto res = client.Get("/sleep");
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(504, res.result_int());
  EXPECT_GE(waited, std::chrono::milliseconds(900));
  EXPECT_LT(waited, std::chrono::milliseconds(2400));
}

TEST_F(ProxyTest, Answers408ToAClientThatStallsMidHead) {
  Backend a("a");
  uint16_t port = Serve({Target("g", a.port())});
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n")));
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(socket, buffer, res);
  EXPECT_EQ(408, res.result_int());
  EXPECT_FALSE(res.keep_alive());
}

TEST_F(ProxyTest, RetriesARequestOnAPooledConnectionTheTargetClosed) {
  ClosingBackend target;
  uint16_t port = Serve({Target("g", target.port())});
  Client client(port);
  for (int i = 0; i < 3; ++i) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/", 11};
    req.set(bhttp::field::host, "lb.test");
    req.body() = "hello";
    auto res = client.Send(std::move(req));
    EXPECT_EQ(200, res.result_int());
    EXPECT_EQ("len=5", res.body());
  }
  EXPECT_EQ(3, target.requests.load());
}

TEST_F(ProxyTest, RefusesToBindAPortInUse) {
  asio::io_context io;
  tcp::acceptor holder(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  uint16_t port = holder.local_endpoint().port();
  Status st = proxy_->Bind("busy", port);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message,
              HasSubstr("Port " + std::to_string(port) + " cannot be bound on 127.0.0.1"));
  EXPECT_FALSE(proxy_->BoundPort("busy").has_value());
}

TEST_F(ProxyTest, ClosesTheListenersASnapshotNoLongerNames) {
  Backend a("a");
  uint16_t port = Serve({Target("g", a.port())});
  EXPECT_EQ(200, Client(port).Get("/").result_int());
  proxy_->Update(std::make_shared<ProxySnapshot>());
  // The socket closes on the control thread shortly after.
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    try {
      Client late(port);
    } catch (const std::exception&) {
      refused = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused);
}

}  // namespace
}  // namespace berth::elb
