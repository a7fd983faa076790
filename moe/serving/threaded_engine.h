#pragma once
// ThreadedEngine: the ServingEngine (moe/serving/serving_engine.h) on the Read-ME serving core
// (moe/serving/batch_engine.h): continuous batching across all running requests, the selected
// scheduler (expert-aware, decode-first, prefill-first), each token routed before the backbone
// runs, experts read through the two-tier expert store when a cache policy is given. Dense models
// run through the same loop (one "expert").
//
// Threads: submit()/cancel()/drain()/metrics() may be called from any thread; they hand work to one
// worker thread that owns the BatchEngine (which is not thread-safe) and runs one batch per step.
// Capacity: waiting requests (accepted, not yet holding a KV cache) beyond max_queue + free
// sequence slots are refused with QUEUE_FULL at once. The KV cache budget is max_running full
// contexts unless given; caches are allocated per request (prompt + max_tokens) inside it.
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "moe/serving/serving_engine.h"
#include "moe/serving/text_stream.h"
#include "moe/serving/batch_engine.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe::serving {

struct ThreadedEngineOptions {
  BatchEngineOptions core;  // scheduler, token budget, max running, n_ctx, KV budget, route
  int64_t max_queue = 32;
};

class ThreadedEngine final : public ServingEngine {
 public:
  // Model, Read-ME model (may be null), expert weights, tiers (may be null) and tokenizer must outlive
  // the engine. Throws lookahead::Error on bad options.
  ThreadedEngine(const LlamaModel& backbone, const ReadMeModel* readme, const ExpertWeights* experts,
                 TieredExperts* tiers, const Tokenizer& tokenizer, const ThreadedEngineOptions& options);
  ~ThreadedEngine() override;

  const EngineLimits& limits() const override { return limits_; }
  SubmitResult submit(GenerationRequest request) override;
  bool cancel(uint64_t id) override;
  bool drain(std::chrono::milliseconds grace) override;
  void shutdown() override;
  EngineMetrics metrics() const override;

 private:
  struct Stream {  // what the worker keeps per request beyond the core's state
    GenerationRequest request;
    std::unique_ptr<TextStream> text;
    int64_t generated = 0;
    int64_t cached_tokens = 0;  // prompt tokens its prefill took from the prefix cache
  };
  void run();
  void emit(Stream& s, TokenEvent& event);
  void finish(uint64_t id, FinishReason reason, const std::string& error = {});
  void count_finish(uint64_t id, FinishReason reason);  // mu_ held
  void record_generated(int64_t n);                    // mu_ held
  void publish_occupancy();                            // mu_ held, worker thread

  const Tokenizer& tok_;
  TieredExperts* tiers_;
  ThreadedEngineOptions opt_;
  EngineLimits limits_;
  std::unique_ptr<BatchEngine> core_;          // worker thread only
  std::unordered_map<uint64_t, Stream> streams_;        // worker thread only

  mutable std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<GenerationRequest> inbox_;
  std::vector<uint64_t> cancels_;
  std::unordered_set<uint64_t> live_;  // accepted and not finished
  int64_t waiting_ = 0;   // accepted, not yet running (inbox + core's waiting)
  int64_t running_ = 0;
  bool draining_ = false, stopping_ = false, cancel_all_ = false;
  uint64_t next_id_ = 1;
  EngineMetrics m_;
  static constexpr int kRateWindow = 10;
  int64_t rate_sec_[kRateWindow] = {};
  int64_t rate_count_[kRateWindow] = {};
  std::chrono::steady_clock::time_point started_;
  std::thread worker_;
};

}  // namespace lookahead::moe::serving
