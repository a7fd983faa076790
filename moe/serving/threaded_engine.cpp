#include "moe/serving/threaded_engine.h"

#include <algorithm>

#include "common/error.h"

namespace lookahead::moe::serving {

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

namespace {

std::set<int32_t> end_of_generation_tokens(const Tokenizer& tok, int32_t n_vocab) {
  std::set<int32_t> ids;
  for (int32_t t = 0; t < n_vocab; ++t)
    if (tok.is_end_of_generation(t)) ids.insert(t);
  return ids;
}

}  // namespace

ThreadedEngine::ThreadedEngine(const LlamaModel& backbone, const ReadMeModel* readme, const ExpertWeights* experts,
                               TieredExperts* tiers, const Tokenizer& tokenizer,
                               const ThreadedEngineOptions& options)
    : tok_(tokenizer), tiers_(tiers), opt_(options) {
  if (opt_.max_queue < 0) fail("serving engine: max queue must be >= 0 (got {})", opt_.max_queue);
  const int32_t n_vocab = backbone.hparams().n_vocab;
  core_ = std::make_unique<BatchEngine>(backbone, readme, experts, tiers,
                                                 end_of_generation_tokens(tokenizer, n_vocab), opt_.core);
  limits_.n_ctx = opt_.core.n_ctx;
  limits_.max_running = opt_.core.limits.max_running;
  limits_.max_queue = opt_.max_queue;
  limits_.n_vocab = n_vocab;
  m_.kv_cache_bytes = core_->kv_budget_bytes();
  started_ = std::chrono::steady_clock::now();
  worker_ = std::thread([this] { run(); });
}

ThreadedEngine::~ThreadedEngine() { shutdown(); }

SubmitResult ThreadedEngine::submit(GenerationRequest request) {
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
  if (opt_.core.prefill_chunk == 0 && n_prompt > opt_.core.limits.token_budget)
    return invalid(fmt::format("prompt: {} tokens exceed the batch token budget of {}", n_prompt,
                               opt_.core.limits.token_budget));
  if (!request.on_token) return invalid("on_token: no callback");
  const int64_t free_slots = std::max<int64_t>(limits_.max_running - running_, 0);
  if (waiting_ >= limits_.max_queue + free_slots) {
    ++m_.requests_rejected_queue_full;
    r.status = SubmitStatus::QUEUE_FULL;
    r.message = fmt::format("the request queue is full ({} waiting, {} running)", waiting_, running_);
    return r;
  }
  if (request.id == 0) request.id = next_id_++;
  r.id = request.id;
  live_.insert(request.id);
  inbox_.push_back(std::move(request));
  ++waiting_;
  ++m_.requests_accepted;
  m_.queue_depth = waiting_;
  wake_.notify_one();
  return r;
}

bool ThreadedEngine::cancel(uint64_t id) {
  std::lock_guard lk(mu_);
  if (!live_.count(id)) return false;
  if (std::find(cancels_.begin(), cancels_.end(), id) != cancels_.end()) return false;
  cancels_.push_back(id);
  wake_.notify_one();
  return true;
}

bool ThreadedEngine::drain(std::chrono::milliseconds grace) {
  std::unique_lock lk(mu_);
  draining_ = true;
  auto empty = [&] { return waiting_ == 0 && running_ == 0; };
  if (idle_.wait_for(lk, grace, empty)) return true;
  cancel_all_ = true;
  wake_.notify_one();
  idle_.wait(lk, [&] { return empty() || !worker_.joinable(); });
  return false;
}

void ThreadedEngine::shutdown() {
  {
    std::lock_guard lk(mu_);
    draining_ = stopping_ = cancel_all_ = true;
    wake_.notify_one();
  }
  if (worker_.joinable()) worker_.join();
}

EngineMetrics ThreadedEngine::metrics() const {
  std::lock_guard lk(mu_);
  EngineMetrics m = m_;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const auto sec = static_cast<int64_t>(elapsed);
  int64_t tokens = 0;
  for (int i = 0; i < kRateWindow; ++i)
    if (rate_sec_[i] > sec - kRateWindow && rate_sec_[i] <= sec) tokens += rate_count_[i];
  m.tokens_per_second = static_cast<double>(tokens) / std::clamp(elapsed, 1.0, static_cast<double>(kRateWindow));
  return m;
}

void ThreadedEngine::count_finish(uint64_t id, FinishReason reason) {
  live_.erase(id);
  switch (reason) {
    case FinishReason::STOP: ++m_.requests_finished_stop; break;
    case FinishReason::LENGTH: ++m_.requests_finished_length; break;
    case FinishReason::CANCELLED: ++m_.requests_cancelled; break;
    case FinishReason::ERROR: ++m_.requests_failed; break;
    case FinishReason::NONE: break;
  }
}

void ThreadedEngine::record_generated(int64_t n) {
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

void ThreadedEngine::emit(Stream& s, TokenEvent& event) {
  event.request_id = s.request.id;
  event.usage.prompt_tokens = static_cast<int64_t>(s.request.prompt.size());
  event.usage.cached_tokens = s.cached_tokens;
  event.usage.completion_tokens = s.generated;
  try {
    s.request.on_token(event);
  } catch (...) {
    std::lock_guard lk(mu_);
    cancels_.push_back(s.request.id);  // a broken consumer: stop generating for it
  }
}

// Ends a request the worker knows: frees its KV cache first, then delivers the final event.
void ThreadedEngine::finish(uint64_t id, FinishReason reason, const std::string& error) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream s = std::move(it->second);
  streams_.erase(it);
  core_->cancel(id);  // no-op when the core already finished it
  TokenEvent ev;
  ev.finish = reason;
  ev.error = error;
  if (reason == FinishReason::STOP || reason == FinishReason::LENGTH) ev.text = s.text->finish();
  {
    std::lock_guard lk(mu_);
    count_finish(id, reason);
    publish_occupancy();
  }
  emit(s, ev);
}

// mu_ held, worker thread: running / waiting counts as of now, so a client that has just received
// a final event sees its request gone from the metrics.
void ThreadedEngine::publish_occupancy() {
  running_ = core_->running();
  waiting_ = core_->waiting() + static_cast<int64_t>(inbox_.size());
  m_.queue_depth = waiting_;
  m_.running_sequences = running_;
  if (waiting_ == 0 && running_ == 0) idle_.notify_all();
}

void ThreadedEngine::run() {
  while (true) {
    std::deque<GenerationRequest> arrived;
    std::vector<uint64_t> cancels;
    bool cancel_all = false;
    {
      std::unique_lock lk(mu_);
      wake_.wait(lk, [&] { return stopping_ || cancel_all_ || !cancels_.empty() || !inbox_.empty() || !core_->idle(); });
      if (stopping_ && inbox_.empty() && core_->idle()) break;
      arrived.swap(inbox_);
      cancels.swap(cancels_);
      cancel_all = cancel_all_;
    }
    // New requests join the core (routed now, at arrival).
    for (GenerationRequest& r : arrived) {
      const uint64_t id = r.id;
      EngineRequest q;
      q.id = id;
      q.prompt = r.prompt;
      q.max_tokens = r.max_tokens;
      q.sampling = r.sampling;
      Stream s;
      s.text = std::make_unique<TextStream>(r.stop);
      s.request = std::move(r);
      streams_.emplace(id, std::move(s));
      try {
        core_->add(std::move(q));
        std::lock_guard lk(mu_);
        m_.prompt_tokens_total += streams_.at(id).request.prompt.size();
      } catch (const std::exception& e) {
        {
          std::lock_guard lk(mu_);
          --waiting_;
        }
        finish(id, FinishReason::ERROR, e.what());
      }
    }
    if (cancel_all) {
      for (const auto& [id, s] : streams_) cancels.push_back(id);
    }
    for (uint64_t id : cancels) {
      if (!streams_.count(id)) continue;
      finish(id, FinishReason::CANCELLED);
    }
    // One batch.
    StepReport step;
    if (!core_->idle()) {
      try {
        step = core_->step();
      } catch (const std::exception& e) {
        std::vector<uint64_t> ids;
        for (const auto& [id, s] : streams_) ids.push_back(id);
        for (uint64_t id : ids) finish(id, FinishReason::ERROR, e.what());
      }
    }
    for (const CachedPrompt& c : step.cached_prompts) {
      auto it = streams_.find(c.id);
      if (it != streams_.end()) it->second.cached_tokens = c.tokens;
    }
    if (step.cached_tokens > 0) {
      std::lock_guard lk(mu_);
      m_.prompt_tokens_cached_total += static_cast<uint64_t>(step.cached_tokens);
    }
    for (const GeneratedToken& g : step.generated) {
      auto it = streams_.find(g.id);
      if (it == streams_.end()) continue;
      Stream& s = it->second;
      ++s.generated;
      TokenEvent ev;
      ev.token = g.token;
      ev.text = s.text->push(tok_.token_bytes(g.token));
      if (s.text->stopped()) {
        // The token that completed a stop string: its text before the stop rides on the final event.
        Stream done = std::move(s);
        streams_.erase(it);
        core_->cancel(g.id);
        ev.token = -1;
        ev.finish = FinishReason::STOP;
        {
          std::lock_guard lk(mu_);
          count_finish(g.id, FinishReason::STOP);
          record_generated(1);
          publish_occupancy();
        }
        emit(done, ev);
        continue;
      }
      {
        std::lock_guard lk(mu_);
        record_generated(1);
      }
      emit(s, ev);
    }
    for (const FinishedRequest& f : step.finished) finish(f.id, f.reason);
    {
      std::lock_guard lk(mu_);
      publish_occupancy();
      m_.batch_size = step.tokens;
      if (tiers_) {
        const TierStats t = tiers_->stats();
        m_.cache_hit_ratio = t.hit_ratio();
        m_.slow_tier_bytes = t.bytes_read;
      }
    }
  }
  std::lock_guard lk(mu_);
  waiting_ = running_ = 0;
  idle_.notify_all();
}

}  // namespace lookahead::moe::serving
