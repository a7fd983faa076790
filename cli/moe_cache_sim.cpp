// `lookahead moe cache-sim --stream FILE --budget B [--budget B ...] [--policy P,P,...] [--json]`:
// replays one recorded expert access stream (`moe replay --record-stream FILE`) through each cache
// policy offline (moe/serving/cache_sim.h) and reports hits, misses and slow-tier bytes. Every
// policy sees the same batches, so the numbers compare; nothing is timed, so they are exact.
// --budget is bytes (512MiB) or experts (3experts = the slabs of 3 experts in every layer).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "common/error.h"
#include "moe/serving/access_stream.h"
#include "moe/serving/cache_sim.h"
#include "moe/serving/engine_choice.h"

namespace {

using namespace lookahead::moe::serving;

struct CacheSimFlags {
  std::string stream;
  std::vector<std::string> budgets;
  std::string policies = "optimum,belady-online,lru,random";
  uint64_t seed = 0;
  bool json = false;
};

struct SimRow {
  std::string budget;
  CacheCapacity capacity;
  StreamPolicy policy;
  CacheStats stats;
};

std::vector<StreamPolicy> parse_policies(const std::string& list) {
  std::vector<StreamPolicy> out;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) out.push_back(parse_stream_policy(name, "--policy"));
  if (out.empty()) lookahead::fail("--policy: give at least one of optimum, belady-online, lru, random");
  return out;
}

CacheCapacity capacity_of(const std::string& text, const AccessStream& s) {
  const Budget b = parse_budget(text);
  CacheCapacity c;
  c.max_bytes = b.bytes;
  c.max_slabs = b.experts * s.n_layer;  // k experts = k slabs in every layer
  if (b.experts > s.n_expert)
    lookahead::fail("--budget {}: the stream's model has only {} experts", text, s.n_expert);
  return c;
}

double ratio(uint64_t a, uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }

void print_report(const CacheSimFlags& f, const AccessStream& s, const std::vector<SimRow>& rows) {
  fmt::print("cache-sim: {}: {} steps, {} slab accesses ({} layers x {} experts), plans of the known batch + {} "
             "predicted batch{}\n",
             f.stream, s.steps.size(), s.accesses(), s.n_layer, s.n_expert, s.plan_horizon,
             s.plan_horizon == 1 ? "" : "es");
  fmt::print("  recorded by: {}\n", s.source_json);
  fmt::print("  every policy replays this one stream (demand paging, no prefetch); optimum = Belady over the whole "
             "recorded stream, belady-online = Belady on the known batch + the recorded prediction\n");
  fmt::print("| budget | policy | hit ratio | hits | misses | misses / optimum's | slow-tier MiB | evictions |\n");
  fmt::print("|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const SimRow& r : rows) {
    uint64_t optimum = 0;
    bool have_optimum = false;
    for (const SimRow& o : rows)
      if (o.budget == r.budget && o.policy == StreamPolicy::OPTIMUM) optimum = o.stats.misses, have_optimum = true;
    const std::string vs = have_optimum && optimum ? fmt::format("{:.2f}x", ratio(r.stats.misses, optimum)) : "-";
    fmt::print("| {} | {} | {:.1f}% | {} | {} | {} | {:.0f} | {} |\n", r.budget, stream_policy_name(r.policy),
               100 * r.stats.hit_ratio(), r.stats.hits, r.stats.misses, vs, r.stats.bytes_loaded / 1048576.0,
               r.stats.evictions);
  }
}

void print_json(const CacheSimFlags& f, const AccessStream& s, const std::vector<SimRow>& rows) {
  nlohmann::json results = nlohmann::json::array();
  for (const SimRow& r : rows)
    results.push_back({{"budget", r.budget}, {"budget_slabs", r.capacity.max_slabs}, {"budget_bytes", r.capacity.max_bytes},
                       {"policy", stream_policy_name(r.policy)}, {"accesses", r.stats.accesses}, {"hits", r.stats.hits},
                       {"misses", r.stats.misses}, {"hit_ratio", r.stats.hit_ratio()},
                       {"bytes_loaded", r.stats.bytes_loaded}, {"evictions", r.stats.evictions}});
  const nlohmann::json j = {{"stream", f.stream}, {"steps", s.steps.size()}, {"accesses", s.accesses()},
                            {"n_layer", s.n_layer}, {"n_expert", s.n_expert}, {"plan_horizon", s.plan_horizon},
                            {"source", nlohmann::json::parse(s.source_json)}, {"seed", f.seed},
                            {"results", std::move(results)}};
  fmt::print("{}\n", j.dump());
}

void run_cache_sim(const CacheSimFlags& f) {
  const std::vector<StreamPolicy> policies = parse_policies(f.policies);
  if (f.budgets.empty()) lookahead::fail("--budget is required (bytes like 512MiB, or experts like 3experts)");
  for (const std::string& b : f.budgets) parse_budget(b);  // malformed budgets fail before the stream is read
  const AccessStream stream = read_access_stream(f.stream);
  std::vector<SimRow> rows;
  for (const std::string& b : f.budgets) {
    const CacheCapacity c = capacity_of(b, stream);
    for (StreamPolicy p : policies) rows.push_back({b, c, p, simulate_on_stream(stream, p, c, f.seed)});
  }
  if (f.json)
    print_json(f, stream, rows);
  else
    print_report(f, stream, rows);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "cache-sim",
     "Compare expert cache policies (offline optimum, belady-online, LRU, random) on one recorded access stream",
     [](CLI::App& cmd) {
       auto f = std::make_shared<CacheSimFlags>();
       cmd.add_option("--stream", f->stream, "access stream written by moe replay --record-stream")->required();
       cmd.add_option("--budget", f->budgets,
                      "cache budget: bytes (512MiB) or experts (3experts = their slabs in every layer); repeat for several");
       cmd.add_option("--policy", f->policies, "comma-separated: optimum, belady-online, lru, random")
           ->capture_default_str();
       cmd.add_option("--seed", f->seed, "the random policy's seed")->capture_default_str();
       cmd.add_flag("--json", f->json, "one JSON object");
       cmd.callback([f] { run_cache_sim(*f); });
     }});

}  // namespace
