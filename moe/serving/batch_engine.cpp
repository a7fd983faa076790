#include "moe/serving/batch_engine.h"

#include <algorithm>
#include <unordered_map>

#include "common/cpu_time.h"
#include "common/error.h"

namespace lookahead::moe::serving {

std::string serving_route(const ReadMeModel* readme, const std::string& route) {
  return readme ? (route.empty() ? "router" : route) : "dense";
}

double sequence_memory_bytes(const LlamaHparams& hp, int64_t n_ctx) {
  return 4.0 * hp.n_vocab + 2.0 * hp.n_layer * static_cast<double>(n_ctx) * hp.n_head_kv * hp.head_dim * 4.0;
}

struct BatchEngine::Sequence {
  Sequence(EngineRequest r, int32_t n_vocab) : req(std::move(r)), sampler(req.sampling, n_vocab) {}
  EngineRequest req;
  std::unique_ptr<TokenRouter> router;  // this sequence's pre-gating router (its own KV cache)
  std::vector<int32_t> prompt_experts;  // routed at arrival
  std::unique_ptr<KvCache> cache;       // null while waiting
  uint64_t cache_bytes = 0;
  Sampler sampler;
  int32_t pending_token = -1;           // sampled, to be fed by the next decode
  int32_t pending_expert = 0;           // its expert, routed right after sampling
  int64_t generated = 0;
  int64_t waited = 0;                   // batches formed while this sequence was ready but left out
  // What the KV cache holds, position by position (kept with it in the prefix cache); cleared when
  // a failed forward pass may have left the cache half-written.
  std::vector<int32_t> fed_tokens, fed_experts;
  bool cache_valid = true;
  PrefixEntry* reuse = nullptr;         // the cached prefix its prefill starts from (this step only)
  int64_t reuse_len = 0;
};

// A kept KV cache: the tokens (and their routed experts; empty for a dense model) at its positions.
struct BatchEngine::PrefixEntry {
  std::vector<int32_t> tokens, experts;
  std::unique_ptr<KvCache> cache;
  uint64_t bytes = 0;
  uint64_t last_used = 0;
};

BatchEngine::BatchEngine(const LlamaModel& backbone, const ReadMeModel* readme, const ExpertWeights* experts,
                         TieredExperts* tiers, std::set<int32_t> end_of_generation, const BatchEngineOptions& options)
    : backbone_(backbone), readme_(readme), experts_(experts), tiers_(tiers), eog_(std::move(end_of_generation)),
      opt_(options) {
  if (opt_.n_ctx <= 0) fail("serving engine: n_ctx must be positive (got {})", opt_.n_ctx);
  if (opt_.limits.token_budget <= 0 || opt_.limits.max_running <= 0)
    fail("serving engine: token budget and max running sequences must be positive (got {} and {})",
         opt_.limits.token_budget, opt_.limits.max_running);
  if (opt_.plan_horizon < 0) fail("serving engine: plan horizon must be >= 0 (got {})", opt_.plan_horizon);
  if (opt_.prefill_chunk < 0 || opt_.prefill_chunk > opt_.limits.token_budget)
    fail("serving engine: prefill chunk must be 0 (whole prompts) or 1 to the token budget {} (got {})",
         opt_.limits.token_budget, opt_.prefill_chunk);
  if (readme_) {
    if (!experts_) fail("serving engine: a Read-ME model needs its expert weights");
    if (opt_.route == "dense") fail("serving engine: route 'dense' serves the backbone's dense FFN; open the model as dense instead");
    make_token_router(*readme_, opt_.route, "route");  // validates the spec now, not at the first request
  }
  kv_budget_ = opt_.kv_budget_bytes ? opt_.kv_budget_bytes
                                    : static_cast<uint64_t>(opt_.limits.max_running) * kv_bytes(opt_.n_ctx);
  forward_ = std::make_unique<BatchForward>(backbone_, opt_.limits.token_budget, opt_.n_ctx);
  if (readme_) forward_->set_experts(experts_);
  logits_.resize(static_cast<size_t>(opt_.limits.max_running) * static_cast<size_t>(backbone_.hparams().n_vocab));
}

BatchEngine::~BatchEngine() = default;

uint64_t BatchEngine::kv_bytes(int64_t positions) const {
  const LlamaHparams& hp = backbone_.hparams();
  const uint64_t elem = opt_.kv_type == TensorType::F16 ? 2 : 4;
  return 2 * static_cast<uint64_t>(hp.n_layer) * static_cast<uint64_t>(positions) *
         static_cast<uint64_t>(hp.n_head_kv) * static_cast<uint64_t>(hp.head_dim) * elem;
}

int64_t BatchEngine::waiting() const {
  return std::count_if(sequences_.begin(), sequences_.end(), [](const auto& s) { return !s->cache; });
}

int64_t BatchEngine::running() const { return static_cast<int64_t>(sequences_.size()) - waiting(); }

void BatchEngine::route(Sequence& seq, const int32_t* tokens, int64_t n, int64_t pos0, int32_t* experts) {
  if (!seq.router) {
    std::fill(experts, experts + n, 0);  // dense: one "expert" for the scheduler
    return;
  }
  // CPU time, not wall: on a shared machine wall time counts whatever else held the core.
  const double t0 = thread_cpu_seconds();
  seq.router->route(tokens, n, pos0, experts);
  router_seconds_ += thread_cpu_seconds() - t0;
  for (int64_t i = 0; i < n; ++i)
    if (experts[i] < 0 || experts[i] >= readme_->n_expert())
      fail("router '{}' chose expert {} of {}", seq.router->name(), experts[i], readme_->n_expert());
}

void BatchEngine::add(EngineRequest request) {
  const LlamaHparams& hp = backbone_.hparams();
  const auto n = static_cast<int64_t>(request.prompt.size());
  const uint64_t id = request.id;
  if (n == 0) fail("request {}: empty prompt", id);
  for (int32_t t : request.prompt)
    if (t < 0 || t >= hp.n_vocab) fail("request {}: prompt token {} outside the vocabulary [0, {})", id, t, hp.n_vocab);
  if (request.max_tokens < 1) fail("request {}: max_tokens must be >= 1 (got {})", id, request.max_tokens);
  if (opt_.prefill_chunk == 0 && n > opt_.limits.token_budget)
    fail("request {}: prompt of {} tokens exceeds the batch token budget {} (prefills are not split: set a prefill "
         "chunk)", id, n, opt_.limits.token_budget);
  if (n + request.max_tokens > opt_.n_ctx)
    fail("request {}: prompt ({}) + max_tokens ({}) exceed the context of {} tokens", id, n, request.max_tokens, opt_.n_ctx);
  if (kv_bytes(n + request.max_tokens) > kv_budget_)
    fail("request {}: its KV cache ({} bytes) exceeds the whole KV budget ({} bytes)", id, kv_bytes(n + request.max_tokens),
         kv_budget_);
  for (const auto& s : sequences_)
    if (s->req.id == id) fail("request {}: id already queued or running", id);
  auto seq = std::make_unique<Sequence>(std::move(request), hp.n_vocab);
  // The router's KV cache holds this request's positions only (not the router's whole window).
  if (readme_) seq->router = make_token_router(*readme_, opt_.route, "route", n + seq->req.max_tokens);
  // Read-ME routes the prompt at arrival, before the backbone ever sees it.
  seq->prompt_experts.resize(static_cast<size_t>(n));
  route(*seq, seq->req.prompt.data(), n, 0, seq->prompt_experts.data());
  sequences_.push_back(std::move(seq));
}

int64_t BatchEngine::chunk_end(const Sequence& seq, int64_t from) const {
  const auto n = static_cast<int64_t>(seq.req.prompt.size());
  return opt_.prefill_chunk > 0 ? std::min(n, from + opt_.prefill_chunk) : n;
}

void BatchEngine::release(Sequence& seq) {
  if (seq.cache) kv_in_use_ -= seq.cache_bytes;
  keep_prefix(seq);
  seq.cache.reset();
  seq.cache_bytes = 0;
}

void BatchEngine::match_prefix(Sequence& seq) {
  seq.reuse = nullptr;
  seq.reuse_len = 0;
  if (!opt_.prefix_cache) return;
  const auto& prompt = seq.req.prompt;
  const bool routed = seq.router != nullptr;
  // At most all but the last prompt token: its logits give the first generated token.
  const auto most = static_cast<int64_t>(prompt.size()) - 1;
  for (const auto& e : prefix_pool_) {
    const int64_t limit = std::min<int64_t>(most, static_cast<int64_t>(e->tokens.size()));
    int64_t k = 0;
    while (k < limit && e->tokens[k] == prompt[k] && (!routed || e->experts[k] == seq.prompt_experts[k])) ++k;
    if (k > seq.reuse_len) {
      seq.reuse = e.get();
      seq.reuse_len = k;
    }
  }
}

// Moves a released sequence's KV cache into the prefix cache (when it is whole and has room).
void BatchEngine::keep_prefix(Sequence& seq) {
  if (!opt_.prefix_cache || !seq.cache || !seq.cache_valid || seq.fed_tokens.empty() ||
      seq.cache->n_past() != static_cast<int64_t>(seq.fed_tokens.size()))
    return;
  // Whether (tokens, experts) `a` starts with `b`.
  auto starts_with = [](const std::vector<int32_t>& a_tokens, const std::vector<int32_t>& a_experts,
                        const std::vector<int32_t>& b_tokens, const std::vector<int32_t>& b_experts) {
    return a_tokens.size() >= b_tokens.size() && std::equal(b_tokens.begin(), b_tokens.end(), a_tokens.begin()) &&
           a_experts.size() >= b_experts.size() && std::equal(b_experts.begin(), b_experts.end(), a_experts.begin());
  };
  for (auto& e : prefix_pool_) {
    if (starts_with(e->tokens, e->experts, seq.fed_tokens, seq.fed_experts)) {  // already kept, whole
      e->last_used = ++prefix_clock_;
      return;
    }
  }
  // Kept caches this one extends are replaced by it.
  std::erase_if(prefix_pool_, [&](const std::unique_ptr<PrefixEntry>& e) {
    if (!starts_with(seq.fed_tokens, seq.fed_experts, e->tokens, e->experts)) return false;
    prefix_bytes_ -= e->bytes;
    return true;
  });
  auto entry = std::make_unique<PrefixEntry>();
  entry->tokens = std::move(seq.fed_tokens);
  entry->experts = std::move(seq.fed_experts);
  entry->cache = std::move(seq.cache);
  entry->bytes = seq.cache_bytes;
  entry->last_used = ++prefix_clock_;
  prefix_bytes_ += entry->bytes;
  prefix_pool_.push_back(std::move(entry));
  evict_prefixes();
}

// Least recently used first, until running sequences and kept caches fit the KV budget.
void BatchEngine::evict_prefixes() {
  while (!prefix_pool_.empty() && kv_in_use_ + prefix_bytes_ > kv_budget_) {
    auto oldest = std::min_element(prefix_pool_.begin(), prefix_pool_.end(),
                                   [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
    prefix_bytes_ -= (*oldest)->bytes;
    prefix_pool_.erase(oldest);
  }
}

bool BatchEngine::cancel(uint64_t id) {
  for (auto it = sequences_.begin(); it != sequences_.end(); ++it) {
    if ((*it)->req.id != id) continue;
    release(**it);
    sequences_.erase(it);
    return true;
  }
  return false;
}

// The slabs the batch will read, in the forward pass's order (layer by layer, experts ascending),
// then the same for up to plan_horizon predicted batches: the scheduler run again on the queue as
// it will look after this batch, each running sequence's next token predicted to keep its current
// expert (the paper's temporal locality; the real expert is known only once the token is sampled).
std::vector<SlabKey> BatchEngine::expert_plan(const Batch& batch, const std::vector<QueuedRequest>& queue) const {
  std::vector<SlabKey> plan;
  const int n_layer = backbone_.hparams().n_layer;
  auto append = [&](const Batch& b) {
    for (int l = 0; l < n_layer; ++l)
      for (int32_t e : b.experts)
        if (e >= 0) plan.push_back({l, e});
  };
  append(batch);
  std::unordered_map<uint64_t, const Sequence*> by_id;
  for (const auto& s : sequences_) by_id[s->req.id] = s.get();
  std::vector<QueuedRequest> q = queue;
  std::unordered_map<uint64_t, int64_t> generated, prompt_done;
  for (const auto& s : sequences_) {
    generated[s->req.id] = s->generated;
    prompt_done[s->req.id] = s->cache ? s->cache->n_past() : s->reuse_len;
  }
  const Batch* current = &batch;
  Batch next;
  for (int h = 0; h < opt_.plan_horizon; ++h) {
    std::vector<QueuedRequest> after;
    for (QueuedRequest r : q) {
      const auto step = std::find_if(current->steps.begin(), current->steps.end(), [&](const BatchStep& s) { return s.id == r.id; });
      const Sequence& seq = *by_id.at(r.id);
      const auto prompt_len = static_cast<int64_t>(seq.req.prompt.size());
      if (step != current->steps.end() && step->prefill && (prompt_done[r.id] += step->tokens) < prompt_len) {
        // A chunk of its prompt ran: the next chunk is next.
        const int64_t from = prompt_done[r.id], to = chunk_end(seq, from);
        r.experts.assign(seq.prompt_experts.begin() + from, seq.prompt_experts.begin() + to);
        r.admitted = true;
        r.waited_steps = 0;
      } else if (step != current->steps.end()) {
        int64_t& g = generated[r.id];
        if (++g >= by_id.at(r.id)->req.max_tokens) continue;  // finishes with this batch
        r.experts = {r.experts.back()};
        r.running = true;
        r.admitted = false;
        r.waited_steps = 0;
      } else {
        ++r.waited_steps;
      }
      after.push_back(std::move(r));
    }
    q = std::move(after);
    if (q.empty()) break;
    next = schedule(opt_.scheduler, q, opt_.limits);
    if (next.steps.empty()) break;
    append(next);
    current = &next;
  }
  return plan;
}

StepReport BatchEngine::step() {
  StepReport report;
  const LlamaHparams& hp = backbone_.hparams();
  // The queue the scheduler sees: running sequences decode their pending token; waiting ones are
  // offered in arrival order while their KV caches fit the budget.
  std::vector<QueuedRequest> queue;
  std::unordered_map<uint64_t, Sequence*> by_id;
  uint64_t kv_offered = kv_in_use_;
  bool kv_blocked = false;
  for (auto& s : sequences_) {
    by_id[s->req.id] = s.get();
    if (s->cache && s->cache->n_past() < static_cast<int64_t>(s->req.prompt.size())) {
      // The next chunk of a prompt being prefilled in chunks.
      const int64_t from = s->cache->n_past();
      queue.push_back({s->req.id, false, {s->prompt_experts.begin() + from, s->prompt_experts.begin() + chunk_end(*s, from)},
                       s->waited, true});
      continue;
    }
    if (s->cache) {
      queue.push_back({s->req.id, true, {s->pending_expert}, s->waited});
      continue;
    }
    const uint64_t need = kv_bytes(static_cast<int64_t>(s->req.prompt.size()) + s->req.max_tokens);
    if (kv_blocked || kv_offered + need > kv_budget_) {
      kv_blocked = true;
      continue;
    }
    kv_offered += need;
    match_prefix(*s);
    queue.push_back({s->req.id, false,
                     {s->prompt_experts.begin() + s->reuse_len, s->prompt_experts.begin() + chunk_end(*s, s->reuse_len)},
                     s->waited});
  }
  if (queue.empty()) return report;
  const Batch batch = schedule(opt_.scheduler, queue, opt_.limits);
  if (batch.steps.empty()) return report;

  // Segments: prefills get their KV cache now (at their first chunk). Only a segment that ends its
  // prompt, and a decode, wants a logit row.
  std::vector<BatchSegment> segments;
  std::vector<Sequence*> in_batch;
  std::vector<int64_t> logit_row;  // per segment; -1: none (a prompt chunk that does not end it)
  int64_t rows = 0;
  for (const BatchStep& st : batch.steps) {
    Sequence& s = *by_id.at(st.id);
    const bool routed = s.router != nullptr;
    if (st.prefill && !s.cache) {
      const int64_t positions = static_cast<int64_t>(s.req.prompt.size()) + s.req.max_tokens;
      s.cache = std::make_unique<KvCache>(hp, positions, opt_.kv_type);
      s.cache_bytes = kv_bytes(positions);
      kv_in_use_ += s.cache_bytes;
      const int64_t skip = s.reuse_len;
      if (s.reuse) {
        s.cache->copy_prefix(*s.reuse->cache, skip);
        s.reuse->last_used = ++prefix_clock_;
        report.cached_tokens += skip;
        report.cached_prompts.push_back({s.req.id, skip});
      }
      s.reuse = nullptr;
    }
    if (st.prefill) {
      const int64_t from = s.cache->n_past();
      const bool ends_prompt = from + st.tokens == static_cast<int64_t>(s.req.prompt.size());
      segments.push_back({s.cache.get(), s.req.prompt.data() + from, st.tokens,
                          routed ? s.prompt_experts.data() + from : nullptr, ends_prompt ? -1 : st.tokens});
      logit_row.push_back(ends_prompt ? rows++ : -1);
      ++report.prefills;
    } else {
      segments.push_back({s.cache.get(), &s.pending_token, 1, routed ? &s.pending_expert : nullptr, -1});
      logit_row.push_back(rows++);
      ++report.decodes;
    }
    in_batch.push_back(&s);
  }
  evict_prefixes();  // the new caches may need memory kept prefixes held
  report.tokens = batch.tokens;
  report.unique_experts = batch.unique_experts();
  if (tiers_ || recorder_) {
    std::vector<SlabKey> plan = expert_plan(batch, queue);
    if (recorder_) recorder_->begin_step(plan);
    if (tiers_) tiers_->set_plan(std::move(plan));
  }
  const float* logits = nullptr;
  try {
    logits = forward_->forward(segments.data(), segments.size(), logits_.data());
  } catch (...) {
    for (Sequence* s : in_batch) s->cache_valid = false;  // never kept for reuse
    throw;
  }
  for (size_t i = 0; i < in_batch.size(); ++i) {
    Sequence& s = *in_batch[i];
    if (!opt_.prefix_cache) break;
    if (batch.steps[i].prefill) {
      const int64_t n = s.cache->n_past();  // the prompt so far
      s.fed_tokens.assign(s.req.prompt.begin(), s.req.prompt.begin() + n);
      if (s.router) s.fed_experts.assign(s.prompt_experts.begin(), s.prompt_experts.begin() + n);
    } else {
      s.fed_tokens.push_back(s.pending_token);
      if (s.router) s.fed_experts.push_back(s.pending_expert);
    }
  }

  // Sample each sequence's next token; route it at once so its expert is known before the next batch.
  for (auto& s : sequences_) ++s->waited;
  std::vector<uint64_t> done;
  for (size_t i = 0; i < in_batch.size(); ++i) {
    Sequence& s = *in_batch[i];
    s.waited = 0;
    if (logit_row[i] < 0) continue;  // more of its prompt to prefill first
    const int32_t token = s.sampler.sample(logits + logit_row[i] * hp.n_vocab);
    const auto prompt_tokens = static_cast<int64_t>(s.req.prompt.size());
    if (s.req.stop_at_eog && eog_.count(token)) {
      report.finished.push_back({s.req.id, FinishReason::STOP, prompt_tokens, s.generated});
      done.push_back(s.req.id);
      continue;
    }
    ++s.generated;
    report.generated.push_back({s.req.id, token});
    if (s.generated >= s.req.max_tokens) {
      report.finished.push_back({s.req.id, FinishReason::LENGTH, prompt_tokens, s.generated});
      done.push_back(s.req.id);
      continue;
    }
    s.pending_token = token;
    route(s, &s.pending_token, 1, s.cache->n_past(), &s.pending_expert);
  }
  for (uint64_t id : done) cancel(id);
  return report;
}

}  // namespace lookahead::moe::serving
