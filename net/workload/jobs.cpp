// Jobs: collectives in sequence or concurrently, with seeded start jitter (contract in jobs.h).
#include "net/workload/jobs.h"

#include <map>
#include <set>

#include "common/error.h"
#include "net/route/path_selection.h"

namespace lookahead::net {

std::vector<collective::Collective> expand_jobs(const std::vector<Job>& jobs, int hosts, const std::string& where) {
  if (jobs.empty()) fail("{}: no jobs", where);
  const int n = static_cast<int>(jobs.size());
  std::set<std::string> names;
  for (int k = 0; k < n; ++k) {
    const Job& j = jobs[k];
    std::string at = fmt::format("{}: job '{}'", where, j.name);
    if (j.name.empty()) fail("{}: job {} has no name", where, k);
    if (!names.insert(j.name).second) fail("{}: duplicate job name '{}'", where, j.name);
    if (static_cast<int>(j.hosts.size()) > hosts)
      fail("{}: {} ranks do not fit on {} hosts (one rank per host)", at, j.hosts.size(), hosts);
    std::set<int> used;
    for (int h : j.hosts) {
      if (h < 0 || h >= hosts) fail("{}: host {} does not exist (the fabric has {} hosts)", at, h, hosts);
      if (!used.insert(h).second) fail("{}: host {} holds two ranks (one rank per host)", at, h);
    }
    for (int a : j.after) {
      if (a < 0 || a >= n) fail("{}: 'after' names unknown job {}", at, a);
      if (a == k) fail("{}: 'after' names the job itself", at);
    }
  }
  // Cycles of `after` (Kahn's algorithm over jobs).
  std::vector<int> indegree(n, 0);
  std::vector<std::vector<int>> next(n);
  for (int k = 0; k < n; ++k)
    for (int a : jobs[k].after) next[a].push_back(k), ++indegree[k];
  std::vector<int> ready;
  for (int k = 0; k < n; ++k)
    if (indegree[k] == 0) ready.push_back(k);
  int seen = 0;
  while (!ready.empty()) {
    int k = ready.back();
    ready.pop_back();
    ++seen;
    for (int m : next[k])
      if (--indegree[m] == 0) ready.push_back(m);
  }
  if (seen != n)
    for (int k = 0; k < n; ++k)
      if (indegree[k] > 0) fail("{}: 'after' forms a cycle through job '{}'", where, jobs[k].name);
  std::vector<collective::Collective> out;
  out.reserve(jobs.size());
  for (const Job& j : jobs) {
    collective::CollectiveSpec spec = j.collective;
    spec.ranks = static_cast<int>(j.hosts.size());
    try {
      out.push_back(collective::expand(spec, j.hosts));
    } catch (const Error& e) {
      fail("{}: job '{}': {}", where, j.name, e.what());
    }
  }
  return out;
}

std::vector<uint64_t> rank_jitter_ps(const Job& job, int job_index, uint64_t seed) {
  std::vector<uint64_t> out(job.hosts.size(), 0);
  if (job.jitter_ps == 0) return out;
  Rng rng(seed * 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(job_index) + 1) * 0x6a6f62ull);
  for (auto& j : out) j = rng.next() % (job.jitter_ps + 1);
  return out;
}

std::vector<std::vector<int>> add_jobs(Workload& w, const std::vector<Job>& jobs, const std::vector<collective::Collective>& collectives,
                                       uint64_t seed, const std::vector<std::vector<int>>& order, bool split_on_start) {
  if (collectives.size() != jobs.size()) fail("add_jobs: {} collectives for {} jobs", collectives.size(), jobs.size());
  std::vector<int> group(jobs.size());
  for (size_t k = 0; k < jobs.size(); ++k) group[k] = w.add_group(jobs[k].name);
  std::vector<std::vector<int>> ids(jobs.size());
  for (size_t k = 0; k < jobs.size(); ++k) {
    const Job& job = jobs[k];
    const collective::Collective& c = collectives[k];
    const auto jitter = rank_jitter_ps(job, static_cast<int>(k), seed);
    std::vector<int> sequence;
    if (k < order.size() && !order[k].empty()) {
      sequence = order[k];
      if (sequence.size() != c.flows.size()) fail("add_jobs: job '{}': order lists {} of {} flows", job.name, sequence.size(), c.flows.size());
    } else {
      for (size_t i = 0; i < c.flows.size(); ++i) sequence.push_back(static_cast<int>(i));
    }
    ids[k].assign(c.flows.size(), -1);
    const int base = static_cast<int>(w.flows.size());
    for (size_t pos = 0; pos < sequence.size(); ++pos) ids[k].at(static_cast<size_t>(sequence[pos])) = base + static_cast<int>(pos);
    for (int id : sequence) {
      const auto& f = c.flows.at(static_cast<size_t>(id));
      FlowSpec s;
      s.src = f.src_host;
      s.dst = f.dst_host;
      s.bytes = f.bytes;
      s.group = group[k];
      s.split_on_start = split_on_start;
      s.channel = static_cast<int>(k);  // a job is one communicator: its messages to a peer go in order
      // Every flow of rank r waits for r's entry, not only its first: a rank forwards data it
      // received only once it has entered the collective itself.
      const uint64_t entry = jitter[static_cast<size_t>(f.src_rank)];
      if (job.after.empty()) {
        s.start_ps = job.start_ps + entry;
      } else {
        s.start_ps = job.start_ps;
        for (int a : job.after) s.after_groups.push_back(group[static_cast<size_t>(a)]);
        s.after_groups_delay_ps = entry;
      }
      for (int d : f.deps) s.deps.push_back(ids[k][static_cast<size_t>(d)]);
      w.add_flow(s);
    }
  }
  return ids;
}

}  // namespace lookahead::net
