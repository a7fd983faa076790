#include "moe/serving/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "common/cpu_time.h"
#include "common/error.h"


namespace lookahead::moe::serving {


Distribution distribution(std::vector<double> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  auto rank = [&](double p) {  // nearest rank: the smallest value with at least p of the data at or below it
    const auto k = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(k, 1, v.size()) - 1];
  };
  d.p50 = rank(0.50);
  d.p95 = rank(0.95);
  d.p99 = rank(0.99);
  return d;
}

double StepCostModel::step_seconds(int64_t tokens, int64_t unique_experts) const {
  const double bytes = dense_bytes + expert_bytes * static_cast<double>(unique_experts);
  const double flops = 2.0 * static_cast<double>(tokens) * params_per_token;
  return bytes / mem_bytes_per_s + flops / flops_per_s;
}

StepCostModel make_step_cost_model(const LlamaModel& backbone, const ReadMeModel* readme) {
  StepCostModel c;
  auto add = [](double& bytes, double& params, const WeightMatrix& m) {
    bytes += static_cast<double>(m.bytes());
    params += static_cast<double>(m.rows) * static_cast<double>(m.cols);
  };
  const LlamaWeights& w = backbone.weights();
  add(c.dense_bytes, c.params_per_token, w.output);
  for (const auto& l : w.layers) {
    for (const WeightMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo}) add(c.dense_bytes, c.params_per_token, *m);
    if (!readme && l.w_gate.data)  // dense: the whole FFN is the one "expert"
      for (const WeightMatrix* m : {&l.w_gate, &l.w_up, &l.w_down}) add(c.expert_bytes, c.params_per_token, *m);
  }
  if (readme) {  // the mean expert over all layers
    const int32_t N = readme->n_expert();
    double bytes = 0, params = 0;
    for (int l = 0; l < backbone.hparams().n_layer; ++l)
      for (int32_t e = 0; e < N; ++e) {
        const ExpertFfn& f = readme->expert(l, e);
        for (const WeightMatrix* m : {&f.gate, &f.up, &f.down}) add(bytes, params, *m);
      }
    c.expert_bytes += bytes / N;
    c.params_per_token += params / N;
  }
  return c;
}

ReplayResult replay_trace(BatchEngine& engine, const Trace& trace, TieredExperts* tiers, const ReplayOptions& options) {
  const auto& reqs = trace.requests;
  const size_t n = reqs.size();
  if (n == 0) fail("replay: the trace has no requests");
  if (options.clock == StepClock::MODEL && (!(options.cost.mem_bytes_per_s > 0) || !(options.cost.flops_per_s > 0)))
    fail("replay: the model clock needs positive memory bandwidth and flop rate");
  ReplayResult r;
  r.requests.resize(n);
  std::vector<bool> started(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (reqs[i].prompt_tokens.empty())
      fail("replay: request {} has no prompt token ids (read the trace with the model's tokenizer)", i);
    if (i > 0 && reqs[i].arrival_s < reqs[i - 1].arrival_s) fail("replay: request {} arrives before request {}", i, i - 1);
    r.requests[i].arrival_s = reqs[i].arrival_s;
    r.requests[i].prompt_tokens = static_cast<int64_t>(reqs[i].prompt_tokens.size());
  }
  if (tiers) tiers->reset_stats();
  const double router0 = engine.router_seconds();
  double clock = reqs[0].arrival_s;
  size_t next = 0, finished = 0;
  // Routing a prompt at arrival (in add()) is work the server does between steps; it is charged to
  // the next step on the wall and cpu clocks (the model clock has no router term).
  double admission = 0;
  while (finished < n) {
    const auto admit_t0 = std::chrono::steady_clock::now();
    const double admit_cpu0 = thread_cpu_seconds();
    for (; next < n && reqs[next].arrival_s <= clock; ++next) {
      EngineRequest q;
      q.id = next + 1;
      q.prompt = reqs[next].prompt_tokens;
      q.max_tokens = reqs[next].output_len;
      q.sampling = options.sampling;
      q.stop_at_eog = false;
      try {
        engine.add(std::move(q));
      } catch (const Error& e) {
        fail("replay: trace request {}: {}", next, e.what());
      }
    }
    if (options.clock == StepClock::CPU)
      admission += thread_cpu_seconds() - admit_cpu0;
    else if (options.clock == StepClock::WALL)
      admission += std::chrono::duration<double>(std::chrono::steady_clock::now() - admit_t0).count();
    if (engine.idle()) {
      if (next >= n) fail("replay: engine idle with {} of {} requests unfinished", n - finished, n);
      clock = reqs[next].arrival_s;
      continue;
    }
    const double stall0 = tiers ? tiers->stats().stall_seconds : 0.0;
    const double stall_cpu0 = tiers ? tiers->stats().stall_cpu_seconds : 0.0;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = thread_cpu_seconds();
    const StepReport step = engine.step();
    const double cpu = thread_cpu_seconds() - cpu0;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double stall = tiers ? tiers->stats().stall_seconds - stall0 : 0.0;
    // CPU clock: the thread's CPU time without what it spent inside stalls (a demand read's
    // syscalls), plus the stalls' wall time, so a read is not counted twice.
    const double stall_cpu = tiers ? tiers->stats().stall_cpu_seconds - stall_cpu0 : 0.0;
    const double step_dt = options.clock == StepClock::CPU ? cpu - stall_cpu + stall
                           : options.clock == StepClock::MODEL ? options.cost.step_seconds(step.tokens, step.unique_experts)
                                                               : wall;
    if (step.tokens == 0) {
      // Nothing schedulable while requests are queued cannot happen (add() checks every request fits
      // alone); guard against a livelock all the same.
      if (next >= n) fail("replay: no batch could be formed with {} requests queued", engine.waiting());
      clock = std::max(clock, reqs[next].arrival_s);
      continue;
    }
    const double dt = step_dt + admission;
    StepRecord s;
    s.start_s = clock;
    s.seconds = dt;
    s.admission_seconds = admission;
    admission = 0;
    s.wall_seconds = wall;
    s.stall_seconds = stall;
    s.tokens = step.tokens;
    s.prefills = step.prefills;
    s.decodes = step.decodes;
    s.unique_experts = step.unique_experts;
    r.steps.push_back(s);
    r.compute_s += dt;
    clock += dt;
    for (const GeneratedToken& g : step.generated) {
      const size_t i = g.id - 1;
      if (!started[i]) {
        started[i] = true;
        r.requests[i].first_token_s = clock;
      }
      ++r.requests[i].generated;
    }
    for (const FinishedRequest& f : step.finished) {
      r.requests[f.id - 1].finish_s = clock;
      ++finished;
    }
  }
  r.makespan_s = clock - reqs[0].arrival_s;
  r.router_s = engine.router_seconds() - router0;
  if (tiers) r.tiers = tiers->stats();
  return r;
}

ReplaySummary summarize(const ReplayResult& r) {
  ReplaySummary s;
  std::vector<double> norm, ttft, tpot;
  for (const RequestRecord& q : r.requests) {
    ++s.requests;
    s.generated_tokens += q.generated;
    s.prompt_tokens += q.prompt_tokens;
    if (q.generated <= 0) continue;
    norm.push_back((q.finish_s - q.arrival_s) / static_cast<double>(q.generated));
    ttft.push_back(q.first_token_s - q.arrival_s);
    if (q.generated > 1) tpot.push_back((q.finish_s - q.first_token_s) / static_cast<double>(q.generated - 1));
  }
  s.normalized_latency_s = distribution(norm);
  s.ttft_s = distribution(ttft);
  s.tpot_s = distribution(tpot);
  s.steps = static_cast<int64_t>(r.steps.size());
  double experts = 0, tokens = 0;
  for (const StepRecord& st : r.steps) {
    experts += static_cast<double>(st.unique_experts);
    tokens += static_cast<double>(st.tokens);
    s.stall_s += st.stall_seconds;
    s.admission_s += st.admission_seconds;
  }
  if (s.steps > 0) {
    s.mean_unique_experts = experts / static_cast<double>(s.steps);
    s.mean_batch_tokens = tokens / static_cast<double>(s.steps);
  }
  s.compute_s = r.compute_s;
  s.makespan_s = r.makespan_s;
  s.router_s = r.router_s;
  if (r.makespan_s > 0) {
    s.throughput_tok_s = static_cast<double>(s.generated_tokens) / r.makespan_s;
    s.requests_per_s = static_cast<double>(s.requests) / r.makespan_s;
  }
  s.cache_hit_ratio = r.tiers.hit_ratio();
  s.cache_in_flight_ratio = r.tiers.in_flight_ratio();
  s.cache_accesses = r.tiers.accesses;
  s.cache_hits = r.tiers.hits;
  s.cache_in_flight = r.tiers.in_flight_uses;
  s.cache_misses = r.tiers.misses;
  s.cache_prefetched_hits = r.tiers.prefetched_hits;
  s.slow_tier_bytes = r.tiers.bytes_read;
  s.prefetch_bytes = r.tiers.prefetch_bytes;
  return s;
}

}  // namespace lookahead::moe::serving
