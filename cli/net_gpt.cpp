// `lookahead net gpt --model gpt-117m --out gpt.json [...]`: a GPT training iteration's gradient
// all-reduces (data-parallel, DDP buckets; net/workload/gpt.h) written as a `--jobs` spec, so
// `lookahead net repro --jobs gpt.json` runs it under every load-balancing scheme and reports the
// iteration's makespan per scheme.
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "net/collective/collective.h"
#include "net/scenario/spec.h"
#include "net/workload/gpt.h"

namespace {

struct GptOptions {
  std::string model = "gpt-117m", base, out, bucket = "25MiB", algo = "ring";
  int layers = 0, ranks = 0, first_host = 0, grad_bytes = 2;
  int64_t tokens_per_rank = 2048;
  double tflops = 312, mfu = 0.4, jitter_us = 0;
};

// The fabric the spec runs on: --base's topology, network and failures, or the paper's leaf-spine
// (16 leaves x 16 spines x 16 hosts, 400 Gbit/s).
nlohmann::json base_spec(const GptOptions& o) {
  if (o.base.empty())
    return {{"topology", {{"kind", "leaf_spine"}, {"leaves", 16}, {"spines", 16}, {"hosts_per_leaf", 16}, {"host_gbps", 400}}}};
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(lookahead::read_input_file(o.base, "--base"));
  } catch (const nlohmann::json::exception& e) {
    lookahead::fail("--base: '{}' is not JSON: {}", o.base, e.what());
  }
  if (!j.is_object()) lookahead::fail("--base: '{}' must hold a JSON object (a scenario spec)", o.base);
  for (const char* key : {"jobs", "flows", "workload", "matrix"})
    if (j.contains(key)) lookahead::fail("--base: '{}' has '{}'; give a spec with only the fabric (topology, network, failures)", o.base, key);
  return j;
}

// The iteration the flags describe, checked against the fabric's host count.
lookahead::net::GptIterationSpec iteration_spec(const GptOptions& o, int hosts) {
  using namespace lookahead::net;
  if (o.ranks < 0) lookahead::fail("--ranks must be >= 0 (0 = every host; got {})", o.ranks);
  GptIterationSpec g;
  g.model = gpt_model(o.model);
  g.layers = o.layers;
  g.ranks = o.ranks > 0 ? o.ranks : hosts;
  g.first_host = o.first_host;
  if (g.first_host + g.ranks > hosts)
    lookahead::fail("--ranks {} from --first-host {} needs {} hosts; the fabric has {}", g.ranks, g.first_host,
                    g.first_host + g.ranks, hosts);
  g.tokens_per_rank = o.tokens_per_rank;
  g.tflops = o.tflops;
  g.mfu = o.mfu;
  g.bucket_bytes = collective::parse_bytes(o.bucket, "--bucket");
  g.grad_bytes = o.grad_bytes;
  g.algorithm = collective::parse_algorithm(o.algo);
  g.jitter_ps = static_cast<uint64_t>(o.jitter_us * 1e6);
  return g;
}

// One `--jobs` entry per bucket's all-reduce, each after the bucket before it.
nlohmann::json jobs_json(const GptOptions& o, const lookahead::net::GptIterationSpec& g,
                         const lookahead::net::GptIteration& it) {
  using namespace lookahead::net;
  nlohmann::json jobs = nlohmann::json::array();
  for (const Job& job : it.jobs) {
    nlohmann::json j = {{"id", job.name},
                        {"collective", "allreduce"},
                        {"algo", std::string(collective::algorithm_name(job.collective.algorithm))},
                        {"size", job.collective.message_bytes},
                        {"ranks", job.collective.ranks},
                        {"first_host", g.first_host},
                        {"start_us", static_cast<double>(job.start_ps) / 1e6},
                        {"jitter_us", o.jitter_us}};
    for (int a : job.after) j["after"].push_back(it.jobs[static_cast<size_t>(a)].name);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

uint64_t gradient_bytes(const lookahead::net::GptIteration& it) {
  uint64_t total = 0;
  for (const auto& b : it.buckets) total += b.bytes;
  return total;
}

// Free-form provenance in the spec's `about` key: what generated it and from which numbers.
nlohmann::json about_json(const GptOptions& o, const lookahead::net::GptIterationSpec& g,
                          const lookahead::net::GptIteration& it) {
  return {{"generator", "lookahead net gpt"},
          {"model", g.model.name},
          {"layers", o.layers > 0 ? o.layers : g.model.layers},
          {"params", it.params},
          {"ranks", g.ranks},
          {"tokens_per_rank", g.tokens_per_rank},
          {"tflops", g.tflops},
          {"mfu", g.mfu},
          {"bucket_bytes", g.bucket_bytes},
          {"grad_bytes", g.grad_bytes},
          {"forward_us", it.forward_us},
          {"backward_us", it.backward_us},
          {"gradient_bytes", gradient_bytes(it)}};
}

void run_gpt(const GptOptions& o) {
  using namespace lookahead::net;
  if (o.out.empty()) lookahead::fail("--out: required (the spec file to write)");
  if (o.jitter_us < 0) lookahead::fail("--jitter-us must be >= 0 (got {})", o.jitter_us);
  nlohmann::json spec = base_spec(o);
  const int hosts = parse_scenario(spec.dump(), o.base.empty() ? "the default fabric" : o.base).topology.hosts();
  const GptIterationSpec g = iteration_spec(o, hosts);
  const GptIteration it = gpt_iteration(g);
  spec["jobs"] = jobs_json(o, g, it);
  spec["about"] = about_json(o, g, it);
  lookahead::write_file_atomic(o.out, spec.dump(1) + "\n");
  fmt::print("{}: {:.1f}M parameters ({} blocks), {} data-parallel ranks x {} tokens\n", g.model.name,
             static_cast<double>(it.params) / 1e6, o.layers > 0 ? o.layers : g.model.layers, g.ranks, g.tokens_per_rank);
  fmt::print("compute at {:g} TFLOP/s x {:g} MFU: forward {:.1f} us, backward {:.1f} us\n", g.tflops, g.mfu, it.forward_us,
             it.backward_us);
  fmt::print("{} gradient buckets, {:.1f} MiB in all ({} all-reduce); the first ready at {:.1f} us, the last at {:.1f} us\n",
             it.buckets.size(), static_cast<double>(gradient_bytes(it)) / (1 << 20), o.algo, it.buckets.front().ready_us,
             it.buckets.back().ready_us);
  fmt::print("wrote {} (run it: lookahead net repro --jobs {})\n", o.out, o.out);
}

const bool registered = lookahead::cli::register_command(
    {"net", "gpt",
     "Write a GPT training iteration (data-parallel gradient all-reduces in DDP buckets) as a `net repro --jobs` spec",
     [](CLI::App& cmd) {
       auto o = std::make_shared<GptOptions>();
       cmd.add_option("--model", o->model, "gpt-117m | llama-7b | llama-13b")->capture_default_str();
       cmd.add_option("--layers", o->layers, "transformer blocks kept (0 = all; fewer: a shorter model, same widths)")
           ->capture_default_str();
       cmd.add_option("--ranks", o->ranks, "data-parallel ranks, one per host from --first-host (0 = every host)")
           ->capture_default_str();
       cmd.add_option("--first-host", o->first_host, "host of rank 0")->capture_default_str();
       cmd.add_option("--tokens-per-rank", o->tokens_per_rank, "tokens of each rank's micro-batch")->capture_default_str();
       cmd.add_option("--tflops", o->tflops, "peak TFLOP/s per rank (default: A100 BF16 dense)")->capture_default_str();
       cmd.add_option("--mfu", o->mfu, "achieved fraction of the peak, (0, 1]")->capture_default_str();
       cmd.add_option("--bucket", o->bucket, "gradient bucket size (DDP's bucket_cap_mb)")->capture_default_str();
       cmd.add_option("--grad-bytes", o->grad_bytes, "bytes per gradient element: 2 (BF16/FP16) or 4")->capture_default_str();
       cmd.add_option("--algo", o->algo, "all-reduce algorithm: ring | direct | hd | dbt")->capture_default_str();
       cmd.add_option("--jitter-us", o->jitter_us, "each rank enters each all-reduce up to this much late (seeded)")
           ->capture_default_str();
       cmd.add_option("--base", o->base,
                      "JSON scenario spec with the fabric (topology, network, failures) to put the jobs on "
                      "(default: the paper's 16 x 16 x 16 leaf-spine at 400 Gbit/s)");
       cmd.add_option("--out", o->out, "the spec file to write (atomically)")->required();
       cmd.callback([o] { run_gpt(*o); });
     }});

}  // namespace
