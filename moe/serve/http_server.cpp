// The only translation unit that includes cpp-httplib.
#include "moe/serve/http_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/error.h"
#include "moe/serve/chat_page.h"
#include "moe/serve/openai_api.h"

namespace lookahead::moe::serve {

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
  httplib::Server svr;
  int64_t started = std::time(nullptr);
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};  // generation requests between submit and their last byte
  std::mutex counters_mu;
  std::map<int, uint64_t> responses_by_code;
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
    const auto& lim = engine.limits();
    const int threads =
        opt.http_threads > 0 ? opt.http_threads : static_cast<int>(lim.max_queue + lim.max_running + 8);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
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
          const std::string bearer = "Bearer ";
          const bool ok = auth.size() > bearer.size() && auth.compare(0, bearer.size(), bearer) == 0 &&
                          constant_time_equal(auth.substr(bearer.size()), opt.api_key);
          if (ok) return httplib::Server::HandlerResponse::Unhandled;
          send_error(res, ApiError(401, "invalid_request_error",
                                   auth.empty() ? "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
                                                : "Incorrect API key provided.",
                                   "", "invalid_api_key"));
          return httplib::Server::HandlerResponse::Handled;
        }));
    // Responses with an error status and no body of ours (unknown path, body too large, ...) get
    // OpenAI's error shape.
    svr.set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
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
      }
      http.active_requests = active;
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

  void generate(const httplib::Request& req, const std::string& body, httplib::Response& res, ApiKind kind) {
    if (draining) {
      send_error(res, ApiError(503, "server_error", "The server is shutting down.", "", "server_shutting_down"));
      return;
    }
    ApiRequest ar;
    try {
      ar = kind == ApiKind::CHAT ? parse_chat_request(body, api) : parse_completion_request(body, api);
    } catch (const ApiError& e) {
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
    g.on_token = [ch](const TokenEvent& e) { ch->push(e); };
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
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, ch, st, ar, id, created, rid](size_t, httplib::DataSink& sink) {
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
        },
        [this, st, rid](bool) {
          if (!st->finished) engine.cancel(rid);
          --active;
        });
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

}  // namespace lookahead::moe::serve
