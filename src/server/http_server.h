// berth's HTTP/1.1 front: one listener serving every route.
//
// Connections are served by coroutines on a small I/O thread pool; route
// handlers run on a separate pool of worker threads because they may block
// (the store, the disk). Request bodies are either buffered up to the
// route's limit or streamed into the route's BodySink, so a 1 GiB upload is
// never held in memory.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/result.h"
#include "server/http_types.h"

namespace berth::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:4566";
  int io_threads = 2;
  int worker_threads = 16;
  int idle_timeout_seconds = 120;     // between requests on a kept-alive connection
  int read_timeout_seconds = 300;     // longest stall while reading one request
  uint32_t header_limit = 64 * 1024;  // bytes of request line and headers
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Routes are tried in the order added; the first that matches serves.
  void AddRoute(std::shared_ptr<Route> route);

  // Binds the listener. Returns the bound address ("127.0.0.1:4566"); a port
  // of 0 picks a free one.
  Result<std::string> Listen();

  // Starts the I/O threads; returns at once.
  void Start();
  // Stops accepting, closes connections, joins threads.
  void Stop();

  boost::asio::io_context& io_context() { return io_; }

 private:
  struct Impl;
  ServerOptions options_;
  boost::asio::io_context io_;
  boost::asio::thread_pool workers_;
  std::vector<std::shared_ptr<Route>> routes_;
  std::vector<std::thread> threads_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stopped_{false};

  friend struct Impl;
};

// Splits "host:port" (also "[::1]:port"); the port is required.
Result<std::pair<std::string, uint16_t>> SplitHostPort(const std::string& address);

// Percent-decodes a URL component ('+' stays '+').
std::string PercentDecode(std::string_view s);

// Parses "a=1&b=2" into decoded pairs ('+' means space, as in forms).
std::multimap<std::string, std::string> ParseQueryString(std::string_view s, bool plus_is_space);

}  // namespace berth::http
