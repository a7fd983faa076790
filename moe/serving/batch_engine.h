#pragma once
// The continuous-batching core of the Read-ME serving system (paper section 4).
// Requests go in, one batch runs per step(), generated tokens come out. No threads and no clock of
// its own: trace replay (moe/serving/replay.h) drives it on a virtual clock, ThreadedEngine
// (threaded_engine.h) on a worker thread for the HTTP server.
//
//   add(request):  the pre-gating router routes the prompt now, at arrival
//   step():        schedule a batch from every pending token's known expert (scheduler.h)
//                  -> tell the expert store the batch's exact slab accesses (and a prediction of the
//                     next batches) so Belady and prefetch see the future
//                  -> one BatchForward over all the batch's sequences (tokens grouped by expert)
//                  -> sample each sequence's next token and route it right away
//
// Contract:
//   - Model: a dense LlamaModel (readme == nullptr: every token "expert 0" for the scheduler, dense
//     FFN), or a Read-ME model whose experts are read through `experts` (the ReadMeModel itself, or
//     a TieredExperts over it, passed again as `tiers` so the engine can give it the access plan).
//     All are borrowed and must outlive the engine.
//   - add() validates and throws lookahead::Error naming the request: empty prompt, token outside the
//     vocabulary, prompt longer than the token budget (when prefills are not chunked) or than n_ctx,
//     prompt + max_tokens beyond n_ctx, a KV cache larger than the whole KV budget, duplicate id.
//   - KV memory: each admitted sequence gets a cache of prompt + max_tokens positions; a waiting
//     request is offered to the scheduler only while the caches of running and earlier-offered
//     sequences plus its own fit kv_budget_bytes (arrival order, so a big request is not overtaken
//     forever). Finished and cancelled sequences free theirs at once.
//   - Each step returns the tokens it generated (a prefill generates the first one) and the requests
//     that finished: LENGTH at max_tokens, STOP at an end-of-generation token (stop_at_eog; the token
//     is neither reported nor counted), CANCELLED by cancel().
//   - Deterministic for given requests and seeds (sampling is per request, seeded).
//   - Chunked prefill (prefill_chunk = C > 0, as vLLM's chunked prefill): a prompt is prefilled C
//     tokens per step, each chunk a prefill step the scheduler places like any other (the first
//     takes a sequence slot and the KV cache, the later ones are `admitted`), so a long prompt
//     neither needs a token budget as large as itself nor stalls the running decodes for a whole
//     prompt's forward pass. Only the chunk that ends the prompt samples a token.
//   - Prefix cache (prefix_cache = true; what llama-server's cache_prompt and vLLM's automatic
//     prefix caching do): the KV cache of a finished or cancelled sequence is kept, with the tokens
//     and routed experts it holds, while the KV budget has room; a new request whose prompt starts
//     with the same tokens (and, for Read-ME, the same experts, so the cached keys and values are
//     exactly what its own prefill would compute) copies that prefix's keys and values and prefills
//     only the rest (at least its last token, whose logits it needs). The scheduler sees the
//     shorter prefill. Kept caches are dropped least recently used first when running sequences
//     need the memory; one that is a prefix of a newer one is replaced by it.
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "moe/model/llama.h"
#include "moe/model/readme_model.h"
#include "moe/model/sampling.h"
#include "moe/serving/access_stream.h"
#include "moe/serving/serving_engine.h"
#include "moe/serving/scheduler.h"
#include "moe/serving/tiered_experts.h"

namespace lookahead::moe::serving {

struct BatchEngineOptions {
  SchedulerKind scheduler = SchedulerKind::EXPERT_AWARE;
  SchedulerLimits limits;          // token budget per batch, max running sequences, starvation limit
  int64_t n_ctx = 2048;            // most positions (prompt + output) of one sequence
  uint64_t kv_budget_bytes = 0;    // KV memory of all running sequences; 0 = max_running full contexts
  TensorType kv_type = TensorType::F32;
  std::string route = "router";    // Read-ME routing of every sequence (make_token_router's spec)
  int plan_horizon = 1;            // predicted batches after the current one in the expert plan
  bool prefix_cache = false;       // reuse finished sequences' KV caches for shared prompt prefixes
  int64_t prefill_chunk = 0;       // most prompt tokens one prefill step runs; 0 = whole prompts
};

struct EngineRequest {
  uint64_t id = 0;
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplingParams sampling;
  bool stop_at_eog = true;         // false: generate exactly max_tokens (trace replay)
};

struct GeneratedToken {
  uint64_t id = 0;
  int32_t token = -1;
};

struct FinishedRequest {
  uint64_t id = 0;
  FinishReason reason = FinishReason::NONE;
  int64_t prompt_tokens = 0;
  int64_t generated = 0;
};

// A prefill that took the first `tokens` of its prompt from the prefix cache.
struct CachedPrompt {
  uint64_t id = 0;
  int64_t tokens = 0;
};

struct StepReport {
  int64_t tokens = 0;              // tokens run through the model
  int64_t prefills = 0, decodes = 0;
  int64_t unique_experts = 0;      // distinct experts of the batch's tokens (dense: 1)
  int64_t cached_tokens = 0;       // prompt tokens the batch's prefills took from the prefix cache
  std::vector<CachedPrompt> cached_prompts;
  std::vector<GeneratedToken> generated;
  std::vector<FinishedRequest> finished;
};

// The route a model is served with: a Read-ME model's `route` ("router" when empty), "dense" for a
// dense model.
std::string serving_route(const ReadMeModel* readme, const std::string& route);

// Memory one running sequence may hold at n_ctx positions: its logits row and an F32 KV cache
// (K and V, every layer).
double sequence_memory_bytes(const LlamaHparams& hp, int64_t n_ctx);

class BatchEngine {
 public:
  BatchEngine(const LlamaModel& backbone, const ReadMeModel* readme, const ExpertWeights* experts,
              TieredExperts* tiers, std::set<int32_t> end_of_generation, const BatchEngineOptions& options);
  ~BatchEngine();

  void add(EngineRequest request);
  // Drops a waiting or running request and frees its KV cache; false if unknown.
  bool cancel(uint64_t id);
  // Runs one batch; an empty report when nothing is ready (idle, or every waiting request blocked).
  StepReport step();

  bool idle() const { return sequences_.empty(); }
  int64_t waiting() const;
  int64_t running() const;
  uint64_t kv_bytes_in_use() const { return kv_in_use_; }
  uint64_t kv_budget_bytes() const { return kv_budget_; }
  // KV memory held by the prefix cache (within the budget's room not used by running sequences).
  uint64_t prefix_cache_bytes() const { return prefix_bytes_; }
  int64_t prefix_cache_entries() const { return static_cast<int64_t>(prefix_pool_.size()); }
  const BatchEngineOptions& options() const { return opt_; }
  // Records every step's plan in `recorder` (which must be the `experts` the engine reads through,
  // so it also records the accesses); null stops recording. Borrowed.
  void set_recorder(StreamRecorder* recorder) { recorder_ = recorder; }
  // CPU time of the calling thread inside the pre-gating router (prompts at arrival in add(), each
  // sampled token in step()), so a loaded machine does not inflate the router's share.
  double router_seconds() const { return router_seconds_; }

 private:
  struct Sequence;
  struct PrefixEntry;
  uint64_t kv_bytes(int64_t positions) const;
  // The longest usable cached prefix of a waiting sequence's prompt: sets seq.reuse_entry/len.
  void match_prefix(Sequence& seq);
  // Where the prefill chunk starting at prompt position `from` ends.
  int64_t chunk_end(const Sequence& seq, int64_t from) const;
  void keep_prefix(Sequence& seq);
  void evict_prefixes();
  void route(Sequence& seq, const int32_t* tokens, int64_t n, int64_t pos0, int32_t* experts);
  std::vector<SlabKey> expert_plan(const Batch& batch, const std::vector<QueuedRequest>& queue) const;
  void release(Sequence& seq);

  const LlamaModel& backbone_;
  const ReadMeModel* readme_;
  const ExpertWeights* experts_;
  TieredExperts* tiers_;
  StreamRecorder* recorder_ = nullptr;
  std::set<int32_t> eog_;
  BatchEngineOptions opt_;
  uint64_t kv_budget_ = 0;
  uint64_t kv_in_use_ = 0;
  double router_seconds_ = 0;
  std::unique_ptr<BatchForward> forward_;
  std::vector<std::unique_ptr<Sequence>> sequences_;  // arrival order
  std::vector<std::unique_ptr<PrefixEntry>> prefix_pool_;
  uint64_t prefix_bytes_ = 0;
  uint64_t prefix_clock_ = 0;  // for least-recently-used eviction
  std::vector<float> logits_;
};

}  // namespace lookahead::moe::serving
