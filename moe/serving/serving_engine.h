#pragma once
// The serving-engine interface the HTTP server drives: requests go in, tokens come out through a
// per-request callback. Implemented by ThreadedEngine (moe/serving/threaded_engine.h): the Read-ME
// serving core (continuous batching, expert-aware scheduling, expert cache across memory tiers) on
// a worker thread.
//
// Contract:
//   - submit() never blocks on generation: it validates, queues and returns ACCEPTED, or refuses at
//     once with QUEUE_FULL (the waiting queue holds max_queue requests), DRAINING (drain() or
//     shutdown() was called) or INVALID (empty prompt, prompt + max_tokens beyond the per-sequence
//     context, token id outside the vocabulary; `message` names the field). A refused request's
//     callback is never called.
//   - For an accepted request, on_token is called from the engine's thread (never from submit()'s
//     caller), in order: zero or more events with a generated token (finish == NONE), then exactly
//     one final event (finish != NONE, token == -1) after which it is never called again. `text`
//     is the decoded text that became final with the event: complete UTF-8 only, and with any
//     possible prefix of a stop string held back until it is known not to be one; a matched stop
//     string and everything after it are never sent. The final event may carry the held-back text.
//     Callbacks must be quick and must not block; they may call cancel(). Exceptions thrown from a
//     callback are swallowed (the request is then cancelled).
//   - Finish reasons: STOP (end-of-generation token or stop string), LENGTH (max_tokens, or the
//     sequence's context is full), CANCELLED (cancel(), or drain()'s grace ran out, or shutdown()),
//     ERROR (the model failed; `error` says why). Usage counts prompt and generated tokens (the
//     end-of-generation token is not counted, as OpenAI does).
//   - cancel(id) may be called from any thread, for a queued or running request; it returns false
//     if the id is unknown or already finished. The request's KV cache is released before its
//     final CANCELLED event is delivered.
//   - drain(grace) stops accepting, lets queued and running requests finish for up to `grace`,
//     cancels what is left, and returns true if nothing had to be cancelled. shutdown() cancels
//     everything and stops the engine thread; it is idempotent and run by the destructor.
//   - metrics() is a consistent snapshot, callable from any thread at any time.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moe/model/sampling.h"

namespace lookahead::moe::serving {

enum class FinishReason { NONE, STOP, LENGTH, CANCELLED, ERROR };
// "none", "stop", "length", "cancelled", "error"
const char* finish_reason_name(FinishReason reason);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;       // of prompt_tokens, taken from the prefix cache (not prefilled)
};

struct TokenEvent {
  uint64_t request_id = 0;
  int32_t token = -1;      // the generated token id; -1 in the final event
  std::string text;        // text made final by this event (may be empty)
  FinishReason finish = FinishReason::NONE;
  Usage usage;             // counts so far; complete in the final event
  std::string error;       // why, when finish == ERROR
};

using TokenCallback = std::function<void(const TokenEvent&)>;

struct GenerationRequest {
  uint64_t id = 0;                  // 0: the engine assigns one (returned by submit)
  std::vector<int32_t> prompt;      // token ids, BOS included when the model wants one
  SamplingParams sampling;          // temperature, top_k, top_p, seed (moe/model/sampling.h)
  int64_t max_tokens = 16;          // most generated tokens, >= 1
  std::vector<std::string> stop;    // stop strings (non-empty), excluded from the output
  TokenCallback on_token;
};

enum class SubmitStatus { ACCEPTED, QUEUE_FULL, DRAINING, INVALID };

struct SubmitResult {
  SubmitStatus status = SubmitStatus::ACCEPTED;
  uint64_t id = 0;
  std::string message;  // why, when not ACCEPTED
};

struct EngineLimits {
  int64_t n_ctx = 0;          // context (prompt + generated tokens) of one sequence
  int64_t max_running = 0;    // sequences holding a KV cache at once
  int64_t max_queue = 0;      // requests waiting for a sequence slot
  int32_t n_vocab = 0;
};

struct EngineMetrics {
  // Requests by outcome: accepted by submit(), refused, and finished by reason.
  uint64_t requests_accepted = 0;
  uint64_t requests_rejected_queue_full = 0;
  uint64_t requests_rejected_draining = 0;
  uint64_t requests_rejected_invalid = 0;
  uint64_t requests_finished_stop = 0;
  uint64_t requests_finished_length = 0;
  uint64_t requests_cancelled = 0;
  uint64_t requests_failed = 0;
  int64_t queue_depth = 0;           // waiting requests now
  int64_t running_sequences = 0;     // sequences holding a KV cache now
  int64_t batch_size = 0;            // tokens the last engine step ran through the model
  double tokens_per_second = 0;      // generated tokens per second over the last ~10 s
  uint64_t prompt_tokens_total = 0;
  uint64_t prompt_tokens_cached_total = 0;  // of those, taken from the prefix cache
  uint64_t generated_tokens_total = 0;
  uint64_t kv_cache_bytes = 0;       // KV cache memory reserved (the limit)
  // Expert cache (the Read-ME engine); zero for engines without one.
  double cache_hit_ratio = 0;
  uint64_t slow_tier_bytes = 0;
};

class ServingEngine {
 public:
  virtual ~ServingEngine() = default;
  virtual const EngineLimits& limits() const = 0;
  virtual SubmitResult submit(GenerationRequest request) = 0;
  virtual bool cancel(uint64_t id) = 0;
  virtual bool drain(std::chrono::milliseconds grace) = 0;
  virtual void shutdown() = 0;
  virtual EngineMetrics metrics() const = 0;
};

}  // namespace lookahead::moe::serving
