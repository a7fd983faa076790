#pragma once
// The OpenAI-compatible HTTP server (cpp-httplib) in front of a ServingEngine (moe/serving/serving_engine.h).
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions (stream: true -> server-sent events in
// OpenAI's chunk format ending with `data: [DONE]`), GET /v1/models[/ID], GET /health,
// GET /metrics (Prometheus text), GET / (the chat page). Request bodies: moe/http/openai_api.h.
//
// Contract:
//   - Every 4xx/5xx response has OpenAI's error body {"error": {message, type, param, code}}:
//     malformed JSON and wrong types 400, unknown model 404, max_tokens beyond the context 400
//     (code context_length_exceeded), bodies over max_body_bytes 413, unknown paths 404, a missing
//     or wrong API key 401 (when api_key is set; / and /health stay open), a full queue 429 at once
//     (code queue_full), a draining server 503, a request whose headers and body have not all
//     arrived within request_timeout 408 (the connection closes), a connection beyond
//     max_connections 503 at once (code too_many_connections). Each connection has its own thread,
//     so slow clients never hold up others (/health included) while under the cap. Bodies are JSON
//     whatever their declared Content-Type (a multipart form: 415).
//   - A streaming client that disconnects has its request cancelled (KV cache freed) within about
//     a token or a second (an SSE comment is sent every second while a request waits, to notice).
//   - shutdown() (from any thread, e.g. on SIGTERM): new requests get 503, in-flight requests
//     finish for up to drain_grace and are cancelled after it, then the listener closes and
//     serve() returns.
#include <chrono>
#include <memory>
#include <string>

#include "moe/serving/serving_engine.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (bind() returns it)
  std::string api_key;                   // empty: no authentication
  std::string model_id;                  // the name /v1/models reports and requests must use
  size_t max_body_bytes = 1 << 20;
  int64_t max_connections = 256;         // open connections, each with its own thread; more get 503
  std::chrono::milliseconds request_timeout{10000};  // for a request's headers and body to arrive; then 408
  std::chrono::milliseconds drain_grace{10000};
};

// The model id a server reports unless told one: a directory's name, a file's name without its
// extension.
std::string default_model_id(const std::string& model_path);

class HttpServer {
 public:
  // The engine and tokenizer must outlive the server.
  HttpServer(serving::ServingEngine& engine, const Tokenizer& tokenizer, HttpServerOptions options);
  ~HttpServer();
  // Binds the listening socket; returns the port. Throws lookahead::Error when it cannot.
  int bind();
  // Serves until shutdown() completes.
  void serve();
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lookahead::moe::http
