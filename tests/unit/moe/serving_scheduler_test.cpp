// Batch schedulers (moe/serving/scheduler.h): exact batches on hand-made queues, limits, and a
// synthetic continuous-batching workload where expert-aware batches touch fewer unique experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>

#include "common/error.h"
#include "moe/serving/scheduler.h"

namespace lookahead::moe::serving {
namespace {

QueuedRequest decode(uint64_t id, int32_t expert, int64_t waited = 0) { return {id, true, {expert}, waited}; }
QueuedRequest prefill(uint64_t id, std::vector<int32_t> experts) { return {id, false, std::move(experts), 0}; }

std::vector<uint64_t> ids(const Batch& b) {
  std::vector<uint64_t> out;
  for (const BatchStep& s : b.steps) out.push_back(s.id);
  return out;
}

// Six running sequences and one waiting 3-token prompt (queued under expert 1, its most frequent).
std::vector<QueuedRequest> hand_queue() {
  return {decode(1, 0), decode(2, 1), decode(3, 0), decode(4, 2), decode(5, 0), prefill(6, {1, 1, 2}), decode(7, 1)};
}

TEST(ServingScheduler, ExpertAwareAlgorithmOne) {
  // Budget 6: expert 1's queue (r2, r7, prefill r6: 5 tokens) fits and is appended whole; then
  // expert 0's (3 tokens) does not fit the 1 left: r1 fits, r3 does not, stop.
  Batch b = schedule(SchedulerKind::EXPERT_AWARE, hand_queue(), {6, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{2, 7, 6, 1}));
  EXPECT_EQ(b.tokens, 6);
  EXPECT_EQ(b.experts, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_TRUE(b.steps[2].prefill);
  EXPECT_EQ(b.steps[2].tokens, 3);
  // Budget 3: expert 1's queue (5) does not fit: r2, r7 fit, the prefill does not: stop.
  b = schedule(SchedulerKind::EXPERT_AWARE, hand_queue(), {3, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{2, 7}));
  EXPECT_EQ(b.experts, (std::vector<int32_t>{1}));
  // No free slot (6 running, max 6): the prefill is not eligible; queues 0 (3), 1 (2), 2 (1) all fit.
  b = schedule(SchedulerKind::EXPERT_AWARE, hand_queue(), {6, 6, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 3, 5, 2, 7, 4}));
}

SchedulerLimits limits(int64_t budget, int64_t max_running, QueueLength length, PrefillOrder order,
                       PartialQueue partial = PartialQueue::STOP) {
  SchedulerLimits l{budget, max_running, 0};
  l.queue_length = length;
  l.prefill_order = order;
  l.partial_queue = partial;
  return l;
}

TEST(ServingScheduler, ExpertAwareQueueLengthInRequests) {
  // Expert 0: three decodes (3 tokens, 3 requests); expert 1: one 10-token prompt (10 tokens, 1 request).
  const std::vector<QueuedRequest> q = {decode(1, 0), decode(2, 0), decode(3, 0), prefill(4, std::vector<int32_t>(10, 1))};
  // Tokens: the prompt's queue is the longest and fits; expert 0's 3 do not fit the 2 left: r1, r2.
  Batch b = schedule(SchedulerKind::EXPERT_AWARE, q, limits(12, 8, QueueLength::TOKENS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{4, 1, 2}));
  // Requests: expert 0's 3 decodes are the longest queue; then the prompt does not fit the 9 left.
  b = schedule(SchedulerKind::EXPERT_AWARE, q, limits(12, 8, QueueLength::REQUESTS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(b.experts, (std::vector<int32_t>{0}));
  // Ties in requests keep the lowest expert: hand_queue's experts 0 and 1 both hold 3 steps.
  b = schedule(SchedulerKind::EXPERT_AWARE, hand_queue(), limits(3, 8, QueueLength::REQUESTS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 3, 5}));
}

TEST(ServingScheduler, ExpertAwareFcfsPrefills) {
  // r1's 4-token prompt (expert 1) arrived before r2's 6-token prompt (expert 0).
  const std::vector<QueuedRequest> q = {prefill(1, {1, 1, 1, 1}), prefill(2, {0, 0, 0, 0, 0, 0}), decode(3, 0)};
  // Queue order: expert 0 (r3 + r2, 7 tokens) is longest and fits; r1 (4) does not fit the 1 left.
  Batch b = schedule(SchedulerKind::EXPERT_AWARE, q, limits(8, 8, QueueLength::TOKENS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{3, 2}));
  // FCFS: r2 is not eligible before r1, so expert 0's queue is r3 alone (1 token) and expert 1's
  // (r1, 4) is taken first; then expert 0's r3 + r2 (7) do not fit the 4 left: r3 only.
  b = schedule(SchedulerKind::EXPERT_AWARE, q, limits(8, 8, QueueLength::TOKENS, PrefillOrder::FCFS));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 3}));
  // A queue taken before its prompt was next in line keeps it: expert 0's decodes go first
  // (requests 3 > 1), r5's prompt (expert 0) becomes eligible once r4's (expert 1) is in.
  const std::vector<QueuedRequest> q2 = {decode(1, 0), decode(2, 0), decode(3, 0), prefill(4, {1, 1}), prefill(5, {0, 0})};
  b = schedule(SchedulerKind::EXPERT_AWARE, q2, limits(10, 8, QueueLength::REQUESTS, PrefillOrder::FCFS));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  // Without FCFS, expert 0's queue (4 requests) is taken whole first, then expert 1's.
  b = schedule(SchedulerKind::EXPERT_AWARE, q2, limits(10, 8, QueueLength::REQUESTS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3, 5, 4}));
  // FCFS never lets a later prompt overtake one that does not fit: after expert 0's decodes, r1's
  // 4 tokens do not fit the 3 left, so r2's 1-token prompt waits too (queue order takes it).
  const std::vector<QueuedRequest> q3 = {decode(3, 0), decode(6, 0), prefill(1, {1, 1, 1, 1}), prefill(2, {0})};
  b = schedule(SchedulerKind::EXPERT_AWARE, q3, limits(5, 8, QueueLength::REQUESTS, PrefillOrder::FCFS));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{3, 6}));
  b = schedule(SchedulerKind::EXPERT_AWARE, q3, limits(5, 8, QueueLength::REQUESTS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{3, 6, 2}));
}

TEST(ServingScheduler, ExpertAwarePartialQueueContinue) {
  // Decodes only: "what fits" of the longest queue fills the budget, so continue = Algorithm 1.
  const SchedulerLimits cont = limits(6, 8, QueueLength::TOKENS, PrefillOrder::QUEUE, PartialQueue::CONTINUE);
  EXPECT_EQ(ids(schedule(SchedulerKind::EXPERT_AWARE, hand_queue(), cont)), (std::vector<uint64_t>{2, 7, 6, 1}));
  // Expert 0's queue (r1, r2 + an 8-token prompt: 10) does not fit budget 8: stop leaves 6 tokens
  // unused; continue skips the prompt and takes experts 1 and 2's decodes.
  const std::vector<QueuedRequest> q = {decode(1, 0), decode(2, 0), prefill(3, std::vector<int32_t>(8, 0)), decode(4, 1),
                                        decode(5, 2)};
  Batch b = schedule(SchedulerKind::EXPERT_AWARE, q, limits(8, 8, QueueLength::TOKENS, PrefillOrder::QUEUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2}));
  b = schedule(SchedulerKind::EXPERT_AWARE, q, limits(8, 8, QueueLength::TOKENS, PrefillOrder::QUEUE, PartialQueue::CONTINUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 4, 5}));
  EXPECT_EQ(b.experts, (std::vector<int32_t>{0, 1, 2}));
  // With FCFS the 6-token prompt r2 that does not fit still blocks r3's 1-token prompt; queue
  // order lets r3 in.
  const std::vector<QueuedRequest> q2 = {decode(1, 0), prefill(2, {0, 0, 0, 0, 0, 0}), prefill(3, {1})};
  b = schedule(SchedulerKind::EXPERT_AWARE, q2, limits(6, 8, QueueLength::TOKENS, PrefillOrder::FCFS, PartialQueue::CONTINUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1}));
  b = schedule(SchedulerKind::EXPERT_AWARE, q2, limits(6, 8, QueueLength::TOKENS, PrefillOrder::QUEUE, PartialQueue::CONTINUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 3}));
  // The same inside one queue: r2 and r3 both under expert 0.
  const std::vector<QueuedRequest> q3 = {decode(1, 0), prefill(2, {0, 0, 0, 0, 0, 0}), prefill(3, {0})};
  b = schedule(SchedulerKind::EXPERT_AWARE, q3, limits(6, 8, QueueLength::TOKENS, PrefillOrder::FCFS, PartialQueue::CONTINUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1}));
  b = schedule(SchedulerKind::EXPERT_AWARE, q3, limits(6, 8, QueueLength::TOKENS, PrefillOrder::QUEUE, PartialQueue::CONTINUE));
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 3}));
}

TEST(ServingScheduler, DecodeFirst) {
  Batch b = schedule(SchedulerKind::DECODE_FIRST, hand_queue(), {6, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3, 4, 5, 7}));
  b = schedule(SchedulerKind::DECODE_FIRST, hand_queue(), {9, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3, 4, 5, 7, 6}));
  b = schedule(SchedulerKind::DECODE_FIRST, hand_queue(), {3, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(b.experts, (std::vector<int32_t>{0, 1}));
  // FCFS among prefills: a prompt that does not fit blocks later ones.
  b = schedule(SchedulerKind::DECODE_FIRST, {decode(3, 0), prefill(1, {0, 0, 0}), prefill(2, {1})}, {3, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{3}));
}

TEST(ServingScheduler, PrefillFirst) {
  Batch b = schedule(SchedulerKind::PREFILL_FIRST, hand_queue(), {6, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{6, 1, 2, 3}));
  b = schedule(SchedulerKind::PREFILL_FIRST, hand_queue(), {3, 8, 0});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{6}));
  EXPECT_EQ(b.experts, (std::vector<int32_t>{1, 2}));
  b = schedule(SchedulerKind::PREFILL_FIRST, hand_queue(), {6, 6, 0});  // no slot: decodes only
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3, 4, 5, 7}));
}

TEST(ServingScheduler, AdmittedPrefillChunksTakeNoNewSlot) {
  // Two slots: one running decode and one prompt already mid-prefill (admitted) hold both, so a
  // new prompt cannot start, but the admitted chunk still runs, under every scheduler.
  QueuedRequest chunk = prefill(2, {1, 1});
  chunk.admitted = true;
  const std::vector<QueuedRequest> q = {decode(1, 0), chunk, prefill(3, {0})};
  for (SchedulerKind kind : {SchedulerKind::EXPERT_AWARE, SchedulerKind::DECODE_FIRST, SchedulerKind::PREFILL_FIRST}) {
    Batch b = schedule(kind, q, {8, 2, 0});
    std::vector<uint64_t> got = ids(b);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<uint64_t>{1, 2})) << scheduler_name(kind);
    for (const BatchStep& st : b.steps) EXPECT_EQ(st.prefill, st.id == 2);
    // A third slot lets the new prompt in beside them.
    got = ids(schedule(kind, q, {8, 3, 0}));
    EXPECT_EQ(got.size(), 3u) << scheduler_name(kind);
  }
  // Holding a cache counts against max_running, and a step cannot be both running and admitted.
  EXPECT_THROW(schedule(SchedulerKind::DECODE_FIRST, {decode(1, 0), chunk}, {8, 1, 0}), Error);
  QueuedRequest both = decode(4, 0);
  both.admitted = true;
  EXPECT_THROW(schedule(SchedulerKind::DECODE_FIRST, {both}, {8, 2, 0}), Error);
}

TEST(ServingScheduler, StarvationLimitBoundsTheWait) {
  std::vector<QueuedRequest> q;
  for (uint64_t i = 1; i <= 10; ++i) q.push_back(decode(i, 0));
  q.push_back(decode(11, 3, 31));
  Batch b = schedule(SchedulerKind::EXPERT_AWARE, q, {4, 16, 32});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{1, 2, 3, 4}));  // not yet starved: longest queue wins
  q.back().waited_steps = 32;
  b = schedule(SchedulerKind::EXPERT_AWARE, q, {4, 16, 32});
  EXPECT_EQ(ids(b), (std::vector<uint64_t>{11, 1, 2, 3}));
}

TEST(ServingScheduler, BadInput) {
  EXPECT_THROW(schedule(SchedulerKind::EXPERT_AWARE, {prefill(1, {0, 1, 2})}, {2, 8, 0}), Error);
  EXPECT_THROW(schedule(SchedulerKind::DECODE_FIRST, {QueuedRequest{1, true, {0, 1}, 0}}, {8, 8, 0}), Error);
  EXPECT_THROW(schedule(SchedulerKind::DECODE_FIRST, {QueuedRequest{1, false, {}, 0}}, {8, 8, 0}), Error);
  EXPECT_THROW(schedule(SchedulerKind::PREFILL_FIRST, {decode(1, 0), decode(2, 0)}, {8, 1, 0}), Error);
  EXPECT_THROW(schedule(SchedulerKind::PREFILL_FIRST, {}, {0, 1, 0}), Error);
  EXPECT_THROW(parse_scheduler("fcfs"), Error);
  EXPECT_THROW(parse_queue_length("prompts"), Error);
  EXPECT_THROW(parse_prefill_order("lifo"), Error);
  EXPECT_EQ(parse_queue_length("requests"), QueueLength::REQUESTS);
  EXPECT_EQ(parse_prefill_order("fcfs"), PrefillOrder::FCFS);
  EXPECT_STREQ(queue_length_name(QueueLength::TOKENS), "tokens");
  EXPECT_STREQ(prefill_order_name(PrefillOrder::QUEUE), "queue");
  EXPECT_THROW(parse_partial_queue("break"), Error);
  EXPECT_EQ(parse_partial_queue("continue"), PartialQueue::CONTINUE);
  EXPECT_STREQ(partial_queue_name(PartialQueue::STOP), "stop");
  EXPECT_EQ(parse_scheduler("expert-aware"), SchedulerKind::EXPERT_AWARE);
  EXPECT_STREQ(scheduler_name(SchedulerKind::PREFILL_FIRST), "prefill-first");
}

struct SimResult {
  double mean_unique_experts = 0;
  int64_t max_wait = 0;         // batches any ready request waited (prefills also wait for a slot)
  int64_t max_decode_wait = 0;  // batches a running sequence waited for its next token
  int64_t steps = 0;
  int64_t finished = 0;
};

// A small continuous-batching simulation: `per_step` requests arrive each step, with a prompt of
// 4..24 tokens and 8..48 outputs; token experts (7) follow the previous token's with probability
// 0.71 (the paper's measured locality). Each step schedules one batch: prefills start running,
// decodes emit a token (whose expert is then pre-gated), finished requests leave.
SimResult simulate(SchedulerKind kind, const SchedulerLimits& limits, int per_step) {
  std::mt19937_64 rng(2024);
  auto next_expert = [&](int32_t prev) {
    return std::uniform_real_distribution<double>(0, 1)(rng) < 0.71 ? prev : static_cast<int32_t>(rng() % 7);
  };
  struct Live {
    QueuedRequest q;
    int64_t left;
  };
  std::vector<Live> live;
  const int n_requests = 150;
  int arrived = 0;
  SimResult r;
  int64_t unique_sum = 0, batches = 0;
  for (int64_t step = 0; step < 5000 && (arrived < n_requests || !live.empty()); ++step) {
    for (int a = 0; a < per_step && arrived < n_requests; ++a) {
      QueuedRequest q{static_cast<uint64_t>(++arrived), false, {}, 0};
      int32_t e = static_cast<int32_t>(rng() % 7);
      for (int64_t n = 4 + rng() % 21; n > 0; --n) q.experts.push_back(e = next_expert(e));
      live.push_back({q, 8 + static_cast<int64_t>(rng() % 41)});
    }
    std::vector<QueuedRequest> queue;
    for (const Live& l : live) queue.push_back(l.q);
    Batch b = schedule(kind, queue, limits);
    EXPECT_LE(b.tokens, limits.token_budget);
    if (b.steps.empty()) continue;
    unique_sum += b.unique_experts();
    ++batches;
    std::map<uint64_t, bool> in_batch;
    for (const BatchStep& s : b.steps) in_batch[s.id] = true;
    for (Live& l : live) {
      if (!in_batch.count(l.q.id)) {
        r.max_wait = std::max(r.max_wait, ++l.q.waited_steps);
        if (l.q.running) r.max_decode_wait = std::max(r.max_decode_wait, l.q.waited_steps);
        continue;
      }
      l.q.waited_steps = 0;
      l.q.running = true;
      l.q.experts = {next_expert(l.q.experts.back())};
      --l.left;
    }
    EXPECT_LE(std::count_if(live.begin(), live.end(), [](const Live& l) { return l.q.running; }), limits.max_running);
    auto done = std::remove_if(live.begin(), live.end(), [](const Live& l) { return l.left == 0; });
    r.finished += live.end() - done;
    live.erase(done, live.end());
    r.steps = step + 1;
  }
  r.mean_unique_experts = batches ? static_cast<double>(unique_sum) / batches : 0;
  return r;
}

TEST(ServingScheduler, ExpertAwareTouchesFewerExpertsOnSyntheticWorkload) {
  // Two arrival rates (1 and 2 requests per step); under load the running sequences exceed the
  // token budget, so the scheduler has to choose.
  for (int per_step : {1, 2}) {
    SchedulerLimits limits{32, 64, 16};
    SimResult ea = simulate(SchedulerKind::EXPERT_AWARE, limits, per_step);
    SimResult df = simulate(SchedulerKind::DECODE_FIRST, limits, per_step);
    SimResult pf = simulate(SchedulerKind::PREFILL_FIRST, limits, per_step);
    std::printf("%d arrivals per step: unique experts/batch expert-aware %.2f, decode-first %.2f, "
                "prefill-first %.2f; max wait %lld / %lld / %lld (decodes %lld / %lld / %lld); steps %lld / %lld / %lld\n",
                per_step, ea.mean_unique_experts, df.mean_unique_experts, pf.mean_unique_experts,
                static_cast<long long>(ea.max_wait), static_cast<long long>(df.max_wait),
                static_cast<long long>(pf.max_wait), static_cast<long long>(ea.max_decode_wait),
                static_cast<long long>(df.max_decode_wait), static_cast<long long>(pf.max_decode_wait),
                static_cast<long long>(ea.steps),
                static_cast<long long>(df.steps), static_cast<long long>(pf.steps));
    // Every request finishes (nothing starves), and expert-aware batches touch fewer experts.
    EXPECT_EQ(ea.finished, 150);
    EXPECT_EQ(df.finished, 150);
    EXPECT_EQ(pf.finished, 150);
    EXPECT_LT(ea.mean_unique_experts, df.mean_unique_experts) << per_step << " per step";
    EXPECT_LT(ea.mean_unique_experts, pf.mean_unique_experts) << per_step << " per step";
    // Bounded wait: a running sequence waits at most about the starvation limit (16) for a token.
    EXPECT_LE(ea.max_decode_wait, 2 * limits.starvation_limit) << per_step << " per step";
    // The expert-aware options keep the budget (checked in simulate), finish every request with a
    // bounded decode wait, and still touch fewer experts than both baselines.
    for (QueueLength length : {QueueLength::TOKENS, QueueLength::REQUESTS}) {
      for (PrefillOrder order : {PrefillOrder::QUEUE, PrefillOrder::FCFS}) {
        for (PartialQueue partial : {PartialQueue::STOP, PartialQueue::CONTINUE}) {
          SchedulerLimits variant = limits;
          variant.queue_length = length;
          variant.prefill_order = order;
          variant.partial_queue = partial;
          SimResult v = simulate(SchedulerKind::EXPERT_AWARE, variant, per_step);
          const std::string name = std::string(queue_length_name(length)) + " / " + prefill_order_name(order) + " / " +
                                   partial_queue_name(partial);
          std::printf("  expert-aware %s: unique experts/batch %.2f, max wait %lld (decodes %lld), steps %lld\n",
                      name.c_str(), v.mean_unique_experts, static_cast<long long>(v.max_wait),
                      static_cast<long long>(v.max_decode_wait), static_cast<long long>(v.steps));
          EXPECT_EQ(v.finished, 150) << name;
          EXPECT_LE(v.max_decode_wait, 2 * limits.starvation_limit) << name;
          EXPECT_LT(v.mean_unique_experts, df.mean_unique_experts) << name;
          EXPECT_LT(v.mean_unique_experts, pf.mean_unique_experts) << name;
        }
      }
    }
  }
}

}  // namespace
}  // namespace lookahead::moe::serving
