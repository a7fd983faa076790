#pragma once
// Jobs: several collectives on one fabric, concurrently or in sequence (a training iteration is a
// sequence of all-reduces per layer group, or an all-to-all followed by an all-reduce).
//
// Contract:
// - A job is one collective (net/collective) on its own ranks, each rank on a distinct host; jobs
//   may share hosts and links with each other.
// - Timing: a job's rank r sends nothing before its entry time. Without `after` that is
//   start_ps + jitter_r; with `after` it is (the completion of the last job it names) + jitter_r,
//   and not before start_ps. jitter_r is drawn uniformly from [0, jitter_ps] per (seed, job, rank):
//   the same seed gives the same jitter, and a job's jitter does not depend on the other jobs.
// - A job completes when all its flows have; on the simulator each job is one group named after
//   the job (GroupResult: its completion time), and `after` is a group gate (FlowSpec::after_groups),
//   so no flow-to-flow edges are added between jobs.
// - Bad input throws lookahead::Error naming the job: no jobs, duplicate names, a host out of range
//   or used twice in a job, more ranks than hosts, an `after` naming an unknown job or itself, a
//   cycle of `after`, and whatever the collective rejects (message smaller than its chunks, ...).
#include <cstdint>
#include <string>
#include <vector>

#include "net/collective/collective.h"
#include "net/workload/workload.h"

namespace lookahead::net {

struct Job {
  std::string name;
  collective::CollectiveSpec collective;  // collective.ranks == hosts.size()
  std::vector<int> hosts;                 // rank -> host
  uint64_t start_ps = 0;                  // earliest entry
  uint64_t jitter_ps = 0;                 // each rank enters up to this much later (seeded)
  std::vector<int> after;                 // indices of jobs that must complete first
};

// Checks the jobs against a fabric of `hosts` hosts and expands each into its collective.
std::vector<collective::Collective> expand_jobs(const std::vector<Job>& jobs, int hosts, const std::string& where = "jobs");

// Rank r of job `job_index` enters jitter_r after its start (see the contract); one per rank.
std::vector<uint64_t> rank_jitter_ps(const Job& job, int job_index, uint64_t seed);

// Adds the jobs' flows to `w` (one group per job, named after it) and returns, per job, the
// workload flow id of each collective flow. order[k] (optional, or empty for id order) lists job
// k's collective flow ids in the order they are added (a host's NIC serves its flows in that
// order). split_on_start marks every flow for Simulator::on_split.
std::vector<std::vector<int>> add_jobs(Workload& w, const std::vector<Job>& jobs, const std::vector<collective::Collective>& collectives,
                                       uint64_t seed, const std::vector<std::vector<int>>& order = {}, bool split_on_start = false);

}  // namespace lookahead::net
