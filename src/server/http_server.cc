#include "server/http_server.h"

#include <fcntl.h>
#include <algorithm>
#include <limits>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/ids.h"

namespace berth::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string DecodeComponent(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
      continue;
    }
    out.push_back(c);
  }
  return out;
}

Response PlainError(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.SetHeader("Content-Type", "application/json");
  r.body = nlohmann::json{{"message", message}}.dump();
  return r;
}

}  // namespace

std::string PercentDecode(std::string_view s) { return DecodeComponent(s, false); }

std::multimap<std::string, std::string> ParseQueryString(std::string_view s, bool plus_is_space) {
  std::multimap<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= s.size() && !s.empty()) {
    size_t amp = s.find('&', pos);
    std::string_view part = s.substr(pos, amp == std::string_view::npos ? s.npos : amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace(DecodeComponent(part, plus_is_space), "");
      } else {
        out.emplace(DecodeComponent(part.substr(0, eq), plus_is_space),
                    DecodeComponent(part.substr(eq + 1), plus_is_space));
      }
    }
    if (amp == std::string_view::npos) {
      break;
    }
    pos = amp + 1;
  }
  return out;
}

Result<std::pair<std::string, uint16_t>> SplitHostPort(const std::string& address) {
  std::string host;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return ClientError("InvalidAddress", "invalid address: " + address);
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return ClientError("InvalidAddress", "address needs a port: " + address);
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) {
    return ClientError("InvalidAddress", "invalid port in address: " + address);
  }
  if (host.empty() || host == "localhost") {
    host = "127.0.0.1";
  }
  return std::make_pair(host, static_cast<uint16_t>(p));
}

struct Server::Impl {
  explicit Impl(Server& s) : server(s), acceptor(s.io_) {}

  Server& server;
  tcp::acceptor acceptor;

  Route* FindRoute(const Request& head) {
    for (auto& r : server.routes_) {
      if (r->Matches(head)) {
        return r.get();
      }
    }
    return nullptr;
  }

  awaitable<Response> RunServe(Route* route, Request& req, BodySink* sink) {
    auto exec = server.workers_.get_executor();
    co_return co_await asio::co_spawn(
        exec,
        [route, &req, sink]() -> awaitable<Response> {
          try {
            co_return route->Serve(req, sink);
          } catch (const std::exception& e) {
            spdlog::error("request_id={} unhandled error: {}", req.request_id, e.what());
            Response r;
            r.status = 500;
            r.SetHeader("Content-Type", "application/x-amz-json-1.1");
            r.body = R"({"__type":"ServerException","message":"Internal error."})";
            co_return r;
          }
        },
        use_awaitable);
  }

  static awaitable<void> WriteResponse(beast::tcp_stream& stream, const Request& req,
                                       Response& resp, bool keep_alive) {
    bool head = req.method == "HEAD";
    if (!resp.file_path.empty() && !head) {
      int fd = ::open(resp.file_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        Response err = PlainError(500, "cannot open content");
        co_await WriteResponse(stream, req, err, false);
        co_return;
      }
      struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
      } closer{fd};
      uint64_t length = resp.file_length.value_or(0);
      if (!resp.file_length) {
        off_t end = ::lseek(fd, 0, SEEK_END);
        length = end > static_cast<off_t>(resp.file_offset) ? end - resp.file_offset : 0;
      }
      bhttp::response<bhttp::buffer_body> res{static_cast<bhttp::status>(resp.status), 11};
      for (auto& [n, v] : resp.headers) {
        res.set(n, v);
      }
      res.content_length(length);
      res.keep_alive(keep_alive);
      res.body().data = nullptr;
      res.body().more = true;
      bhttp::response_serializer<bhttp::buffer_body> sr{res};
      beast::error_code ec;
      co_await bhttp::async_write_header(stream, sr, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        throw beast::system_error(ec);
      }
      // Sized to the file: a small blob should not cost a fresh megabyte.
      std::vector<char> buf(static_cast<size_t>(std::clamp<uint64_t>(length, 1, 1 << 20)));
      uint64_t offset = resp.file_offset;
      uint64_t remaining = length;
      while (remaining > 0) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, buf.size()));
        ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset));
        if (n <= 0) {
          throw std::runtime_error("short read of response file");
        }
        offset += n;
        remaining -= n;
        res.body().data = buf.data();
        res.body().size = static_cast<size_t>(n);
        res.body().more = remaining > 0;
        co_await bhttp::async_write(stream, sr, asio::redirect_error(use_awaitable, ec));
        if (ec == bhttp::error::need_buffer) {
          ec = {};
        }
        if (ec) {
          throw beast::system_error(ec);
        }
      }
      res.body().data = nullptr;
      res.body().more = false;
      co_await bhttp::async_write(stream, sr, asio::redirect_error(use_awaitable, ec));
      if (ec && ec != bhttp::error::need_buffer) {
        throw beast::system_error(ec);
      }
      co_return;
    }
    if (head && (resp.head_length || !resp.file_path.empty())) {
      bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(resp.status), 11};
      for (auto& [n, v] : resp.headers) {
        res.set(n, v);
      }
      uint64_t len = resp.head_length.value_or(resp.file_length.value_or(0));
      res.content_length(len);
      res.keep_alive(keep_alive);
      bhttp::response_serializer<bhttp::empty_body> sr{res};
      co_await bhttp::async_write_header(stream, sr, use_awaitable);
      co_return;
    }
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(resp.status), 11};
    for (auto& [n, v] : resp.headers) {
      res.set(n, v);
    }
    res.keep_alive(keep_alive);
    size_t len = resp.body.size();
    res.body() = std::move(resp.body);
    res.content_length(len);
    if (head) {
      bhttp::response_serializer<bhttp::string_body> sr{res};
      co_await bhttp::async_write_header(stream, sr, use_awaitable);
      co_return;
    }
    co_await bhttp::async_write(stream, res, use_awaitable);
  }

  awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    std::string remote;
    {
      beast::error_code ec;
      auto ep = stream.socket().remote_endpoint(ec);
      if (!ec) {
        remote = ep.address().to_string();
      }
    }
    std::vector<char> chunk(256 * 1024);
    std::vector<char> big_chunk;  // for streamed bodies, allocated on first use
    try {
      for (;;) {
        bhttp::request_parser<bhttp::buffer_body> parser;
        parser.header_limit(server.options_.header_limit);
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        stream.expires_after(std::chrono::seconds(server.options_.idle_timeout_seconds));
        beast::error_code ec;
        co_await bhttp::async_read_header(stream, buffer, parser,
                                          asio::redirect_error(use_awaitable, ec));
        if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
            ec == beast::error::timeout || ec == asio::error::connection_reset) {
          break;
        }
        if (ec) {
          Request dummy;
          Response r = PlainError(ec == bhttp::error::header_limit ? 431 : 400,
                                  "malformed request: " + ec.message());
          co_await WriteResponse(stream, dummy, r, false);
          break;
        }
        stream.expires_after(std::chrono::seconds(server.options_.read_timeout_seconds));
        auto& msg = parser.get();
        Request req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        size_t q = req.target.find('?');
        req.raw_path = req.target.substr(0, q);
        req.raw_query = q == std::string::npos ? "" : req.target.substr(q + 1);
        req.path = PercentDecode(req.raw_path);
        req.query = ParseQueryString(req.raw_query, true);
        for (const auto& field : msg) {
          std::string name(field.name_string());
          auto it = req.headers.find(name);
          if (it == req.headers.end()) {
            req.headers.emplace(name, std::string(field.value()));
          } else {
            it->second += ",";
            it->second += std::string(field.value());
          }
        }
        req.remote_address = remote;
        req.request_id = NewUuid();
        bool keep_alive = msg.keep_alive();

        Route* route = FindRoute(req);
        Response resp;
        std::unique_ptr<BodySink> sink;
        bool answered = false;
        bool body_pending = !parser.is_done();
        if (route == nullptr) {
          resp = PlainError(404, "no route for " + req.method + " " + req.raw_path);
          answered = true;
        } else {
          auto opened = route->OpenBodySink(req);
          if (!opened.ok()) {
            resp = route->RenderError(req, opened.error());
            answered = true;
            keep_alive = false;
          } else {
            sink = std::move(opened.value());
          }
        }
        if (!answered && body_pending) {
          if (boost::beast::iequals(msg[bhttp::field::expect], "100-continue")) {
            bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
            co_await bhttp::async_write(stream, cont, use_awaitable);
          }
          // A streamed body of known length skips the parser: the bytes left
          // over after the header, then large reads straight from the socket,
          // go to the sink. This keeps a big upload at one read and one sink
          // call per megabyte.
          bool streamed = false;
          if (sink && parser.content_length() && !parser.chunked()) {
            streamed = true;
            uint64_t remaining = *parser.content_length();
            if (remaining > 0 && buffer.size() > 0) {
              size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), remaining));
              Status st = sink->Write(static_cast<const char*>(buffer.data().data()), n);
              buffer.consume(n);
              remaining -= n;
              if (!st.ok()) {
                resp = route->RenderError(req, st.error());
                answered = true;
                keep_alive = false;
              }
            }
            if (remaining > 0 && !answered && big_chunk.empty()) {
              big_chunk.resize(1 << 20);
            }
            while (remaining > 0 && !answered) {
              size_t want = static_cast<size_t>(std::min<uint64_t>(big_chunk.size(), remaining));
              size_t got = co_await stream.async_read_some(
                  asio::buffer(big_chunk.data(), want), asio::redirect_error(use_awaitable, ec));
              if (ec) {
                throw beast::system_error(ec);
              }
              remaining -= got;
              Status st = sink->Write(big_chunk.data(), got);
              if (!st.ok()) {
                resp = route->RenderError(req, st.error());
                answered = true;
                keep_alive = false;
              }
            }
          }
          uint64_t limit = route->MaxBufferedBody(req);
          bool too_large = false;
          // An oversized body is still read (and dropped) up to a bound so the
          // client sees the answer instead of a reset connection.
          const uint64_t discard_limit = std::max<uint64_t>(limit * 4, 64u << 20);
          uint64_t discarded = 0;
          if (!sink && parser.content_length() && *parser.content_length() > discard_limit) {
            too_large = true;
          }
          while (!streamed && !parser.is_done() && discarded <= discard_limit &&
                 !(too_large && parser.content_length() &&
                   *parser.content_length() > discard_limit)) {
            parser.get().body().data = chunk.data();
            parser.get().body().size = chunk.size();
            co_await bhttp::async_read(stream, buffer, parser,
                                       asio::redirect_error(use_awaitable, ec));
            if (ec == bhttp::error::need_buffer) {
              ec = {};
            }
            if (ec) {
              // A streamed body cut off by the client keeps what did arrive, so
              // a resumable upload continues from there instead of re-sending it.
              size_t partial = chunk.size() - parser.get().body().size;
              if (sink && partial > 0) {
                (void)sink->Write(chunk.data(), partial);
              }
              throw beast::system_error(ec);
            }
            size_t got = chunk.size() - parser.get().body().size;
            if (got == 0) {
              continue;
            }
            if (sink) {
              Status st = sink->Write(chunk.data(), got);
              if (!st.ok()) {
                resp = route->RenderError(req, st.error());
                answered = true;
                keep_alive = false;
                break;
              }
            } else if (too_large || req.body.size() + got > limit) {
              too_large = true;
              discarded += got;
              req.body.clear();
            } else {
              req.body.append(chunk.data(), got);
            }
          }
          if (too_large) {
            resp = route->RenderError(
                req, Error{413, "RequestEntityTooLargeException",
                           "Request body is larger than the limit of " + std::to_string(limit) +
                               " bytes.",
                           {}});
            answered = true;
            keep_alive = false;
          }
        }
        if (!answered) {
          resp = co_await RunServe(route, req, sink.get());
        }
        sink.reset();
        resp.SetHeader("Server", "berth");
        co_await WriteResponse(stream, req, resp, keep_alive);
        if (!keep_alive) {
          break;
        }
      }
    } catch (const std::exception& e) {
      spdlog::debug("connection from {} closed: {}", remote, e.what());
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || server.stopped_) {
          co_return;
        }
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(acceptor.get_executor(), Session(std::move(socket)), asio::detached);
    }
  }
};

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      workers_(options_.worker_threads),
      impl_(std::make_unique<Impl>(*this)) {}

Server::~Server() { Stop(); }

void Server::AddRoute(std::shared_ptr<Route> route) { routes_.push_back(std::move(route)); }

Result<std::string> Server::Listen() {
  auto hp = SplitHostPort(options_.listen);
  if (!hp.ok()) {
    return hp.error();
  }
  beast::error_code ec;
  auto address = asio::ip::make_address(hp->first, ec);
  if (ec) {
    return ClientError("InvalidAddress", "invalid listen address " + options_.listen);
  }
  tcp::endpoint ep(address, hp->second);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return ClientError("ListenFailed", "cannot listen on " + options_.listen + ": " + ec.message());
  }
  auto local = acc.local_endpoint();
  std::string host = local.address().to_string();
  if (local.address().is_v6()) {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(local.port());
}

void Server::Start() {
  asio::co_spawn(io_, impl_->Accept(), asio::detached);
  for (int i = 0; i < options_.io_threads; ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

void Server::Stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  asio::post(io_, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  io_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  workers_.join();
}

}  // namespace berth::http
