// The only translation unit that includes cpp-httplib.
#include "moe/http/http_server.h"

#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>

#include "common/error.h"
#include "moe/http/chat_page.h"
#include "moe/http/openai_api.h"

namespace lookahead::moe::http {

using serving::FinishReason;
using serving::GenerationRequest;
using serving::ServingEngine;
using serving::SubmitResult;
using serving::SubmitStatus;
using serving::TokenEvent;

using nlohmann::json;

namespace {

// Events from the engine thread to the HTTP thread that serves one request.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<TokenEvent> events;

  void push(const TokenEvent& e) {
    {
      std::lock_guard lk(mu);
      events.push_back(e);
    }
    cv.notify_one();
  }
  // Waits up to `timeout` for events and takes them all.
  std::deque<TokenEvent> take(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, timeout, [&] { return !events.empty(); });
    std::deque<TokenEvent> out;
    out.swap(events);
    return out;
  }
};

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(error_json(e)), "application/json");
}

using Clock = std::chrono::steady_clock;

// Per-connection state, seen by the handlers through a thread-local pointer: cpp-httplib runs a
// connection's requests, and their handlers and content providers, on the thread that owns it.
struct ConnectionState {
  bool close_after_response = false;  // the response's end is the connection's (no length, unread body)
  bool request_timed_out = false;     // the request did not arrive within request_timeout
};
thread_local ConnectionState* t_connection = nullptr;

void close_after_response() {
  if (t_connection) t_connection->close_after_response = true;
}

// Waits for `events` on `sock` until `until`, in slices so that `stop()` is noticed. 1: ready,
// 0: timed out or stopped, -1: error.
template <typename Stop>
int wait_socket(int sock, short events, Clock::time_point until, const Stop& stop) {
  while (true) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0 || stop()) return 0;
    pollfd pfd{sock, events, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 100)));
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

// A connection's socket as cpp-httplib's Stream, with a deadline for the whole request: reads
// (request line, headers, body) fail once it has passed, however steadily a slow client trickles
// bytes (cpp-httplib's own read timeout restarts with every byte).
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int sock, Clock::time_point deadline, std::chrono::milliseconds write_timeout,
                   const std::atomic<socket_t>& listener, ConnectionState& state)
      : sock_(sock), deadline_(deadline), write_timeout_(write_timeout), listener_(listener), state_(state) {}

  bool is_readable() const override {
    const int r = wait_socket(sock_, POLLIN, deadline_, [this] { return listener_ == INVALID_SOCKET; });
    if (r == 0 && listener_ != INVALID_SOCKET) state_.request_timed_out = true;  // not stopped: the deadline
    return r > 0;
  }
  bool is_writable() const override {
    if (wait_socket(sock_, POLLOUT, Clock::now() + write_timeout_, [] { return false; }) <= 0) return false;
    // Alive: nothing to read, or data (not an orderly close) waiting.
    pollfd pfd{sock_, POLLIN, 0};
    if (::poll(&pfd, 1, 0) == 0) return true;
    char c;
    return ::recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (off_ < len_) {
      const size_t n = std::min(size, len_ - off_);
      std::memcpy(ptr, buf_.data() + off_, n);
      off_ += n;
      return static_cast<ssize_t>(n);
    }
    if (!is_readable()) return -1;
    off_ = len_ = 0;
    if (size >= buf_.size()) return recv_some(ptr, size);
    const ssize_t n = recv_some(buf_.data(), buf_.size());
    if (n <= 0) return n;
    len_ = static_cast<size_t>(n);
    off_ = std::min(size, len_);
    std::memcpy(ptr, buf_.data(), off_);
    return static_cast<ssize_t>(off_);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  ssize_t recv_some(char* p, size_t n) {
    ssize_t r;
    do {
      r = ::recv(sock_, p, n, 0);
    } while (r < 0 && errno == EINTR);
    return r;
  }
  void address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int r = peer ? ::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len)
                       : ::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (r != 0) return;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), serv, sizeof(serv),
                      NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  int sock_;
  Clock::time_point deadline_;
  std::chrono::milliseconds write_timeout_;
  const std::atomic<socket_t>& listener_;
  ConnectionState& state_;
  std::array<char, 4096> buf_{};
  size_t off_ = 0, len_ = 0;
};

// One thread per connection, started at once: a connection never waits for a free thread, so slow
// clients cannot keep /health or any other request waiting (ConnectionServer caps how many there
// are). shutdown() waits for every connection to end.
class ConnectionThreads final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lk(mu_);
      ++running_;
    }
    try {
      std::thread([this, fn]() mutable {
        fn();
        std::lock_guard lk(mu_);
        --running_;
        cv_.notify_all();
      }).detach();
    } catch (const std::system_error&) {
      // No thread to be had: serve it here (the connection cap keeps this rare).
      fn();
      std::lock_guard lk(mu_);
      --running_;
    }
  }
  void shutdown() override {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return running_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t running_ = 0;
};

// cpp-httplib's Server with its connection loop replaced: at most `max_connections` open
// connections (more get 503 and are closed at once), a deadline of `request_timeout` for each
// request to arrive in full (headers and body; then 408 and the connection closes), idle
// keep-alive connections closed after `idle_timeout`.
class ConnectionServer final : public httplib::Server {
 public:
  int64_t max_connections = 256;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  std::function<void(int status)> on_refused;  // a connection refused before any request was read

  int64_t open_connections() const { return open_; }

 private:
  bool process_and_close_socket(socket_t sock) override {
    struct Close {
      ConnectionServer* self;
      socket_t sock;
      ~Close() {
        ::shutdown(sock, SHUT_RDWR);
        ::close(sock);
        --self->open_;
      }
    } close_at_end{this, sock};
    if (++open_ > max_connections) {
      refuse(sock);
      return false;
    }
    ConnectionState state;
    t_connection = &state;
    struct Reset {
      ~Reset() { t_connection = nullptr; }
    } reset;
    const auto stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
    bool ret = false;
    Clock::time_point wait_until = Clock::now() + request_timeout;  // the first request's bytes
    for (size_t left = keep_alive_max_count_; left > 0 && !stopping(); --left) {
      if (wait_socket(sock, POLLIN, wait_until, stopping) <= 0) break;
      state = ConnectionState{};
      // The request line may have started arriving during the wait: the deadline is counted from
      // the connection's start for the first request, from the first byte for later ones.
      const Clock::time_point deadline = left == keep_alive_max_count_ ? wait_until : Clock::now() + request_timeout;
      ConnectionStream strm(sock, deadline, write_timeout, svr_sock_, state);
      bool closed = false;
      ret = process_request(strm, left == 1, closed, nullptr);
      if (!ret || closed || state.close_after_response || state.request_timed_out) break;
      wait_until = Clock::now() + idle_timeout;
    }
    return ret;
  }

  void refuse(socket_t sock) {
    const std::string body = dump(error_json(ApiError(
        503, "server_error",
        fmt::format("The server has {} open connections, its limit (moe serve --max-connections); retry later.",
                    max_connections),
        "", "too_many_connections")));
    const std::string head = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n",
        body.size());
    const std::string msg = head + body;
    [[maybe_unused]] const ssize_t n = ::send(sock, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (on_refused) on_refused(503);
  }

  std::atomic<int64_t> open_{0};
};

// The credentials of "Authorization: Bearer TOKEN": the scheme is case-insensitive (RFC 9110
// 11.1), spaces around the token are not part of it.
bool bearer_token(const std::string& auth, std::string& token) {
  size_t i = auth.find_first_not_of(' ');
  if (i == std::string::npos) return false;
  static constexpr std::string_view scheme = "bearer";
  if (auth.size() < i + scheme.size() + 1) return false;
  for (size_t k = 0; k < scheme.size(); ++k)
    if (std::tolower(static_cast<unsigned char>(auth[i + k])) != scheme[k]) return false;
  i += scheme.size();
  if (auth[i] != ' ' && auth[i] != '\t') return false;
  i = auth.find_first_not_of(" \t", i);
  if (i == std::string::npos) return false;
  const size_t end = auth.find_last_not_of(" \t");
  token = auth.substr(i, end + 1 - i);
  return true;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

struct HttpServer::Impl {
  ServingEngine& engine;
  const Tokenizer& tok;
  HttpServerOptions opt;
  ApiContext api;
  ConnectionServer svr;
  int64_t started = std::time(nullptr);
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};  // generation requests between submit and their last byte
  std::mutex counters_mu;
  std::map<int, uint64_t> responses_by_code;
  uint64_t rejected_invalid = 0;   // generation requests refused here as invalid (400, 404, 413, 415)
  uint64_t rejected_draining = 0;  // ... and while draining, before reaching the engine
  // Taken on the engine thread once per token (observe() only); shared with the callbacks, which
  // may outlive the server.
  struct Latency {
    std::mutex mu;
    LatencyHistograms h;
  };
  std::shared_ptr<Latency> latency = std::make_shared<Latency>();
  std::mutex seed_mu;
  std::mt19937_64 seed_rng{std::random_device{}()};
  std::once_flag shutdown_once;
  int listen_sock = -1;  // the listening socket, seen through the socket-options hook

  Impl(ServingEngine& e, const Tokenizer& t, HttpServerOptions o) : engine(e), tok(t), opt(std::move(o)) {
    api.model_id = opt.model_id;
    api.tokenizer = &tok;
    api.n_ctx = engine.limits().n_ctx;
    api.n_vocab = engine.limits().n_vocab;
    routes();
  }

  void routes() {
    svr.new_task_queue = [] { return new ConnectionThreads; };
    svr.max_connections = opt.max_connections;
    svr.request_timeout = opt.request_timeout;
    svr.on_refused = [this](int status) {
      std::lock_guard lk(counters_mu);
      ++responses_by_code[status];
    };
    svr.set_payload_max_length(opt.max_body_bytes);
    // SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, which would let a second
    // server silently share a port that is in use.
    svr.set_socket_options([this](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_sock = sock;
    });
    svr.set_logger([this](const httplib::Request&, const httplib::Response& res) {
      std::lock_guard lk(counters_mu);
      ++responses_by_code[res.status];
    });
    svr.set_pre_routing_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          if (opt.api_key.empty() || req.path == "/" || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
          const std::string auth = req.get_header_value("Authorization");
          std::string token;
          if (bearer_token(auth, token) && constant_time_equal(token, opt.api_key))
            return httplib::Server::HandlerResponse::Unhandled;
          send_error(res, ApiError(401, "invalid_request_error",
                                   auth.empty() ? "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
                                                : "Incorrect API key provided.",
                                   "", "invalid_api_key"));
          return httplib::Server::HandlerResponse::Handled;
        }));
    // Responses with an error status and no body of ours (unknown path, body too large, ...) get
    // OpenAI's error shape.
    svr.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          if (t_connection && t_connection->request_timed_out) {
            send_error(res, ApiError(408, "invalid_request_error",
                                     fmt::format("The request did not arrive within {} s (moe serve "
                                                 "--request-timeout): send its headers and body without pauses.",
                                                 opt.request_timeout.count() / 1000.0),
                                     "", "request_timeout"));
            return httplib::Server::HandlerResponse::Handled;
          }
          if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
          send_error(res, error_for_status(res.status, req.method, req.path));
          return httplib::Server::HandlerResponse::Handled;
        }));
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, ApiError(500, "server_error", "Internal server error: " + what));
    });

    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      const auto page = chat_page_html();
      res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (draining) {
        res.status = 503;
        res.set_content(R"({"status":"draining"})", "application/json");
      } else {
        res.set_content(R"({"status":"ok"})", "application/json");
      }
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      HttpCounters http;
      {
        std::lock_guard lk(counters_mu);
        for (const auto& [code, n] : responses_by_code) http.responses_by_code.emplace_back(code, n);
        http.requests_rejected_invalid = rejected_invalid;
        http.requests_rejected_draining = rejected_draining;
      }
      {
        std::lock_guard lk(latency->mu);
        http.latency = latency->h;
      }
      http.active_requests = active;
      http.open_connections = svr.open_connections();
      res.set_content(prometheus_text(engine.metrics(), engine.limits(), http), "text/plain; version=0.0.4");
    });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(models_json(opt.model_id, started)), "application/json");
    });
    svr.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.matches[1];
      if (id != opt.model_id) {
        send_error(res, ApiError(404, "invalid_request_error", "The model '" + id + "' does not exist.", "model",
                                 "model_not_found"));
        return;
      }
      res.set_content(dump(models_json(opt.model_id, started)["data"][0]), "application/json");
    });
    // The generation endpoints read their bodies themselves: cpp-httplib's own reading refuses a
    // form-encoded body (curl -d's default Content-Type) over 8 KiB whatever the payload limit.
    svr.Post("/v1/completions",
             [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
               std::string body;
               if (read_body(req, res, reader, body)) generate(req, body, res, ApiKind::COMPLETION);
             });
    svr.Post("/v1/chat/completions",
             [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
               std::string body;
               if (read_body(req, res, reader, body)) generate(req, body, res, ApiKind::CHAT);
             });
  }

  // The request body, up to max_body_bytes, whatever Content-Type it declares (it is parsed as JSON
  // in any case); a multipart form is refused with 415. False: an error response is set.
  bool read_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
                 std::string& body) {
    if (req.is_multipart_form_data()) {
      // Consume the form so the connection stays in step, then refuse it.
      reader([](const httplib::MultipartFormData&) { return true; }, [](const char*, size_t) { return true; });
      count_invalid();
      send_error(res, ApiError(415, "invalid_request_error",
                               fmt::format("Unsupported Content-Type '{}': send the request as a JSON body "
                                           "(Content-Type: application/json).",
                                           req.get_header_value("Content-Type")),
                               "", "unsupported_media_type"));
      return false;
    }
    // cpp-httplib checks Content-Length against the limit; a chunked body is counted here.
    bool too_large = false;
    const bool ok = reader([&](const char* data, size_t n) {
      if (body.size() + n > opt.max_body_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (ok) return true;
    close_after_response();  // the rest of the body is unread
    if (t_connection && t_connection->request_timed_out) {
      res.status = 408;  // the error handler says so
      return false;
    }
    count_invalid();
    if (too_large || res.status == 413)
      send_error(res, ApiError(413, "invalid_request_error",
                               fmt::format("The request body is larger than this server's limit of {} bytes "
                                           "(moe serve --max-body).",
                                           opt.max_body_bytes),
                               "", "request_too_large"));
    else
      send_error(res, ApiError(400, "invalid_request_error", "The request body could not be read (malformed "
                               "Content-Length or chunked encoding, or the client stopped sending).", "",
                               "bad_request"));
    return false;
  }

  void count_invalid() {
    std::lock_guard lk(counters_mu);
    ++rejected_invalid;
  }

  void generate(const httplib::Request& req, const std::string& body, httplib::Response& res, ApiKind kind) {
    if (draining) {
      {
        std::lock_guard lk(counters_mu);
        ++rejected_draining;
      }
      send_error(res, ApiError(503, "server_error", "The server is shutting down.", "", "server_shutting_down"));
      return;
    }
    ApiRequest ar;
    try {
      ar = kind == ApiKind::CHAT ? parse_chat_request(body, api) : parse_completion_request(body, api);
    } catch (const ApiError& e) {
      count_invalid();
      const std::string type = req.get_header_value("Content-Type");
      if (e.code == "invalid_json" && !type.empty() && type.find("json") == std::string::npos) {
        // Say what the server expected: the declared type is not the problem, the body is.
        send_error(res, ApiError(e.status, e.type,
                                 std::string(e.what()) + fmt::format(" (The body must be JSON; it was declared as "
                                                                     "'{}'.)", type),
                                 e.param, e.code));
      } else {
        send_error(res, e);
      }
      return;
    }
    if (!ar.seeded) {
      std::lock_guard lk(seed_mu);
      ar.sampling.seed = seed_rng();
    }
    auto ch = std::make_shared<Channel>();
    GenerationRequest g;
    g.prompt = ar.prompt;
    g.sampling = ar.sampling;
    g.max_tokens = ar.max_tokens;
    g.stop = ar.stop;
    // Latencies, stamped on the engine's thread as each event is delivered (events of one request
    // come one at a time, in order).
    struct Timing {
      Clock::time_point accepted, last_token;
      bool any_token = false;
    };
    auto timing = std::make_shared<Timing>();
    g.on_token = [lat = latency, ch, timing](const TokenEvent& e) {
      const auto now = Clock::now();
      {
        std::lock_guard lk(lat->mu);
        if (e.token >= 0) {
          const auto since = timing->any_token ? timing->last_token : timing->accepted;
          (timing->any_token ? lat->h.inter_token : lat->h.time_to_first_token)
              .observe(std::chrono::duration<double>(now - since).count());
          timing->any_token = true;
          timing->last_token = now;
        }
        if (e.finish != FinishReason::NONE)
          lat->h.request_duration.observe(std::chrono::duration<double>(now - timing->accepted).count());
      }
      ch->push(e);
    };
    timing->accepted = Clock::now();
    ++active;
    const SubmitResult sub = engine.submit(std::move(g));
    switch (sub.status) {
      case SubmitStatus::ACCEPTED: break;
      case SubmitStatus::QUEUE_FULL:
        --active;
        send_error(res, ApiError(429, "rate_limit_error", "The server is busy: " + sub.message + "; retry later.", "",
                                 "queue_full"));
        res.set_header("Retry-After", "1");
        return;
      case SubmitStatus::DRAINING:
        --active;
        send_error(res, ApiError(503, "server_error", "The server is shutting down.", "", "server_shutting_down"));
        return;
      case SubmitStatus::INVALID:
        --active;
        send_error(res, ApiError(400, "invalid_request_error", sub.message, "", "invalid_value"));
        return;
    }
    const uint64_t rid = sub.id;
    const std::string id = fmt::format("{}-{:x}{:06x}", kind == ApiKind::CHAT ? "chatcmpl" : "cmpl", started, rid);
    const int64_t created = std::time(nullptr);
    if (!ar.stream) {
      std::string text;
      TokenEvent last;
      while (last.finish == FinishReason::NONE) {
        for (auto& e : ch->take(std::chrono::milliseconds(1000))) {
          text += e.text;
          last = std::move(e);
        }
      }
      --active;
      if (last.finish == FinishReason::CANCELLED) {
        send_error(res, ApiError(503, "server_error", "The request was cancelled: the server is shutting down.", "",
                                 "server_shutting_down"));
      } else if (last.finish == FinishReason::ERROR) {
        send_error(res, ApiError(500, "server_error", "Generation failed: " + last.error));
      } else {
        res.set_content(dump(completion_response(ar, id, created, text, last.finish, last.usage)), "application/json");
      }
      return;
    }
    struct StreamState {
      bool started = false;
      bool finished = false;
    };
    auto st = std::make_shared<StreamState>();
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto provider = [this, ch, st, ar, id, created, rid](size_t, httplib::DataSink& sink) {
      std::string out;
      if (!st->started && ar.kind == ApiKind::CHAT) {
        const std::string empty;
        out += sse_event(stream_chunk(ar, id, created, &empty, true, nullptr));
      }
      st->started = true;
      std::deque<TokenEvent> events;
      if (out.empty()) events = ch->take(std::chrono::milliseconds(1000));
      if (out.empty() && events.empty()) out = ": waiting\n\n";  // notices a client that left
      for (const auto& e : events) {
        if (!e.text.empty()) out += sse_event(stream_chunk(ar, id, created, &e.text, false, nullptr));
        if (e.finish == FinishReason::NONE) continue;
        st->finished = true;
        if (e.finish == FinishReason::STOP || e.finish == FinishReason::LENGTH) {
          out += sse_event(stream_chunk(ar, id, created, nullptr, false, openai_finish_reason(e.finish)));
          if (ar.include_usage) out += sse_event(stream_usage_chunk(ar, id, created, e.usage));
        } else {
          const ApiError err = e.finish == FinishReason::ERROR
                                   ? ApiError(500, "server_error", "Generation failed: " + e.error)
                                   : ApiError(503, "server_error", "The request was cancelled: the server is "
                                              "shutting down.", "", "server_shutting_down");
          out += sse_event(error_json(err));
        }
        out += "data: [DONE]\n\n";
      }
      // Tokens whose text is held back (a possible stop string, an incomplete UTF-8 character)
      // leave nothing to send: a zero-byte write would end cpp-httplib's chunked stream (an empty
      // chunk is its terminator) and count the request as cancelled, so wait for more instead.
      if (out.empty()) return true;
      if (!sink.write(out.data(), out.size())) {
        engine.cancel(rid);  // the client left
        return false;
      }
      if (st->finished) sink.done();
      return true;
    };
    auto release = [this, st, rid](bool) {
      if (!st->finished) engine.cancel(rid);
      --active;
    };
    if (req.version == "HTTP/1.0") {
      // HTTP/1.0 has no chunked encoding: the stream's end is the connection's.
      res.set_header("Connection", "close");
      close_after_response();
      res.set_content_provider("text/event-stream", std::move(provider), std::move(release));
    } else {
      res.set_chunked_content_provider("text/event-stream", std::move(provider), std::move(release));
    }
  }

  void shutdown() {
    std::call_once(shutdown_once, [this] {
      draining = true;
      engine.drain(opt.drain_grace);
      // Let handlers write their last bytes before the listener (and open streams) close.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (active > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      svr.stop();
    });
  }
};

HttpServer::HttpServer(ServingEngine& engine, const Tokenizer& tokenizer, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(engine, tokenizer, std::move(options))) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  auto& o = impl_->opt;
  if (o.port < 0 || o.port > 65535) fail("--port: {} is not a TCP port (0..65535)", o.port);
  if (o.port == 0) {
    const int port = impl_->svr.bind_to_any_port(o.host);
    if (port <= 0) fail("cannot listen on {} (any port)", o.host);
    o.port = port;
  } else if (!impl_->svr.bind_to_port(o.host, o.port)) {
    fail("cannot listen on {}:{} (address in use, or not an address of this machine)", o.host, o.port);
  }
  // cpp-httplib 0.11 listens with a backlog of 5 (compiled into Debian's library): a burst of new
  // connections from many clients overflows it and some are reset. Listening again on the same
  // socket raises the backlog.
  if (impl_->listen_sock >= 0) ::listen(impl_->listen_sock, 1024);
  return o.port;
}

void HttpServer::serve() { impl_->svr.listen_after_bind(); }

void HttpServer::shutdown() { impl_->shutdown(); }

std::string default_model_id(const std::string& model_path) {
  std::filesystem::path p(model_path);
  if (!p.has_filename()) p = p.parent_path();
  return std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
}

}  // namespace lookahead::moe::http
