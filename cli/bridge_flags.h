#pragma once
// Flags shared by `lookahead bridge traffic|run|placement`: where the routing comes from (a Read-ME
// model on text, an expert trace, or a Zipf draw), the deployment (experts on the fabric's hosts,
// placement, token size) and the fabric (the net topology flags; default a small 4x4 leaf-spine).
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "bridge/routing_source.h"
#include "bridge/traffic.h"
#include "cli/net_topology_flags.h"
#include "cli/resource_flags.h"
#include "common/error.h"
#include "moe/model/readme_model.h"
#include "moe/refactor/corpus.h"

namespace lookahead::cli {

struct BridgeFlags {
  TopologyFlags topo;
  std::string model, trace, placement = "round-robin", dtype = "bf16", sync = "host";
  std::vector<std::string> text;  // several: each batch takes an equal share of tokens from each, in order
  double zipf = -1;
  int experts = 0, slots_per_host = 0, layers = 32, threads = 0;
  int64_t batch_tokens = 4096, ctx = 512, hidden = 4096;
  uint64_t seed = 1;

  BridgeFlags() {
    topo.leaf_spine.leaves = 4;
    topo.leaf_spine.spines = 4;
    topo.leaf_spine.hosts_per_leaf = 4;
  }

  void add(CLI::App& cmd) {
    topo.add(cmd);
    // The topology flags' help names the net defaults (16x16x16); the bridge's are smaller.
    for (auto* o : topo.options) {
      if (o->check_name("--leaves")) o->description("leaf switches (leaf_spine, default 4)");
      if (o->check_name("--spines")) o->description("spine switches (leaf_spine, default 4)");
      if (o->check_name("--hosts-per-leaf")) o->description("hosts per leaf (default 4); every host holds experts");
    }
    cmd.add_option("--model", model, "Read-ME model directory: its pre-gating router routes --text (the backbone never runs)");
    cmd.add_option("--text", text, "text file(s) the router routes (with --model); with several, every batch takes an equal share of consecutive tokens from each (a mixed batch)")->delimiter(',');
    cmd.add_option("--trace", trace, "expert trace instead of a model: one expert id per token, whitespace separated");
    cmd.add_option("--zipf", zipf, "synthetic routing instead of a model: P(expert e) ~ 1/(e+1)^S (needs --experts)");
    cmd.add_option("--experts", experts, "experts (default: the model's, or the trace's largest id + 1)");
    cmd.add_option("--placement", placement, "round-robin or hot (replicas follow the batch's expert loads)")->capture_default_str();
    cmd.add_option("--slots-per-host", slots_per_host, "expert replicas per host (default: ceil(experts / hosts))");
    cmd.add_option("--batch-tokens", batch_tokens, "tokens per batch, spread evenly over the hosts")->capture_default_str();
    cmd.add_option("--ctx,-c", ctx, "router window (positions) when routing text")->capture_default_str();
    cmd.add_option("--hidden", hidden, "hidden size of the deployed model (7B shape: 4096)")->capture_default_str();
    cmd.add_option("--dtype", dtype, "activation dtype on the wire: bf16, f16, f32 or fp8")->capture_default_str();
    cmd.add_option("--layers", layers, "MoE layers of the deployed model (7B shape: 32)")->capture_default_str();
    cmd.add_option("--sync", sync, "host: a host's combine waits for its own dispatch-in, its next dispatch for its own combine-in; phase: a barrier between phases (blocking all-to-all collectives)")->capture_default_str();
    cmd.add_option("--seed", seed, "seed (Zipf draws, planners' shuffles, simulator)")->capture_default_str();
    cmd.add_option("--threads,-t", threads, "CPU threads for the router (0 = all cores)")->capture_default_str();
  }

  uint64_t bytes_per_token() const {
    if (hidden < 1) fail("--hidden must be >= 1 (got {})", hidden);
    uint64_t b = 0;
    if (dtype == "bf16" || dtype == "f16") b = 2;
    else if (dtype == "f32") b = 4;
    else if (dtype == "fp8") b = 1;
    else fail("--dtype: expected bf16, f16, f32 or fp8, got '{}'", dtype);
    return static_cast<uint64_t>(hidden) * b;
  }

  // Checks the flag combinations before any model is read.
  void check() const {
    const int sources = (!model.empty() || !text.empty()) + !trace.empty() + (zipf >= 0);
    if (sources != 1) fail("give exactly one routing source: --model DIR --text FILE, --trace FILE, or --zipf S --experts E");
    if (!model.empty() && text.empty()) fail("--model needs --text FILE (the text its router routes)");
    if (model.empty() && !text.empty()) fail("--text needs --model DIR (the Read-ME model whose router routes it)");
    if (zipf >= 0 && experts < 1) fail("--zipf needs --experts E (>= 1)");
    if (batch_tokens < 1) fail("--batch-tokens must be >= 1 (got {})", batch_tokens);
    if (layers < 1) fail("--layers must be >= 1 (got {})", layers);
    if (experts < 0) fail("--experts must be >= 1 (got {})", experts);
    bridge::parse_placement(placement);
    bridge::parse_sync(sync);
    bytes_per_token();
  }

  // `count` consecutive batches of batch_tokens tokens each: experts per token. Sets `experts`.
  std::vector<std::vector<int32_t>> batches(int count) {
    const auto total = static_cast<uint64_t>(batch_tokens) * static_cast<uint64_t>(count);
    std::vector<int32_t> all;
    if (!model.empty()) {
      apply_threads(threads);
      moe::ReadMeModel m(model);
      if (experts > 0 && experts != m.n_expert())
        fail("--experts {} differs from the model's {} experts (leave it out with --model)", experts, m.n_expert());
      experts = m.n_expert();
      // Batch b = file 0's b-th share, then file 1's, ...: each file's requests land on their own hosts.
      const auto files = static_cast<uint64_t>(text.size());
      std::vector<std::vector<int32_t>> routed;
      for (uint64_t f = 0; f < files; ++f) {
        const uint64_t share = static_cast<uint64_t>(batch_tokens) / files + (f < static_cast<uint64_t>(batch_tokens) % files ? 1 : 0);
        if (share == 0) fail("--batch-tokens {} gives no token to --text {}", batch_tokens, text[f]);
        routed.push_back(bridge::route_text(m, moe::read_text_file(text[f]), static_cast<int64_t>(share * static_cast<uint64_t>(count)), ctx, text[f]));
      }
      for (int b = 0; b < count; ++b)
        for (const auto& r : routed) {
          const size_t share = r.size() / static_cast<size_t>(count);
          all.insert(all.end(), r.begin() + static_cast<std::ptrdiff_t>(b * share), r.begin() + static_cast<std::ptrdiff_t>((b + 1) * share));
        }
    } else if (!trace.empty()) {
      all = bridge::read_expert_trace(trace, experts);
      if (experts == 0) experts = *std::max_element(all.begin(), all.end()) + 1;
      if (all.size() < total) fail("{}: has {} tokens, fewer than the {} the batches need", trace, all.size(), total);
    } else {
      all = bridge::zipf_experts(experts, zipf, total, seed);
    }
    std::vector<std::vector<int32_t>> out;
    for (int b = 0; b < count; ++b)
      out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(b * batch_tokens),
                       all.begin() + static_cast<std::ptrdiff_t>((b + 1) * batch_tokens));
    return out;
  }
};

}  // namespace lookahead::cli
