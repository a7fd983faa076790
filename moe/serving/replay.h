#pragma once
// Trace replay: a trace's requests arrive at their times, the batching
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
// `model` is a cost model instead of a measurement, so a replay is deterministic in everything but
// its wall_seconds fields (which requests have arrived before a step no longer depends on timing):
//   step seconds = streamed bytes / mem_bytes_per_s + flops / flops_per_s, where
//   streamed bytes = the non-FFN weights (attention, output head) once per step + each unique
//                    expert's slabs in every layer once per step (a dense model: its whole FFN),
//   flops          = 2 x tokens x (non-FFN matrix parameters + one expert's parameters, all layers).
// It leaves out attention over the context, the router, and expert loads from a slow tier. With a
// tiered store the loads still happen and are counted (hits, misses, bytes, stall_seconds), but
// they do not move the clock: which requests are in which batch is then the same for every cache
// policy, budget and prefetch setting, so their counts compare on one access stream. It is what
// the paper's argument needs: a step costs more the more experts it streams, and more tokens
// amortize the streaming.
//
// Admission: routing the prompts that arrived before a step (BatchEngine::add) is charged to that
// step on the wall clock (its wall time) and the cpu clock (its CPU time), not on the model clock.
// router_s is CPU time of the replay thread inside the router (prompts and sampled tokens): its
// share of the compute is exact with --threads 1.
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

enum class StepClock { WALL, CPU, MODEL };

// The model clock's inputs: a model's per-step byte and flop counts, and the machine's rates
// (defaults: near this project's 2-core AVX2 box at one thread; docs/serving-system.md).
struct StepCostModel {
  double dense_bytes = 0;      // non-FFN weights read once per step
  double expert_bytes = 0;     // one expert's slabs over all layers (mean over experts)
  double params_per_token = 0; // non-FFN matrix parameters + one expert's, all layers
  double mem_bytes_per_s = 10e9;
  double flops_per_s = 60e9;
  double step_seconds(int64_t tokens, int64_t unique_experts) const;
};
// The byte and parameter counts of `backbone` (dense FFN) or of a Read-ME model's experts.
StepCostModel make_step_cost_model(const LlamaModel& backbone, const ReadMeModel* readme);

struct ReplayOptions {
  SamplingParams sampling;  // default greedy (temperature 0)
  StepClock clock = StepClock::WALL;
  StepCostModel cost;       // for StepClock::MODEL
};

struct RequestRecord {
  double arrival_s = 0, first_token_s = 0, finish_s = 0;
  int64_t prompt_tokens = 0, generated = 0;
};

struct StepRecord {
  double start_s = 0, seconds = 0, stall_seconds = 0;  // seconds: by the replay's clock
  double admission_seconds = 0;                        // of `seconds`: routing the prompts admitted before it
  double wall_seconds = 0;
  int64_t tokens = 0, prefills = 0, decodes = 0, unique_experts = 0;
};

struct ReplayResult {
  std::vector<RequestRecord> requests;  // trace order
  std::vector<StepRecord> steps;
  double makespan_s = 0;                // first arrival .. last finish
  double compute_s = 0;                 // sum of step times
  double router_s = 0;                  // CPU seconds in the pre-gating router
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
  double admission_s = 0;               // of compute_s: prompt routing charged to the steps
  double cache_hit_ratio = 0;           // hits / accesses; in-flight uses are not hits
  double cache_in_flight_ratio = 0;     // in-flight uses / accesses (prefetched, still loading: stalls)
  uint64_t cache_accesses = 0, cache_hits = 0, cache_in_flight = 0, cache_misses = 0, cache_prefetched_hits = 0;
  uint64_t slow_tier_bytes = 0;         // prefetched + on demand
  uint64_t prefetch_bytes = 0;          // read ahead of use
};

// `tiers` (may be null) is the store the engine reads experts through, for stall and hit counts.
ReplayResult replay_trace(BatchEngine& engine, const Trace& trace, TieredExperts* tiers, const ReplayOptions& options);
ReplaySummary summarize(const ReplayResult& result);

}  // namespace lookahead::moe::serving
