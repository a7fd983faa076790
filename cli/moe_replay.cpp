// `lookahead moe replay --model DIR --trace FILE [--rate R] [--scheduler S] [--cache POLICY]
//   [--budget B] [--prefetch on|off] [--json]`: serves a request trace with the continuous-batching
// engine (moe/serving/batch_engine.h) on a virtual clock (moe/serving/replay.h) and reports the
// paper's serving metrics. `--synth N --corpus FILE` replays a synthetic trace instead
// (moe/serving/trace.h's generator: log-normal lengths, prompts from the corpus text).
//
// Expert tiers: `--cache resident` (default) reads experts from the memory-mapped model; belady,
// lru, random or none put them behind the two-tier store (RAM budget + O_DIRECT reads of the model
// file, moe/serving/tiered_experts.h). `--budget` is bytes (512MiB) or experts (3experts = the
// slabs of 3 experts in every layer, the paper's "k experts"). belady-online (alias: belady) is
// Belady on the known batch plus a prediction of the next --horizon batches, not the offline
// optimum. `--record-stream FILE` writes the exact slab access stream (and each step's plan) for
// `moe cache-sim`, which compares policies on that one stream (moe/serving/cache_sim.h).
#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_model_flags.h"
#include "cli/moe_tier_flags.h"
#include "common/error.h"
#include "common/input_file.h"
#include "moe/kernels/matmul.h"
#include "moe/model/loaded_model.h"
#include "moe/serving/access_stream.h"
#include "moe/serving/batch_engine.h"
#include "moe/serving/replay.h"
#include "moe/serving/trace.h"

namespace {

using namespace lookahead::moe;
using namespace lookahead::moe::serving;

struct ReplayFlags {
  lookahead::cli::ModelFlags model;
  lookahead::cli::ExpertTierFlags tier = lookahead::cli::tier_flags_with_cache("resident");
  std::string trace, format, corpus, scheduler = "expert-aware";
  std::string kv_budget, clock = "wall", queue_length = "tokens", prefill_order = "queue";
  std::string partial_queue = "stop";
  std::string record_stream;
  double rate = 0;
  int64_t synth = 0, max_requests = 0, token_budget = 1024, max_running = 16, ctx = 2048, starvation = 32;
  int64_t prefill_chunk = 0;
  std::string prefix_cache = "off";
  int horizon = 1, threads = 0;
  double prompt_median = 256, output_median = 128;
  double model_mem_gbs = 10, model_gflops = 60;  // --clock model's machine
  uint64_t seed = 0;
  bool skip_bad = false, json = false;
};

std::string read_text(const std::string& path) { return lookahead::read_input_file(path, "--corpus"); }

nlohmann::json distribution_json(const Distribution& d) {
  return {{"mean", d.mean}, {"p50", d.p50}, {"p95", d.p95}, {"p99", d.p99}};
}

// Scheduler names, trace source and clock, checked before the model is loaded.
struct ReplayChoice {
  SchedulerKind scheduler;
  QueueLength queue_length;
  PrefillOrder prefill_order;
  PartialQueue partial_queue;
};

ReplayChoice check_flags(const ReplayFlags& f) {
  lookahead::cli::apply_threads(f.threads);
  if (f.trace.empty() == (f.synth <= 0)) lookahead::fail("give exactly one of --trace FILE and --synth N");
  if (f.synth > 0 && f.corpus.empty()) lookahead::fail("--synth needs --corpus FILE (the text prompts are drawn from)");
  if (f.synth > 0 && !(f.rate > 0)) lookahead::fail("--synth needs --rate R > 0 (requests per second)");
  ReplayChoice c;
  c.scheduler = parse_scheduler(f.scheduler, "--scheduler");
  c.queue_length = parse_queue_length(f.queue_length, "--queue-length");
  c.prefill_order = parse_prefill_order(f.prefill_order, "--prefill-order");
  c.partial_queue = parse_partial_queue(f.partial_queue, "--partial-queue");
  if (f.clock != "wall" && f.clock != "cpu" && f.clock != "model")
    lookahead::fail("--clock '{}' must be wall, cpu or model", f.clock);
  if (!(f.model_mem_gbs > 0) || !(f.model_gflops > 0))
    lookahead::fail("--model-mem-gbs and --model-gflops must be positive (got {} and {})", f.model_mem_gbs, f.model_gflops);
  return c;
}

// The trace, tokenized with the model's tokenizer (exact lengths).
Trace load_trace(const ReplayFlags& f, const Tokenizer& tokenizer) {
  if (f.synth > 0) {
    SynthTraceOptions so;
    so.n_requests = f.synth;
    so.rate = f.rate;
    so.seed = f.seed;
    so.prompt_median = f.prompt_median;
    so.output_median = f.output_median;
    // Whole-prompt prefills must fit one batch; chunked ones may fill half the context (the other
    // half is room for the output).
    so.prompt_max = std::min<int64_t>(so.prompt_max, f.prefill_chunk == 0 ? f.token_budget : f.ctx / 2);
    so.output_max = std::min<int64_t>(so.output_max, f.ctx - so.prompt_max);
    return synth_trace(read_text(f.corpus), f.corpus, so, &tokenizer);
  }
  TraceOptions to;
  to.tokenizer = &tokenizer;
  to.rate = f.rate;
  to.seed = f.seed;
  to.skip_bad = f.skip_bad;
  to.max_requests = f.max_requests;
  std::optional<TraceFormat> format;
  if (!f.format.empty()) format = parse_trace_format(f.format, "--format");
  return read_trace(f.trace, format, to);
}

std::unique_ptr<TieredExperts> make_tiers(const ReplayFlags& f, const ReadMeModel* readme) {
  if (f.tier.cache != "resident" && !readme)
    lookahead::fail("--cache {}: a dense model has no experts to cache (use a Read-ME model directory)", f.tier.cache);
  lookahead::cli::ExpertTierChoice choice = lookahead::cli::parse_expert_cache_flags(f.tier);
  if (!choice.tiered) return nullptr;
  lookahead::cli::apply_tier_io_flags(f.tier, choice);
  TierOptions t = choice.options(readme->backbone().hparams().n_layer);  // k experts' slabs in every layer
  t.seed = f.seed;
  return std::make_unique<TieredExperts>(*readme, t);
}

BatchEngineOptions engine_options(const ReplayFlags& f, const ReplayChoice& c, const ReadMeModel* readme) {
  BatchEngineOptions o;
  o.scheduler = c.scheduler;
  o.limits.token_budget = f.token_budget;
  o.limits.max_running = f.max_running;
  o.limits.starvation_limit = f.starvation;
  o.limits.queue_length = c.queue_length;
  o.limits.prefill_order = c.prefill_order;
  o.limits.partial_queue = c.partial_queue;
  o.n_ctx = f.ctx;
  o.prefill_chunk = f.prefill_chunk;
  o.prefix_cache = f.prefix_cache == "on";
  if (!f.kv_budget.empty()) {
    const Budget b = parse_budget(f.kv_budget);
    if (!b.bytes) lookahead::fail("--kv-budget takes bytes (e.g. 256MiB), not experts");
    o.kv_budget_bytes = b.bytes;
  }
  o.route = serving_route(readme, f.model.route);
  o.plan_horizon = f.horizon;
  return o;
}

ReplayOptions replay_options(const ReplayFlags& f, const LoadedModel& loaded, const ReadMeModel* readme) {
  ReplayOptions ro;
  if (f.clock == "cpu") {
    if (kernel_threads() != 1) lookahead::fail("--clock cpu needs --threads 1 (it counts one thread's CPU time)");
    ro.clock = StepClock::CPU;
  } else if (f.clock == "model") {
    ro.clock = StepClock::MODEL;
    ro.cost = make_step_cost_model(loaded.llama(), readme);
    ro.cost.mem_bytes_per_s = f.model_mem_gbs * 1e9;
    ro.cost.flops_per_s = f.model_gflops * 1e9;
  }
  return ro;
}

void print_json(const ReplayFlags& f, const std::string& route, const Trace& trace, const ReplaySummary& s,
                const TieredExperts* tiers) {
  nlohmann::json j = {
      {"model", f.model.model}, {"route", route}, {"trace", f.trace.empty() ? fmt::format("synth:{}", f.synth) : f.trace},
      {"rate", f.rate}, {"scheduler", f.scheduler},
      {"queue_length", f.queue_length}, {"prefill_order", f.prefill_order},
      {"partial_queue", f.partial_queue}, {"cache", f.tier.cache}, {"budget", f.tier.budget}, {"prefetch", f.tier.prefetch},
      {"token_budget", f.token_budget}, {"prefill_chunk", f.prefill_chunk}, {"prefix_cache", f.prefix_cache},
      {"max_running", f.max_running}, {"threads", kernel_threads()},
      {"requests", s.requests}, {"skipped", trace.skipped}, {"prompt_tokens", s.prompt_tokens},
      {"generated_tokens", s.generated_tokens}, {"steps", s.steps},
      {"normalized_latency_s", distribution_json(s.normalized_latency_s)}, {"ttft_s", distribution_json(s.ttft_s)},
      {"tpot_s", distribution_json(s.tpot_s)}, {"throughput_tok_s", s.throughput_tok_s},
      {"requests_per_s", s.requests_per_s}, {"mean_unique_experts", s.mean_unique_experts},
      {"mean_batch_tokens", s.mean_batch_tokens}, {"cache_hit_ratio", s.cache_hit_ratio},
      {"cache_accesses", s.cache_accesses}, {"cache_hits", s.cache_hits}, {"cache_in_flight", s.cache_in_flight},
      {"cache_in_flight_ratio", s.cache_in_flight_ratio}, {"cache_misses", s.cache_misses},
      {"cache_prefetched_hits", s.cache_prefetched_hits}, {"horizon", f.horizon},
      {"slow_tier_bytes", s.slow_tier_bytes}, {"prefetch_bytes", s.prefetch_bytes}, {"stall_s", s.stall_s}, {"compute_s", s.compute_s},
      {"makespan_s", s.makespan_s}, {"router_cpu_s", s.router_s}, {"admission_s", s.admission_s},
      {"direct_io", tiers ? tiers->direct_io() : false}, {"clock", f.clock}};
  fmt::print("{}\n", j.dump());
}

void print_report(const ReplayFlags& f, const Trace& trace, const ReplaySummary& s, const TieredExperts* tiers) {
  const std::string policy = lookahead::cli::cache_flag_display(f.tier.cache, f.horizon);
  const std::string cache = tiers ? fmt::format("{} budget {} prefetch {}{}", policy,
                                                f.tier.budget.empty() ? "-" : f.tier.budget, f.tier.prefetch,
                                                tiers->direct_io() ? "" : " (buffered reads)")
                                  : "resident (memory-mapped)";
  fmt::print("replay: {} requests ({} prompt + {} generated tokens), {} steps; {} scheduler, cache {}\n", s.requests,
             s.prompt_tokens, s.generated_tokens, s.steps, f.scheduler, cache);
  if (trace.skipped) fmt::print("  {} trace entries skipped\n", trace.skipped);
  fmt::print("| metric | mean | p50 | p95 | p99 |\n|---|---:|---:|---:|---:|\n");
  auto row = [](const char* name, const Distribution& d, double scale) {
    fmt::print("| {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} |\n", name, d.mean * scale, d.p50 * scale, d.p95 * scale,
               d.p99 * scale);
  };
  row("normalized latency (ms/token)", s.normalized_latency_s, 1e3);
  row("time to first token (ms)", s.ttft_s, 1e3);
  row("time per output token (ms)", s.tpot_s, 1e3);
  fmt::print("throughput {:.1f} tokens/s, {:.2f} requests/s over {:.1f} s (compute {:.1f} s; router {:.2f} s of CPU "
             "time, {:.1f}% of compute)\n",
             s.throughput_tok_s, s.requests_per_s, s.makespan_s, s.compute_s, s.router_s,
             s.compute_s > 0 ? 100 * s.router_s / s.compute_s : 0.0);
  fmt::print("unique experts per batch {:.2f}, tokens per batch {:.1f}\n", s.mean_unique_experts, s.mean_batch_tokens);
  if (tiers)
    fmt::print("expert cache: {} accesses: hits {:.1f}% ({} of them prefetched slabs that landed in time), in flight "
               "at use {:.1f}% (prefetch started, not finished: waited, counted as stalls, not hits), misses {:.1f}%; "
               "slow tier {:.1f} MiB read ({:.1f} MiB prefetched ahead of use, {:.1f} MiB on demand), compute stalled "
               "{:.2f} s\n",
               s.cache_accesses, 100 * s.cache_hit_ratio, s.cache_prefetched_hits, 100 * s.cache_in_flight_ratio,
               s.cache_accesses ? 100.0 * static_cast<double>(s.cache_misses) / static_cast<double>(s.cache_accesses) : 0.0,
               s.slow_tier_bytes / 1048576.0, s.prefetch_bytes / 1048576.0,
               (s.slow_tier_bytes - s.prefetch_bytes) / 1048576.0, s.stall_s);
  if (tiers && f.clock == "model")
    fmt::print("  (--clock model: loads do not move the clock, so batches are the same for every policy; latencies "
               "leave out the {:.2f} s stalled)\n", s.stall_s);
}

void run_replay(const ReplayFlags& f) {
  const ReplayChoice choice = check_flags(f);
  LoadedModel loaded(f.model.model, f.model.route);
  const ReadMeModel* readme = loaded.readme();
  const Trace trace = load_trace(f, loaded.source().tokenizer());
  const std::unique_ptr<TieredExperts> tiers = make_tiers(f, readme);
  const BatchEngineOptions o = engine_options(f, choice, readme);
  const ExpertWeights* experts = tiers ? static_cast<const ExpertWeights*>(tiers.get()) : readme;
  std::unique_ptr<StreamRecorder> recorder;
  if (!f.record_stream.empty()) {
    if (!readme) lookahead::fail("--record-stream: a dense model has no expert accesses (use a Read-ME model directory)");
    recorder = std::make_unique<StreamRecorder>(*experts, *readme, f.horizon);
    experts = recorder.get();
  }
  BatchEngine engine(loaded.llama(), readme, experts, tiers.get(), {}, o);
  engine.set_recorder(recorder.get());
  const ReplayResult result = replay_trace(engine, trace, tiers.get(), replay_options(f, loaded, readme));
  if (recorder) {
    recorder->stream().source_json =
        nlohmann::json{{"command", "moe replay"}, {"model", f.model.model},
                       {"trace", f.trace.empty() ? fmt::format("synth:{}", f.synth) : f.trace}, {"rate", f.rate},
                       {"seed", f.seed}, {"scheduler", f.scheduler}, {"token_budget", f.token_budget},
                       {"max_running", f.max_running}, {"clock", f.clock}, {"cache", f.tier.cache},
                       {"budget", f.tier.budget}, {"prefetch", f.tier.prefetch}, {"horizon", f.horizon},
                       {"prompt_median", f.prompt_median}, {"output_median", f.output_median}}
            .dump();
    write_access_stream(f.record_stream, recorder->stream());
  }
  const ReplaySummary s = summarize(result);
  if (f.json)
    print_json(f, o.route, trace, s, tiers.get());
  else
    print_report(f, trace, s, tiers.get());
}

void add_trace_flags(CLI::App& cmd, ReplayFlags& f) {
  cmd.add_option("--trace", f.trace, "trace file: our JSONL, ShareGPT or LMSYS JSON (docs/serving-system.md)");
  cmd.add_option("--format", f.format, "jsonl, sharegpt or lmsys (default: detected)");
  cmd.add_option("--synth", f.synth, "replay N synthetic requests instead of a trace (needs --corpus, --rate)");
  cmd.add_option("--corpus", f.corpus, "text the synthetic prompts are drawn from");
  cmd.add_option("--prompt-median", f.prompt_median, "synthetic prompt length median (tokens, log-normal)")->capture_default_str();
  cmd.add_option("--output-median", f.output_median, "synthetic output length median (tokens, log-normal)")->capture_default_str();
  cmd.add_option("--rate", f.rate, "Poisson arrivals at R requests/s (required for ShareGPT/LMSYS dumps)");
  cmd.add_option("--max-requests", f.max_requests, "replay the first N requests (0 = all)")->capture_default_str();
  cmd.add_flag("--skip-bad", f.skip_bad, "skip malformed trace entries (counted) instead of failing");
}

void add_scheduler_flags(CLI::App& cmd, ReplayFlags& f) {
  cmd.add_option("--scheduler", f.scheduler, "expert-aware, decode-first or prefill-first")->capture_default_str();
  cmd.add_option("--queue-length", f.queue_length,
                 "expert-aware: what the longest queue counts: tokens (a prompt counts all its tokens) or requests")
      ->capture_default_str();
  cmd.add_option("--prefill-order", f.prefill_order,
                 "expert-aware: queue (a prompt goes in with its expert's queue) or fcfs (prompts in arrival order)")
      ->capture_default_str();
  cmd.add_option("--partial-queue", f.partial_queue,
                 "expert-aware: when the longest queue does not fit: stop (Algorithm 1) or continue with the next queues")
      ->capture_default_str();
}

void add_engine_flags(CLI::App& cmd, ReplayFlags& f) {
  lookahead::cli::add_cache_flag(cmd, f.tier,
                                 "resident (memory-mapped), belady-online (Belady on the known batch plus --horizon "
                                 "predicted batches; alias belady), lru, random or none");
  lookahead::cli::add_budget_flag(cmd, f.tier, "expert cache RAM budget: bytes (512MiB) or experts (3experts)");
  lookahead::cli::add_prefetch_flag(cmd, f.tier, "on, off or conservative (belady: prefetch only what demand Belady loads)");
  lookahead::cli::add_direct_io_flag(cmd, f.tier, "on (O_DIRECT reads) or off (buffered + fadvise)");
  lookahead::cli::add_readers_flag(cmd, f.tier);
  cmd.add_option("--horizon", f.horizon, "predicted batches beyond the current one in the expert plan")->capture_default_str();
  cmd.add_option("--record-stream", f.record_stream,
                 "write the exact expert slab access stream (and each step's plan) to FILE for moe cache-sim");
  cmd.add_option("--token-budget", f.token_budget,
                 "tokens per batch (MaxTokenLen); the longest prompt must fit unless --prefill-chunk splits prompts")
      ->capture_default_str();
  cmd.add_option("--prefill-chunk", f.prefill_chunk, "prefill prompts this many tokens per batch (0 = whole prompts)")
      ->capture_default_str();
  cmd.add_option("--prefix-cache", f.prefix_cache, "reuse finished requests' KV caches for shared prompt prefixes: on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd.add_option("--max-running", f.max_running, "sequences holding a KV cache at once")->capture_default_str();
  cmd.add_option("--starvation-limit", f.starvation, "expert-aware: batches a request may wait before its queue goes first (0 = off)")->capture_default_str();
  cmd.add_option("--ctx,-c", f.ctx, "most tokens (prompt + output) of one sequence")->capture_default_str();
  cmd.add_option("--kv-budget", f.kv_budget, "KV cache memory of all sequences (default: max-running full contexts)");
}

void add_clock_flags(CLI::App& cmd, ReplayFlags& f) {
  cmd.add_option("--clock", f.clock,
                 "step time: wall; cpu (engine thread CPU + expert-load stalls; needs --threads 1); or model (a cost "
                 "model of streamed weight bytes and flops: deterministic batches; with a cache, loads are counted "
                 "but do not move the clock, so every policy sees the same batches)")
      ->capture_default_str();
  cmd.add_option("--model-mem-gbs", f.model_mem_gbs, "--clock model: weight streaming rate, GB/s")->capture_default_str();
  cmd.add_option("--model-gflops", f.model_gflops, "--clock model: matrix-multiply rate, GFLOP/s")->capture_default_str();
}

const bool registered = lookahead::cli::register_command(
    {"moe", "replay", "Serve a request trace with the batching engine and report latency, throughput and cache metrics",
     [](CLI::App& cmd) {
       auto f = std::make_shared<ReplayFlags>();
       lookahead::cli::add_model_flags(cmd, f->model);
       add_trace_flags(cmd, *f);
       add_scheduler_flags(cmd, *f);
       add_engine_flags(cmd, *f);
       cmd.add_option("--seed", f->seed, "arrival and synthetic-trace seed")->capture_default_str();
       cmd.add_option("--threads,-t", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
       add_clock_flags(cmd, *f);
       cmd.add_flag("--json", f->json, "one JSON object");
       cmd.callback([f] { run_replay(*f); });
     }});

}  // namespace
