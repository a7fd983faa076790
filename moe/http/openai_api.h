#pragma once
// The OpenAI HTTP API's request and response bodies, without any HTTP: parsing and validation of
// /v1/completions and /v1/chat/completions requests, the JSON of responses, stream chunks and
// errors, and the Prometheus text of /metrics. Kept apart from the server so it is unit-tested.
//
// Contract:
//   - parse_*_request() either returns a request the engine accepts as far as the API can tell
//     (prompt tokenized, prompt + max_tokens within the context, token ids in the vocabulary) or
//     throws ApiError with the HTTP status and OpenAI's error fields (type, param, code) naming the
//     offending parameter. Unknown fields are ignored, as OpenAI's legacy endpoints do.
//   - Parameters: model (optional; must be the served model when given), max_tokens (alias
//     max_completion_tokens; null or absent: completions 16 as OpenAI, chat the rest of the
//     context), temperature [0, 2] (default 1), top_p (0, 1] (default 1), top_k >= 0 (extension;
//     0 = off), seed (integer), stop (string or up to 4 strings), n (only 1), stream (bool),
//     stream_options.include_usage (bool). Completions: prompt is a string, an array of one string,
//     or an array of token ids. Chat: messages [{role: system|user|assistant|developer, content:
//     string or [{type: "text", text}]}], rendered with the model's chat template.
//   - All JSON output replaces invalid UTF-8 with U+FFFD (the model may emit any bytes).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/model/sampling.h"
#include "moe/serving/serving_engine.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe::http {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;   // invalid_request_error, authentication_error, rate_limit_error, server_error, ...
  std::string param;  // the offending parameter; empty: null
  std::string code;   // e.g. context_length_exceeded, model_not_found; empty: null
};

// {"error": {"message", "type", "param", "code"}}
nlohmann::json error_json(const ApiError& e);
// The error body for an HTTP status with no body of our own (404 unknown path, 413, ...).
ApiError error_for_status(int status, const std::string& method, const std::string& path);

struct ApiContext {
  std::string model_id;        // the name /v1/models reports
  const Tokenizer* tokenizer = nullptr;
  int64_t n_ctx = 0;           // per-sequence context
  int32_t n_vocab = 0;
};

enum class ApiKind { COMPLETION, CHAT };

struct ApiRequest {
  ApiKind kind = ApiKind::COMPLETION;
  std::string model;                 // as reported back (the served model id)
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  bool seeded = false;               // seed given by the client
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
};

ApiRequest parse_completion_request(const std::string& body, const ApiContext& ctx);
ApiRequest parse_chat_request(const std::string& body, const ApiContext& ctx);

// Response bodies. `id` is "cmpl-..." / "chatcmpl-...", `created` Unix seconds.
nlohmann::json completion_response(const ApiRequest& r, const std::string& id, int64_t created, const std::string& text,
                                   serving::FinishReason finish, const serving::Usage& usage);
nlohmann::json usage_json(const serving::Usage& usage);
// One streamed chunk: `text` (or, for chat, the delta content; `role_delta` adds role:"assistant"),
// finish empty for none.
nlohmann::json stream_chunk(const ApiRequest& r, const std::string& id, int64_t created, const std::string* text,
                            bool role_delta, const char* finish);
// The last chunk with stream_options.include_usage: empty choices, usage.
nlohmann::json stream_usage_chunk(const ApiRequest& r, const std::string& id, int64_t created, const serving::Usage& usage);
// OpenAI's finish_reason for an engine finish: stop / length (cancelled and error never reach it).
const char* openai_finish_reason(serving::FinishReason reason);

// JSON text with invalid UTF-8 replaced.
std::string dump(const nlohmann::json& j);
// "data: {json}\n\n"
std::string sse_event(const nlohmann::json& j);

// /v1/models
nlohmann::json models_json(const std::string& model_id, int64_t created);

// A Prometheus histogram: cumulative counts of observations at or below each bound, their sum and
// count. observe() allocates nothing (it runs for every generated token).
struct Histogram {
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implied
  void observe(double value);
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // per bucket, not cumulative; the last is above every bound
  double sum = 0;
  uint64_t count = 0;
};

// Latencies as clients see them, in seconds: from a request's acceptance to its first generated
// token, between its successive tokens, and to its last event (whatever the outcome).
struct LatencyHistograms {
  LatencyHistograms();
  Histogram time_to_first_token;
  Histogram inter_token;
  Histogram request_duration;
};

// Prometheus text exposition of the engine metrics and HTTP responses by status code.
struct HttpCounters {
  std::vector<std::pair<int, uint64_t>> responses_by_code;  // (status, count), ascending status
  int64_t active_requests = 0;
  int64_t open_connections = 0;  // HTTP connections open now (limit: --max-connections)
  // Generation requests refused by the HTTP layer as invalid (400, 404 unknown model, 413, 415):
  // added to the engine's own invalid count.
  uint64_t requests_rejected_invalid = 0;
  uint64_t requests_rejected_draining = 0;  // refused while draining before reaching the engine
  LatencyHistograms latency;
};
std::string prometheus_text(const serving::EngineMetrics& m, const serving::EngineLimits& limits, const HttpCounters& http);

}  // namespace lookahead::moe::http
