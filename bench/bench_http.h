// What the benchmarks that drive berthd over HTTP share: a berthd process of the run's own on a
// free loopback port (stopped by its pid), the keys it wrote, a kept-alive client that signs
// each JSON 1.1 request with SigV4, and the machine-load line every benchmark prints.
#pragma once

#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "api/sigv4.h"
#include "server/http_types.h"

namespace berth::bench {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The p-th percentile (0-100) of `v`, nearest rank.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// The load average and the share of the last minute some task waited for a CPU: the figures
// a benchmark prints are only as good as the machine was quiet.
inline std::string MachineLoad() {
  double load[1] = {0};
  std::string text = getloadavg(load, 1) == 1 ? fmt::format("load {:.1f}", load[0]) : "";
  std::ifstream psi("/proc/pressure/cpu");
  std::string some;
  std::string avg10;
  std::string avg60;
  if (psi >> some >> avg10 >> avg60 && avg60.rfind("avg60=", 0) == 0) {
    text += fmt::format(", cpu pressure {}% (avg60)", avg60.substr(6));
  }
  return text;
}

// Turns SIGINT and SIGTERM into `flag`, which the benchmark's loops check, so an interrupted
// run still stops what it started and removes what it wrote.
inline void WatchSignals(std::atomic<bool>& flag, const char* name) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, &flag, name] {
    int sig = 0;
    sigwait(&set, &sig);
    flag = true;
    fmt::print(stderr, "{}: interrupted; cleaning up\n", name);
  }).detach();
}

// A berthd started for the run (`serve --no-agent` plus `extra_args`), logging into its data
// directory.
class BerthdProcess {
 public:
  BerthdProcess(std::string binary, std::string data_dir, std::vector<std::string> extra_args = {})
      : binary_(std::move(binary)),
        data_dir_(std::move(data_dir)),
        extra_args_(std::move(extra_args)) {}

  ~BerthdProcess() { Stop(); }

  BerthdProcess(const BerthdProcess&) = delete;
  BerthdProcess& operator=(const BerthdProcess&) = delete;

  bool Start(std::string* error) {
    port_ = FreePort();
    std::filesystem::create_directories(data_dir_);
    std::string listen = fmt::format("127.0.0.1:{}", port_);
    std::string log = data_dir_ + "/berthd.log";
    std::vector<std::string> args = {binary_,   "serve",      "--listen",    listen, "--data-dir",
                                     data_dir_, "--no-agent", "--log-level", "warn"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    pid_ = ::fork();
    if (pid_ < 0) {
      *error = std::string("fork: ") + std::strerror(errno);
      return false;
    }
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<char*> argv;
      for (auto& a : args) {
        argv.push_back(a.data());
      }
      argv.push_back(nullptr);
      ::execv(binary_.c_str(), argv.data());
      ::_exit(127);
    }
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        *error = "berthd exited at start; see its log";
        return false;
      }
      if (Healthy()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    *error = "berthd did not become healthy in 30 s";
    return false;
  }

  // SIGTERM to the berthd this run started, SIGKILL after 20 s.
  void Stop() {
    if (pid_ <= 0) {
      return;
    }
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(20);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
  }

  pid_t pid() const { return pid_; }
  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }
  std::string host() const { return fmt::format("127.0.0.1:{}", port_); }
  const std::string& data_dir() const { return data_dir_; }

 private:
  static int FreePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }

  bool Healthy() const {
    CURL* c = curl_easy_init();
    std::string url = endpoint() + "/_berth/health";
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    long status = 0;
    bool ok = curl_easy_perform(c) == CURLE_OK &&
              curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200;
    curl_easy_cleanup(c);
    return ok;
  }

  std::string binary_;
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  int port_ = 0;
  pid_t pid_ = -1;
};

struct Credentials {
  std::string access_key_id;
  std::string secret;
};

// Reads the [default] keys berthd wrote in the AWS CLI's credentials format.
inline bool ReadCredentials(const std::string& path, Credentials* out) {
  std::ifstream in(path);
  std::string line;
  auto value = [](const std::string& l) {
    std::string v = l.substr(l.find('=') + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r") + 1);
    return v;
  };
  while (std::getline(in, line)) {
    if (line.rfind("aws_access_key_id", 0) == 0) {
      out->access_key_id = value(line);
    } else if (line.rfind("aws_secret_access_key", 0) == 0) {
      out->secret = value(line);
    }
  }
  return !out->access_key_id.empty() && !out->secret.empty();
}

// One kept-alive connection to a JSON 1.1 API (`target_prefix` such as
// "AmazonEC2ContainerServiceV20141113", `service` the SigV4 name such as "ecs"). Every call is
// signed anew, as an SDK signs it.
class SignedJsonClient {
 public:
  SignedJsonClient(std::string endpoint, std::string host, Credentials creds,
                   std::string target_prefix, std::string service)
      : endpoint_(std::move(endpoint)),
        host_(std::move(host)),
        creds_(std::move(creds)),
        target_prefix_(std::move(target_prefix)),
        service_(std::move(service)),
        curl_(curl_easy_init()) {}

  ~SignedJsonClient() { curl_easy_cleanup(curl_); }

  SignedJsonClient(const SignedJsonClient&) = delete;
  SignedJsonClient& operator=(const SignedJsonClient&) = delete;

  // Sends one operation; true on HTTP 200. `response` gets the body either way.
  bool Call(const std::string& operation, std::string body, std::string* response) {
    http::Request req;
    req.method = "POST";
    req.target = "/";
    req.raw_path = "/";
    req.path = "/";
    req.headers["Host"] = host_;
    req.headers["Content-Type"] = "application/x-amz-json-1.1";
    req.headers["X-Amz-Target"] = target_prefix_ + "." + operation;
    req.body = std::move(body);
    api::SignSigV4(req, creds_.access_key_id, creds_.secret, "us-east-1", service_);

    curl_slist* headers = nullptr;
    for (const auto& [name, value] : req.headers) {
      headers = curl_slist_append(headers, (name + ": " + value).c_str());
    }
    headers = curl_slist_append(headers, "Expect:");
    response->clear();
    curl_easy_setopt(curl_, CURLOPT_URL, (endpoint_ + "/").c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_POST, 1L);
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    long status = Perform(response);
    curl_slist_free_all(headers);
    return status == 200;
  }

  // An unsigned GET of `path` on the same connection (the transport's floor); true on 200.
  bool Get(const std::string& path, std::string* response) {
    response->clear();
    curl_easy_setopt(curl_, CURLOPT_URL, (endpoint_ + path).c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
    return Perform(response) == 200;
  }

 private:
  long Perform(std::string* response) {
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl_);
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
      *response = curl_easy_strerror(rc);
      return 0;
    }
    return status;
  }

  static size_t Collect(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }

  std::string endpoint_;
  std::string host_;
  Credentials creds_;
  std::string target_prefix_;
  std::string service_;
  CURL* curl_;
};

}  // namespace berth::bench
