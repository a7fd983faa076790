// libFuzzer target: the `net run --spec` JSON scenario parser (net/scenario/spec.cpp: topology,
// network, workload, flows, failures). Any input must either load or throw lookahead::Error; a
// crash, sanitizer report (including float-to-int overflow), leak or hang is a bug. A scenario
// that loads must be internally consistent: its workload validates against its topology and every
// node has a name that maps back to it.
//
// Two guards keep the target on parsing rather than on resources, and are not parser bugs:
// - a top-level "matrix" key names a file to read; it is removed (the matrix parser has its own
//   target, net_matrix_fuzz), so the fuzzer never opens arbitrary paths such as /dev/zero;
// - job "chunks" are capped by the parser (1024), so a job's flow count stays small;
// - topology counts are capped at 8 (a 4-million-host topology is valid input, but building one,
//   or its all-to-all workload, only measures memory).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "net/scenario/spec.h"

namespace {

bool too_big(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("topology") || !j["topology"].is_object()) return false;
  for (const char* key : {"leaves", "spines", "hosts_per_leaf", "hosts", "parallel_links", "k", "pods", "tors_per_pod",
                          "aggs_per_pod", "cores", "hosts_per_tor", "tor_parallel_links", "core_parallel_links"}) {
    auto it = j["topology"].find(key);
    if (it != j["topology"].end() && it->is_number() && it->get<double>() > 8) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lookahead::net;
  std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    if (too_big(j)) return 0;
    if (j.is_object() && j.contains("matrix")) {
      j.erase("matrix");
      text = j.dump();
    }
  }
  try {
    Scenario sc = parse_scenario(text, "fuzz.json", "/nonexistent");
    sc.workload.validate(sc.topology, "fuzz.json");
    for (int n = 0; n < static_cast<int>(sc.topology.nodes.size()); ++n)
      if (node_by_name(sc.topology, node_name(sc.topology, n), "node") != n) __builtin_trap();
    for (const LinkFailure& f : sc.failures)
      if (f.link < 0 || f.link >= static_cast<int>(sc.topology.links.size())) __builtin_trap();
    // Jobs: hosts on the fabric, `after` within the job list, their flows after job_flows_begin.
    for (const Job& job : sc.jobs) {
      for (int h : job.hosts)
        if (h < 0 || h >= sc.topology.hosts()) __builtin_trap();
      for (int a : job.after)
        if (a < 0 || a >= static_cast<int>(sc.jobs.size())) __builtin_trap();
    }
    if (sc.job_flows_begin > sc.workload.flows.size() || (!sc.jobs.empty() && sc.job_flows_begin == sc.workload.flows.size()))
      __builtin_trap();
  } catch (const lookahead::Error&) {
  }
  return 0;
}
