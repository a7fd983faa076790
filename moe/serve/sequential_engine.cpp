#include "moe/serve/sequential_engine.h"

#include <algorithm>

#include "common/error.h"

namespace lookahead::moe::serve {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::NONE: return "none";
    case FinishReason::STOP: return "stop";
    case FinishReason::LENGTH: return "length";
    case FinishReason::CANCELLED: return "cancelled";
    case FinishReason::ERROR: return "error";
  }
  return "none";
}

SequentialEngine::SequentialEngine(const LlamaModel& model, const Tokenizer& tokenizer,
                                   const SequentialEngineOptions& options)
    : tok_(tokenizer), opt_(options) {
  if (opt_.n_ctx < 2) fail("serving engine: context size must be >= 2 tokens (got {})", opt_.n_ctx);
  if (opt_.max_running < 1) fail("serving engine: max running sequences must be >= 1 (got {})", opt_.max_running);
  if (opt_.max_queue < 0) fail("serving engine: max queue must be >= 0 (got {})", opt_.max_queue);
  if (opt_.prefill_chunk < 1) fail("serving engine: prefill chunk must be >= 1 (got {})", opt_.prefill_chunk);
  limits_.n_ctx = opt_.n_ctx;
  limits_.max_running = opt_.max_running;
  limits_.max_queue = opt_.max_queue;
  limits_.n_vocab = model.hparams().n_vocab;
  ContextOptions copt;
  copt.n_ctx = opt_.n_ctx;
  copt.n_batch = std::min(opt_.prefill_chunk, opt_.n_ctx);
  copt.kv_type = opt_.kv_type;
  // The whole KV cache limit is reserved up front: traffic never grows memory.
  slots_.resize(static_cast<size_t>(opt_.max_running));
  for (auto& s : slots_) {
    s.ctx = std::make_unique<LlamaContext>(model, copt);
    if (opt_.prepare_context) opt_.prepare_context(*s.ctx);
  }
  const auto& hp = model.hparams();
  const uint64_t elem = opt_.kv_type == TensorType::F16 ? 2 : 4;
  m_.kv_cache_bytes = 2ull * static_cast<uint64_t>(hp.n_layer) * static_cast<uint64_t>(opt_.n_ctx) *
                      static_cast<uint64_t>(hp.n_head_kv) * static_cast<uint64_t>(hp.head_dim) * elem *
                      static_cast<uint64_t>(opt_.max_running);
  started_ = std::chrono::steady_clock::now();
  worker_ = std::thread([this] { run(); });
}

SequentialEngine::~SequentialEngine() { shutdown(); }

SubmitResult SequentialEngine::submit(GenerationRequest request) {
  SubmitResult r;
  auto invalid = [&](std::string message) {
    ++m_.requests_rejected_invalid;
    r.status = SubmitStatus::INVALID;
    r.message = std::move(message);
    return r;
  };
  std::lock_guard lk(mu_);
  if (draining_ || stopping_) {
    ++m_.requests_rejected_draining;
    r.status = SubmitStatus::DRAINING;
    r.message = "the server is shutting down";
    return r;
  }
  const auto n_prompt = static_cast<int64_t>(request.prompt.size());
  if (n_prompt == 0) return invalid("prompt: empty (no tokens)");
  for (int32_t t : request.prompt)
    if (t < 0 || t >= limits_.n_vocab)
      return invalid(fmt::format("prompt: token id {} is outside the vocabulary [0, {})", t, limits_.n_vocab));
  if (request.max_tokens < 1) return invalid(fmt::format("max_tokens: must be >= 1 (got {})", request.max_tokens));
  if (n_prompt + request.max_tokens > limits_.n_ctx)
    return invalid(fmt::format("max_tokens: {} prompt tokens + {} max_tokens exceed the context of {} tokens", n_prompt,
                               request.max_tokens, limits_.n_ctx));
  if (!request.on_token) return invalid("on_token: no callback");
  // Capacity: free sequence slots plus max_queue waiting requests.
  const auto free_slots = limits_.max_running - static_cast<int64_t>(running_ids_.size());
  if (static_cast<int64_t>(queue_.size()) >= limits_.max_queue + std::max<int64_t>(free_slots, 0)) {
    ++m_.requests_rejected_queue_full;
    r.status = SubmitStatus::QUEUE_FULL;
    r.message = fmt::format("the request queue is full ({} waiting, {} running)", queue_.size(), running_ids_.size());
    return r;
  }
  if (request.id == 0) request.id = next_id_++;
  r.id = request.id;
  auto seq = std::make_unique<Sequence>();
  seq->request = std::move(request);
  queue_.push_back(std::move(seq));
  ++m_.requests_accepted;
  m_.queue_depth = static_cast<int64_t>(queue_.size());
  wake_.notify_one();
  return r;
}

bool SequentialEngine::cancel(uint64_t id) {
  std::lock_guard lk(mu_);
  bool known = std::find(running_ids_.begin(), running_ids_.end(), id) != running_ids_.end();
  for (auto& q : queue_) known = known || q->request.id == id;
  if (!known || std::find(cancels_.begin(), cancels_.end(), id) != cancels_.end()) return false;
  cancels_.push_back(id);
  wake_.notify_one();
  return true;
}

bool SequentialEngine::drain(std::chrono::milliseconds grace) {
  std::unique_lock lk(mu_);
  draining_ = true;
  auto empty = [&] { return queue_.empty() && running_ids_.empty(); };
  if (idle_.wait_for(lk, grace, empty)) return true;
  cancel_all_ = true;
  wake_.notify_one();
  idle_.wait(lk, [&] { return empty() || !worker_.joinable(); });
  return false;
}

void SequentialEngine::shutdown() {
  {
    std::lock_guard lk(mu_);
    draining_ = true;
    stopping_ = true;
    cancel_all_ = true;
    wake_.notify_one();
  }
  if (worker_.joinable()) worker_.join();
}

EngineMetrics SequentialEngine::metrics() const {
  std::lock_guard lk(mu_);
  EngineMetrics m = m_;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const auto sec = static_cast<int64_t>(elapsed);
  int64_t tokens = 0;
  for (int i = 0; i < kRateWindow; ++i)
    if (rate_sec_[i] > sec - kRateWindow && rate_sec_[i] <= sec) tokens += rate_count_[i];
  m.tokens_per_second = static_cast<double>(tokens) / std::clamp(elapsed, 1.0, static_cast<double>(kRateWindow));
  return m;
}

void SequentialEngine::record_generated(int64_t n) {
  // Caller holds mu_.
  const auto sec =
      static_cast<int64_t>(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  const int i = static_cast<int>(sec % kRateWindow);
  if (rate_sec_[i] != sec) {
    rate_sec_[i] = sec;
    rate_count_[i] = 0;
  }
  rate_count_[i] += n;
  m_.generated_tokens_total += static_cast<uint64_t>(n);
}

void SequentialEngine::count_finish(FinishReason reason) {
  // Caller holds mu_.
  switch (reason) {
    case FinishReason::STOP: ++m_.requests_finished_stop; break;
    case FinishReason::LENGTH: ++m_.requests_finished_length; break;
    case FinishReason::CANCELLED: ++m_.requests_cancelled; break;
    case FinishReason::ERROR: ++m_.requests_failed; break;
    case FinishReason::NONE: break;
  }
}

void SequentialEngine::emit(Sequence& seq, TokenEvent& event) {
  event.request_id = seq.request.id;
  event.usage.prompt_tokens = static_cast<int64_t>(seq.request.prompt.size());
  event.usage.completion_tokens = seq.generated;
  try {
    seq.request.on_token(event);
  } catch (...) {
    seq.cancel_requested = true;  // a broken consumer: stop generating for it
  }
}

void SequentialEngine::finish_queued(Sequence& seq, FinishReason reason) {
  {
    std::lock_guard lk(mu_);
    count_finish(reason);
  }
  TokenEvent ev;
  ev.finish = reason;
  emit(seq, ev);
}

void SequentialEngine::finish(Slot& slot, FinishReason reason, const std::string& error) {
  std::unique_ptr<Sequence> seq = std::move(slot.seq);
  slot.ctx->truncate(0);  // the KV cache is free for the next sequence
  TokenEvent ev;
  ev.finish = reason;
  ev.error = error;
  if ((reason == FinishReason::STOP || reason == FinishReason::LENGTH) && seq->text) ev.text = seq->text->finish();
  {
    std::lock_guard lk(mu_);
    std::erase(running_ids_, seq->request.id);
    m_.running_sequences = static_cast<int64_t>(running_ids_.size());
    count_finish(reason);
  }
  emit(*seq, ev);
}

int64_t SequentialEngine::step(Slot& slot) {
  Sequence& s = *slot.seq;
  LlamaContext& ctx = *slot.ctx;
  const auto& prompt = s.request.prompt;
  const auto n_prompt = static_cast<int64_t>(prompt.size());
  int64_t ran = 0;
  try {
    const float* logits = nullptr;
    if (s.prompt_fed < n_prompt) {
      const int64_t n = std::min(opt_.prefill_chunk, n_prompt - s.prompt_fed);
      logits = ctx.forward(prompt.data() + s.prompt_fed, n);
      s.prompt_fed += n;
      ran = n;
      if (s.prompt_fed < n_prompt) return ran;
      std::lock_guard lk(mu_);
      m_.prompt_tokens_total += static_cast<uint64_t>(n_prompt);
    } else {
      logits = ctx.forward(&s.next_token, 1);
      ran = 1;
    }
    const int32_t token = s.sampler->sample(logits);
    if (tok_.is_end_of_generation(token)) {
      finish(slot, FinishReason::STOP);
      return ran;
    }
    ++s.generated;
    {
      std::lock_guard lk(mu_);
      record_generated(1);
    }
    TokenEvent ev;
    ev.token = token;
    ev.text = s.text->push(tok_.token_bytes(token));
    if (s.text->stopped()) {
      // The token that completed a stop string: its text before the stop rides on the final event.
      std::unique_ptr<Sequence> seq = std::move(slot.seq);
      slot.ctx->truncate(0);
      ev.token = -1;
      ev.finish = FinishReason::STOP;
      {
        std::lock_guard lk(mu_);
        std::erase(running_ids_, seq->request.id);
        m_.running_sequences = static_cast<int64_t>(running_ids_.size());
        count_finish(FinishReason::STOP);
      }
      emit(*seq, ev);
      return ran;
    }
    emit(s, ev);
    if (s.generated >= s.request.max_tokens || ctx.n_past() >= ctx.n_ctx()) {
      finish(slot, FinishReason::LENGTH);
      return ran;
    }
    s.next_token = token;
  } catch (const std::exception& e) {
    finish(slot, FinishReason::ERROR, e.what());
  }
  return ran;
}

void SequentialEngine::run() {
  std::vector<std::unique_ptr<Sequence>> cancelled_queued;
  std::vector<uint64_t> cancel_running;
  while (true) {
    cancelled_queued.clear();
    cancel_running.clear();
    bool have_running = false;
    for (auto& s : slots_) have_running = have_running || s.seq != nullptr;
    {
      std::unique_lock lk(mu_);
      const bool free_slot = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.seq; });
      wake_.wait(lk, [&] {
        return stopping_ || cancel_all_ || !cancels_.empty() || have_running || (free_slot && !queue_.empty());
      });
      if (stopping_ && queue_.empty() && !have_running) break;
      // Cancellations: queued requests leave the queue; running ones are finished below.
      if (cancel_all_) {
        for (auto& q : queue_) cancelled_queued.push_back(std::move(q));
        queue_.clear();
        cancel_running = running_ids_;
      }
      for (uint64_t id : cancels_) {
        auto it = std::find_if(queue_.begin(), queue_.end(), [id](const auto& q) { return q->request.id == id; });
        if (it != queue_.end()) {
          cancelled_queued.push_back(std::move(*it));
          queue_.erase(it);
        } else {
          cancel_running.push_back(id);
        }
      }
      cancels_.clear();
      // Admission: first come, first served into free slots.
      for (auto& slot : slots_) {
        if (slot.seq || queue_.empty()) continue;
        slot.seq = std::move(queue_.front());
        queue_.pop_front();
        running_ids_.push_back(slot.seq->request.id);
      }
      m_.queue_depth = static_cast<int64_t>(queue_.size());
      m_.running_sequences = static_cast<int64_t>(running_ids_.size());
    }
    for (auto& seq : cancelled_queued) finish_queued(*seq, FinishReason::CANCELLED);
    int64_t batch = 0;
    for (auto& slot : slots_) {
      if (!slot.seq) continue;
      Sequence& s = *slot.seq;
      if (!s.sampler) {  // just admitted
        slot.ctx->truncate(0);
        s.sampler.emplace(s.request.sampling, limits_.n_vocab);
        s.text.emplace(s.request.stop);
      }
      const bool cancelled = s.cancel_requested || std::find(cancel_running.begin(), cancel_running.end(),
                                                             s.request.id) != cancel_running.end();
      if (cancelled) {
        finish(slot, FinishReason::CANCELLED);
        continue;
      }
      batch += step(slot);
    }
    {
      std::lock_guard lk(mu_);
      m_.batch_size = batch;
      if (queue_.empty() && running_ids_.empty()) idle_.notify_all();
    }
  }
  std::lock_guard lk(mu_);
  idle_.notify_all();
}

}  // namespace lookahead::moe::serve
