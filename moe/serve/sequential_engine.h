#pragma once
// SequentialEngine: the ServingEngine (moe/serve/engine.h) on today's dense engine, until the
// Read-ME serving engine of issue #5 replaces it. One worker thread; a bounded FIFO queue; up to
// max_running sequences, each with its own LlamaContext allocated once at construction (so the KV
// cache limit is n_ctx x max_running and memory does not grow with traffic).
//
// Scheduling: each engine step gives every running sequence one turn: a prefill chunk (at most
// prefill_chunk prompt tokens; the first token is sampled when the prompt is done) or one decode
// token. Sequences do not share a forward pass (no batching across sequences: that is #5's job).
// Admission is first come, first served, whenever a sequence slot is free.
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "moe/model/llama.h"
#include "moe/serve/engine.h"
#include "moe/serve/text_stream.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe::serve {

struct SequentialEngineOptions {
  int64_t n_ctx = 2048;        // per sequence
  int64_t max_running = 4;
  int64_t max_queue = 32;
  int64_t prefill_chunk = 128; // prompt tokens per sequence per step
  TensorType kv_type = TensorType::F32;
  // Called once for each sequence slot's context, e.g. to attach a Read-ME model's router and
  // experts (LoadedModel::attach); empty = dense.
  std::function<void(LlamaContext&)> prepare_context;
};

class SequentialEngine final : public ServingEngine {
 public:
  // The model and tokenizer must outlive the engine. Throws lookahead::Error on bad options.
  SequentialEngine(const LlamaModel& model, const Tokenizer& tokenizer, const SequentialEngineOptions& options);
  ~SequentialEngine() override;

  const EngineLimits& limits() const override { return limits_; }
  SubmitResult submit(GenerationRequest request) override;
  bool cancel(uint64_t id) override;
  bool drain(std::chrono::milliseconds grace) override;
  void shutdown() override;
  EngineMetrics metrics() const override;

 private:
  struct Sequence {
    GenerationRequest request;
    bool cancel_requested = false;
    // Running state (valid once admitted to a slot).
    int64_t prompt_fed = 0;
    int32_t next_token = -1;  // sampled, not yet fed
    int64_t generated = 0;
    std::optional<Sampler> sampler;
    std::optional<TextStream> text;
  };
  struct Slot {
    std::unique_ptr<LlamaContext> ctx;
    std::unique_ptr<Sequence> seq;  // null: free
  };

  void run();
  // One turn of a running sequence; returns tokens run through the model.
  int64_t step(Slot& slot);
  // Delivers the final event and frees the slot's sequence.
  void finish(Slot& slot, FinishReason reason, const std::string& error = {});
  void finish_queued(Sequence& seq, FinishReason reason);
  void emit(Sequence& seq, TokenEvent& event);
  void count_finish(FinishReason reason);
  void record_generated(int64_t n);

  const Tokenizer& tok_;
  SequentialEngineOptions opt_;
  EngineLimits limits_;
  std::vector<Slot> slots_;  // touched only by the worker thread (after construction)

  mutable std::mutex mu_;
  std::condition_variable wake_;     // worker: work arrived, cancel, stop
  std::condition_variable idle_;     // drain(): queue and slots empty
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::vector<uint64_t> running_ids_;  // ids in slots (for cancel lookups), guarded by mu_
  std::vector<uint64_t> cancels_;      // cancel requests for running sequences
  bool draining_ = false;
  bool stopping_ = false;
  bool cancel_all_ = false;
  uint64_t next_id_ = 1;
  EngineMetrics m_;
  // Generated tokens per wall-clock second, last 10 seconds.
  static constexpr int kRateWindow = 10;
  int64_t rate_sec_[kRateWindow] = {};
  int64_t rate_count_[kRateWindow] = {};
  std::chrono::steady_clock::time_point started_;
  std::thread worker_;
};

}  // namespace lookahead::moe::serve
