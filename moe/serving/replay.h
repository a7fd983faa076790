#pragma once
// Trace replay (issue #5 items 5 and 6): a trace's requests arrive at their times, the batching
// engine serves them, and every request's latency is measured.
//
// Clock: virtual, driven by measured compute. Requests whose arrival time has come are added; one
// engine step runs and the clock advances by its measured wall time; when the engine is idle the
// clock jumps to the next arrival. So latencies are what a server doing exactly this compute would
// see, without sleeping through idle gaps, and a run is reproducible up to the step timings.
//
// Step time: `wall` (default) is the step's wall-clock time. `cpu` is the engine thread's CPU time
// plus the time it stalled on expert loads; with one compute thread (--threads 1) that is the
// step's cost without the time other processes took the core, so runs on a shared machine stay
// comparable (load changes wall time by several x there; see docs/results/readme-serving.md).
//
// Contract:
//   - Every request needs prompt token ids (read the trace with the model's tokenizer); a request
//     the engine refuses (too long for the token budget or context) is an error naming its index.
//   - Requests generate exactly output_len tokens (end-of-generation tokens do not stop them): the
//     trace fixes the work, as in the paper's replays. Sampling is greedy unless options say otherwise.
//   - Metrics: normalized latency = (finish - arrival) / generated tokens (the paper's metric);
//     TTFT = first token - arrival; TPOT = (finish - first token) / (generated - 1), requests with
//     one token left out; throughput = generated tokens / makespan. Percentiles are nearest-rank.
#include <cstdint>
#include <vector>

#include "moe/model/sampling.h"
#include "moe/serving/batch_engine.h"
#include "moe/serving/trace.h"

namespace lookahead::moe::serving {

enum class StepClock { WALL, CPU };

struct ReplayOptions {
  SamplingParams sampling;  // default greedy (temperature 0)
  StepClock clock = StepClock::WALL;
};

struct RequestRecord {
  double arrival_s = 0, first_token_s = 0, finish_s = 0;
  int64_t prompt_tokens = 0, generated = 0;
};

struct StepRecord {
  double start_s = 0, seconds = 0, stall_seconds = 0;  // seconds: by the replay's clock
  double wall_seconds = 0;
  int64_t tokens = 0, prefills = 0, decodes = 0, unique_experts = 0;
};

struct ReplayResult {
  std::vector<RequestRecord> requests;  // trace order
  std::vector<StepRecord> steps;
  double makespan_s = 0;                // first arrival .. last finish
  double compute_s = 0;                 // sum of step times
  double router_s = 0;
  TierStats tiers;                      // zero without a tiered store
};

struct Distribution {
  double mean = 0, p50 = 0, p95 = 0, p99 = 0;
};
Distribution distribution(std::vector<double> values);

struct ReplaySummary {
  int64_t requests = 0, generated_tokens = 0, prompt_tokens = 0, steps = 0;
  Distribution normalized_latency_s, ttft_s, tpot_s;
  double throughput_tok_s = 0, requests_per_s = 0;
  double mean_unique_experts = 0, mean_batch_tokens = 0;
  double stall_s = 0, compute_s = 0, makespan_s = 0, router_s = 0;
  double cache_hit_ratio = 0;
  uint64_t slow_tier_bytes = 0;
};

// `tiers` (may be null) is the store the engine reads experts through, for stall and hit counts.
ReplayResult replay_trace(BatchEngine& engine, const Trace& trace, TieredExperts* tiers, const ReplayOptions& options);
ReplaySummary summarize(const ReplayResult& result);

}  // namespace lookahead::moe::serving
