// `lookahead bridge placement`: does re-placing or replicating hot experts between batches pay for
// moving their weights, given that the pre-gating router knows the next batches' loads?
// (bridge/replacement.h states the model.)
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "bridge/replacement.h"
#include "cli/bridge_flags.h"
#include "cli/command.h"

namespace {

using namespace lookahead;

struct PlacementOptions {
  cli::BridgeFlags flags;
  int batches = 8, passes = 1;
  int64_t ffn = 11008;
  double keep = 0.5;
  uint64_t expert_bytes = 0;
  bool json = false;
};

void run_placement(PlacementOptions& o) {
  o.flags.check();
  if (o.batches < 1) fail("--batches must be >= 1 (got {})", o.batches);
  if (o.ffn < 1) fail("--ffn must be >= 1 (got {})", o.ffn);
  if (!(o.keep > 0 && o.keep <= 1)) fail("--keep must be in (0, 1] (got {})", o.keep);
  net::Topology topo = o.flags.topo.build();
  const auto batches = o.flags.batches(o.batches);
  // One expert's weights in every layer: gate, up and down of keep x ffn neurons, in the wire dtype.
  const uint64_t expert_bytes =
      o.expert_bytes > 0 ? o.expert_bytes
                         : static_cast<uint64_t>(o.flags.layers) * 3 * static_cast<uint64_t>(std::llround(o.keep * static_cast<double>(o.ffn))) *
                               o.flags.bytes_per_token();
  const auto s = bridge::study_replacement(topo, batches, o.flags.experts, o.flags.slots_per_host, o.flags.layers,
                                           o.flags.bytes_per_token(), expert_bytes, o.passes);
  auto passes_text = [](const bridge::ReplacementBatch& r) {
    if (r.moved_bytes == 0) return std::string("no move");
    return std::isfinite(r.break_even_passes) ? fmt::format("{:.1f}", r.break_even_passes) : std::string("never");
  };
  if (o.json) {
    nlohmann::json j;
    j["expert_bytes"] = expert_bytes;
    j["passes"] = o.passes;
    for (const auto& b : s.batches)
      j["batches"].push_back({{"loads", b.loads}, {"round_robin_us", b.round_robin_us}, {"hot_once_us", b.hot_once_us},
                              {"kept_us", b.kept_us}, {"replaced_us", b.replaced_us}, {"moved_bytes", b.moved_bytes}, {"move_us", b.move_us},
                              {"break_even_passes", std::isfinite(b.break_even_passes) ? nlohmann::json(b.break_even_passes) : nlohmann::json(nullptr)},
                              {"replaced", b.replaced}});
    j["totals_us"] = {{"round_robin", s.round_robin_total_us}, {"hot_once", s.hot_once_total_us}, {"always", s.always_total_us},
                      {"lookahead", s.lookahead_total_us}};
    j["moved_bytes"] = {{"always", s.always_moved_bytes}, {"lookahead", s.lookahead_moved_bytes}};
    fmt::print("{}\n", j.dump(1));
    return;
  }
  fmt::print("{} batches of {} tokens, {} experts on {} hosts ({} slots each), {} layers, {} passes per batch; one expert's weights "
             "{:.1f} MB\n",
             o.batches, o.flags.batch_tokens, o.flags.experts, topo.hosts(),
             o.flags.slots_per_host ? o.flags.slots_per_host : (o.flags.experts + topo.hosts() - 1) / topo.hosts(), o.flags.layers, o.passes,
             static_cast<double>(expert_bytes) / 1e6);
  fmt::print("all-to-all per forward pass (lower bound, ideal splitting), us; 'held' is the lookahead policy's placement before the batch:\n\n");
  fmt::print("| batch | expert loads | round-robin | hot (batch 0) | held | re-placed | moved MB | move us | break-even passes | lookahead re-places |\n");
  fmt::print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
  for (size_t b = 0; b < s.batches.size(); ++b) {
    const auto& r = s.batches[b];
    fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {} | {} |\n", b, fmt::join(r.loads, " "), r.round_robin_us,
               r.hot_once_us, r.kept_us, r.replaced_us, static_cast<double>(r.moved_bytes) / 1e6, r.move_us, passes_text(r), r.replaced ? "yes" : "no");
  }
  fmt::print("\ntotal over {} batches x {} passes (all-to-all + moves), us: round-robin {:.1f}, hot once {:.1f}, always re-place {:.1f} "
             "({:.1f} GB moved), lookahead {:.1f} ({:.1f} GB moved)\n",
             o.batches, o.passes, s.round_robin_total_us, s.hot_once_total_us, s.always_total_us, static_cast<double>(s.always_moved_bytes) / 1e9,
             s.lookahead_total_us, static_cast<double>(s.lookahead_moved_bytes) / 1e9);
}

const bool registered = lookahead::cli::register_command(
    {"bridge", "placement", "Does re-placing hot experts between batches (loads known ahead) pay for moving their weights?",
     [](CLI::App& cmd) {
       auto o = std::make_shared<PlacementOptions>();
       o->flags.add(cmd);
       cmd.add_option("--batches", o->batches, "consecutive batches of --batch-tokens tokens")->capture_default_str();
       cmd.add_option("--passes", o->passes, "forward passes each batch runs (decode steps; 1 = prefill only)")->capture_default_str();
       cmd.add_option("--ffn", o->ffn, "FFN width of the deployed model (7B shape: 11008)")->capture_default_str();
       cmd.add_option("--keep", o->keep, "fraction of FFN neurons per expert (Read-ME: 0.5)")->capture_default_str();
       cmd.add_option("--expert-bytes", o->expert_bytes, "bytes of one expert's weights, all layers (default: layers x 3 x keep x ffn x hidden x dtype)");
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_placement(*o); });
     }});

}  // namespace
