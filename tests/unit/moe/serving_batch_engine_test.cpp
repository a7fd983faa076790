// The continuous-batching engine (moe/serving/batch_engine.h) and trace replay (replay.h) on a tiny
// synthetic Read-ME model: every scheduler, batched together, generates exactly the tokens each
// request generates alone; the same through the two-tier expert store; the KV budget limits running
// sequences; cancel frees the KV cache; bad requests are refused; replay finishes every request.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <utility>

#include "common/error.h"
#include "moe/model/llama.h"
#include "moe/model/readme_model.h"
#include "moe/serving/access_stream.h"
#include "moe/serving/batch_engine.h"
#include "moe/serving/cache_sim.h"
#include "moe/serving/replay.h"
#include "tests/unit/moe/synth_model_fixture.h"

namespace lookahead::moe::serving {
namespace {

class BatchEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { synth_ = new TempSynthModel("batch_engine", 4, 2, TensorType::F32, 3); }
  static void TearDownTestSuite() { delete synth_; }
  static const ReadMeModel& model() { return synth_->model(); }

  static std::vector<EngineRequest> requests() {
    const std::vector<std::vector<int32_t>> prompts = {
        {1, 2, 3, 4, 5, 6, 7}, {9, 8, 7}, {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}, {40}, {5, 5, 5, 5}};
    std::vector<EngineRequest> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      EngineRequest r;
      r.id = i + 1;
      r.prompt = prompts[i];
      r.max_tokens = 3 + static_cast<int64_t>(i) * 2;
      r.stop_at_eog = false;
      out.push_back(r);
    }
    return out;
  }

  // Greedy generation of one request alone, with its own context and router.
  static std::vector<int32_t> alone(const EngineRequest& r, const std::string& route) {
    LlamaContext ctx(model().backbone(), {64, 64, TensorType::F32});
    auto router = make_token_router(model(), route);
    ctx.set_routing(router.get(), &model());
    const int32_t V = model().backbone().hparams().n_vocab;
    std::vector<int32_t> out;
    const float* logits = ctx.forward(r.prompt.data(), static_cast<int64_t>(r.prompt.size()));
    for (int64_t i = 0; i < r.max_tokens; ++i) {
      out.push_back(argmax(logits, V));
      if (i + 1 < r.max_tokens) logits = ctx.forward(&out.back(), 1);
    }
    return out;
  }

  static std::map<uint64_t, std::vector<int32_t>> run(BatchEngine& engine, const std::vector<EngineRequest>& reqs,
                                                      int64_t* max_running = nullptr) {
    std::map<uint64_t, std::vector<int32_t>> got;
    for (const auto& r : reqs) engine.add(r);
    size_t finished = 0;
    for (int guard = 0; !engine.idle() && guard < 1000; ++guard) {
      const StepReport s = engine.step();
      EXPECT_GT(s.tokens, 0);
      for (const auto& g : s.generated) got[g.id].push_back(g.token);
      finished += s.finished.size();
      if (max_running) *max_running = std::max(*max_running, engine.running());
    }
    EXPECT_EQ(finished, reqs.size());
    EXPECT_EQ(engine.kv_bytes_in_use(), 0u);
    return got;
  }

  static TempSynthModel* synth_;
};

TempSynthModel* BatchEngineTest::synth_ = nullptr;

TEST_F(BatchEngineTest, EverySchedulerGeneratesWhatEachRequestGeneratesAlone) {
  const auto reqs = requests();
  for (const std::string route : {"router", "random:5"}) {
    std::map<uint64_t, std::vector<int32_t>> want;
    for (const auto& r : reqs) want[r.id] = alone(r, route);
    for (SchedulerKind kind : {SchedulerKind::EXPERT_AWARE, SchedulerKind::DECODE_FIRST, SchedulerKind::PREFILL_FIRST}) {
      for (int64_t budget : {11, 16, 64}) {
        BatchEngineOptions o;
        o.scheduler = kind;
        o.limits.token_budget = budget;
        o.limits.max_running = 3;
        o.n_ctx = 64;
        o.route = route;
        BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
        EXPECT_EQ(run(engine, reqs), want) << scheduler_name(kind) << " budget " << budget << " route " << route;
      }
    }
  }
}

TEST_F(BatchEngineTest, TieredExpertStoreGivesTheSameTokensAndSeesThePlan) {
  const auto reqs = requests();
  std::map<uint64_t, std::vector<int32_t>> want;
  for (const auto& r : reqs) want[r.id] = alone(r, "router");
  for (CachePolicy policy : {CachePolicy::BELADY, CachePolicy::LRU, CachePolicy::NONE}) {
    for (bool prefetch : {false, true}) {
      TierOptions t;
      t.policy = policy;
      t.capacity.max_slabs = policy == CachePolicy::NONE ? 0 : 3;
      t.prefetch = prefetch;
      t.direct_io = false;
      TieredExperts tiers(model(), t);
      BatchEngineOptions o;
      o.limits.token_budget = 32;
      o.limits.max_running = 4;
      o.n_ctx = 64;
      BatchEngine engine(model().backbone(), &model(), &tiers, &tiers, {}, o);
      EXPECT_EQ(run(engine, reqs), want) << cache_policy_name(policy) << " prefetch " << prefetch;
      const TierStats s = tiers.stats();
      EXPECT_GT(s.accesses, 0u);
      EXPECT_EQ(s.hits + s.in_flight_uses + s.misses, s.accesses);
      if (policy == CachePolicy::NONE && !prefetch) {
        EXPECT_EQ(s.hits, 0u);
      }
    }
  }
}

TEST_F(BatchEngineTest, KvBudgetLimitsRunningSequencesAndCancelFreesIt) {
  const auto reqs = requests();
  BatchEngineOptions o;
  o.limits.token_budget = 64;
  o.limits.max_running = 8;
  o.n_ctx = 64;
  // Room for the KV caches of the two largest requests' worth of positions, no more.
  const LlamaHparams& hp = model().backbone().hparams();
  const uint64_t per_position = 2ull * hp.n_layer * hp.n_head_kv * hp.head_dim * 4;
  o.kv_budget_bytes = per_position * 24;
  BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
  int64_t max_running = 0;
  run(engine, reqs, &max_running);
  EXPECT_GE(max_running, 1);
  EXPECT_LE(max_running, 2);

  BatchEngine other(model().backbone(), &model(), &model(), nullptr, {}, o);
  other.add(reqs[0]);
  other.step();
  EXPECT_GT(other.kv_bytes_in_use(), 0u);
  EXPECT_TRUE(other.cancel(reqs[0].id));
  EXPECT_EQ(other.kv_bytes_in_use(), 0u);
  EXPECT_TRUE(other.idle());
  EXPECT_FALSE(other.cancel(reqs[0].id));
}

// Runs `reqs` to completion in one engine; returns each request's tokens and cached prompt tokens.
std::pair<std::map<uint64_t, std::vector<int32_t>>, std::map<uint64_t, int64_t>> run_wave(
    BatchEngine& engine, const std::vector<EngineRequest>& reqs) {
  std::map<uint64_t, std::vector<int32_t>> got;
  std::map<uint64_t, int64_t> cached;
  for (const auto& r : reqs) engine.add(r);
  for (int guard = 0; !engine.idle() && guard < 1000; ++guard) {
    const StepReport s = engine.step();
    int64_t sum = 0;
    for (const auto& c : s.cached_prompts) {
      cached[c.id] = c.tokens;
      sum += c.tokens;
    }
    EXPECT_EQ(sum, s.cached_tokens);
    for (const auto& g : s.generated) got[g.id].push_back(g.token);
    EXPECT_LE(engine.kv_bytes_in_use() + engine.prefix_cache_bytes(), engine.kv_budget_bytes());
  }
  return {got, cached};
}

TEST_F(BatchEngineTest, PrefixCacheReusesSharedPromptsAndGeneratesTheSameTokens) {
  // Wave 1 fills the prefix cache; wave 2's prompts share 0, 4, all and prompt+output tokens with
  // wave 1's first request (a chat's next turn), so exactly those prefixes are taken from the cache.
  EngineRequest a;
  a.id = 1;
  a.prompt = {1, 2, 3, 4, 5, 6, 7};
  a.max_tokens = 4;
  a.stop_at_eog = false;
  const std::vector<int32_t> a_out = alone(a, "router");
  auto make = [&](uint64_t id, std::vector<int32_t> prompt) {
    EngineRequest r = a;
    r.id = id;
    r.prompt = std::move(prompt);
    return r;
  };
  std::vector<int32_t> next_turn = a.prompt;
  next_turn.insert(next_turn.end(), a_out.begin(), a_out.end());
  next_turn.push_back(11);
  const std::vector<EngineRequest> wave2 = {make(2, {9, 8, 7}), make(3, {1, 2, 3, 4, 30, 31}), make(4, a.prompt),
                                            make(5, next_turn)};
  for (SchedulerKind kind : {SchedulerKind::EXPERT_AWARE, SchedulerKind::DECODE_FIRST}) {
    BatchEngineOptions o;
    o.scheduler = kind;
    o.limits.token_budget = 16;
    o.limits.max_running = 2;
    o.n_ctx = 64;
    o.prefix_cache = true;
    BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
    const auto [got1, cached1] = run_wave(engine, {a});
    EXPECT_EQ(got1.at(1), a_out);
    EXPECT_TRUE(cached1.empty());
    EXPECT_EQ(engine.prefix_cache_entries(), 1);
    EXPECT_GT(engine.prefix_cache_bytes(), 0u);
    const auto [got2, cached2] = run_wave(engine, wave2);
    for (const auto& r : wave2) EXPECT_EQ(got2.at(r.id), alone(r, "router")) << "request " << r.id;
    EXPECT_EQ(cached2.count(2), 0u);
    EXPECT_EQ(cached2.at(3), 4);
    EXPECT_EQ(cached2.at(4), 6);   // all but the last prompt token, whose logits are needed
    EXPECT_EQ(cached2.at(5), 10);  // the prompt and the three fed outputs (the fourth was never fed)
    EXPECT_EQ(engine.kv_bytes_in_use(), 0u);
  }
  // Off: nothing is kept or reused.
  BatchEngineOptions o;
  o.limits.token_budget = 16;
  o.n_ctx = 64;
  BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
  run_wave(engine, {a});
  const auto [got, cached] = run_wave(engine, {make(4, a.prompt)});
  EXPECT_TRUE(cached.empty());
  EXPECT_EQ(engine.prefix_cache_bytes(), 0u);
  EXPECT_EQ(got.at(4), a_out);
}

TEST_F(BatchEngineTest, PrefixCacheGivesWayToRunningSequencesAndFollowsTheRoute) {
  const LlamaHparams& hp = model().backbone().hparams();
  const uint64_t per_position = 2ull * hp.n_layer * hp.n_head_kv * hp.head_dim * 4;
  EngineRequest a;
  a.id = 1;
  a.prompt = {1, 2, 3, 4, 5, 6, 7};
  a.max_tokens = 4;
  a.stop_at_eog = false;
  // Room for one sequence of 11 positions: the kept cache of `a` must make way for `b`'s, after
  // `b` has copied what it shares.
  BatchEngineOptions o;
  o.limits.token_budget = 16;
  o.n_ctx = 64;
  o.prefix_cache = true;
  o.kv_budget_bytes = per_position * 12;
  BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
  run_wave(engine, {a});
  EXPECT_EQ(engine.prefix_cache_entries(), 1);
  EngineRequest b = a;
  b.id = 2;
  b.prompt = {1, 2, 3, 9, 9, 9, 9};
  const auto [got, cached] = run_wave(engine, {b});
  EXPECT_EQ(cached.at(2), 3);
  EXPECT_EQ(got.at(2), alone(b, "router"));
  EXPECT_EQ(engine.prefix_cache_entries(), 1);  // b's own cache, kept after a's was dropped

  // Another route: the kept keys and values were computed with that route's experts.
  BatchEngineOptions r = o;
  r.kv_budget_bytes = 0;
  r.route = "random:5";
  BatchEngine five(model().backbone(), &model(), &model(), nullptr, {}, r);
  run_wave(five, {a});
  const auto [got5, cached5] = run_wave(five, {b});
  EXPECT_EQ(got5.at(2), alone(b, "random:5"));
  EXPECT_EQ(cached5.at(2), 3);
}

TEST_F(BatchEngineTest, ChunkedPrefillGivesTheSameTokensAndTakesPromptsBeyondTheBudget) {
  const auto reqs = requests();  // prompts of 1 to 11 tokens
  std::map<uint64_t, std::vector<int32_t>> want;
  for (const auto& r : reqs) want[r.id] = alone(r, "router");
  for (SchedulerKind kind : {SchedulerKind::EXPERT_AWARE, SchedulerKind::DECODE_FIRST, SchedulerKind::PREFILL_FIRST}) {
    for (const auto& [budget, chunk] : {std::pair<int64_t, int64_t>{6, 4}, {6, 1}, {16, 5}}) {
      for (bool prefix : {false, true}) {
        BatchEngineOptions o;
        o.scheduler = kind;
        o.limits.token_budget = budget;
        o.limits.max_running = 3;
        o.n_ctx = 64;
        o.prefill_chunk = chunk;
        o.prefix_cache = prefix;
        BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
        std::map<uint64_t, std::vector<int32_t>> got;
        for (auto r : reqs) engine.add(r);
        int64_t chunks = 0;
        for (int guard = 0; !engine.idle() && guard < 1000; ++guard) {
          const StepReport st = engine.step();
          ASSERT_GT(st.tokens, 0);
          EXPECT_LE(st.tokens, budget);
          EXPECT_LE(engine.running(), 3);
          chunks += st.prefills;
          for (const auto& g : st.generated) got[g.id].push_back(g.token);
        }
        const std::string what = std::string(scheduler_name(kind)) + " budget " + std::to_string(budget) + " chunk " +
                                 std::to_string(chunk) + (prefix ? " prefix cache" : "");
        EXPECT_EQ(got, want) << what;
        // The 11- and 7-token prompts need more than one chunk each (fewer with the prefix cache).
        if (!prefix) {
          EXPECT_GT(chunks, static_cast<int64_t>(reqs.size())) << what;
        }
      }
    }
  }
  BatchEngineOptions o;
  o.limits.token_budget = 6;
  o.prefill_chunk = 7;
  EXPECT_THROW(BatchEngine(model().backbone(), &model(), &model(), nullptr, {}, o), Error);  // chunk > budget
}

TEST_F(BatchEngineTest, BadRequestsAndOptionsAreRefused) {
  BatchEngineOptions o;
  o.limits.token_budget = 8;
  o.limits.max_running = 2;
  o.n_ctx = 16;
  BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
  EngineRequest r;
  r.id = 1;
  EXPECT_THROW(engine.add(r), Error);  // empty prompt
  r.prompt = std::vector<int32_t>(9, 1);
  EXPECT_THROW(engine.add(r), Error);  // longer than the token budget
  r.prompt = {1, 2};
  r.max_tokens = 15;
  EXPECT_THROW(engine.add(r), Error);  // beyond n_ctx
  r.max_tokens = 2;
  r.prompt = {1, model().backbone().hparams().n_vocab};
  EXPECT_THROW(engine.add(r), Error);  // token outside the vocabulary
  r.prompt = {1, 2};
  engine.add(r);
  EXPECT_THROW(engine.add(r), Error);  // duplicate id
  o.route = "nonsense";
  EXPECT_THROW(BatchEngine(model().backbone(), &model(), &model(), nullptr, {}, o), Error);
  o.route = "router";
  o.limits.token_budget = 0;
  EXPECT_THROW(BatchEngine(model().backbone(), &model(), &model(), nullptr, {}, o), Error);
}

TEST_F(BatchEngineTest, EndOfGenerationStopsARequestWhenAsked) {
  auto reqs = requests();
  const auto first = alone(reqs[2], "router");
  BatchEngineOptions o;
  o.limits.token_budget = 32;
  o.n_ctx = 64;
  BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {first[1]}, o);
  reqs[2].stop_at_eog = true;
  engine.add(reqs[2]);
  std::vector<int32_t> got;
  FinishReason reason = FinishReason::NONE;
  while (!engine.idle()) {
    const StepReport s = engine.step();
    for (const auto& g : s.generated) got.push_back(g.token);
    for (const auto& f : s.finished) reason = f.reason;
  }
  EXPECT_EQ(reason, FinishReason::STOP);
  EXPECT_EQ(got, std::vector<int32_t>{first[0]});  // the end-of-generation token itself is not reported
}

TEST_F(BatchEngineTest, ReplayFinishesEveryRequestOnTheVirtualClock) {
  Trace trace;
  const auto reqs = requests();
  for (size_t i = 0; i < reqs.size(); ++i) {
    TraceRequest t;
    t.arrival_s = 0.001 * static_cast<double>(i);
    t.prompt_tokens = reqs[i].prompt;
    t.prompt_len = static_cast<int64_t>(t.prompt_tokens.size());
    t.output_len = reqs[i].max_tokens;
    trace.requests.push_back(t);
  }
  BatchEngineOptions o;
  o.limits.token_budget = 32;
  o.n_ctx = 64;
  BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
  const ReplayResult r = replay_trace(engine, trace, nullptr, {});
  const ReplaySummary s = summarize(r);
  EXPECT_EQ(s.requests, 5);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(r.requests[i].generated, reqs[i].max_tokens);
    EXPECT_GE(r.requests[i].first_token_s, r.requests[i].arrival_s);
    EXPECT_GE(r.requests[i].finish_s, r.requests[i].first_token_s);
  }
  EXPECT_GT(s.normalized_latency_s.mean, 0);
  EXPECT_LE(s.normalized_latency_s.p50, s.normalized_latency_s.p95);
  EXPECT_LE(s.normalized_latency_s.p95, s.normalized_latency_s.p99);
  EXPECT_GE(s.mean_unique_experts, 1.0);
  EXPECT_LE(s.mean_unique_experts, 4.0);
  trace.requests[1].prompt_tokens.clear();
  EXPECT_THROW(replay_trace(engine, trace, nullptr, {}), Error);
}

// The model clock (replay.h): a replay with a fixed trace is deterministic in everything but wall
// time: the same batches, the same arrival/first-token/finish times, twice, and the modelled step
// time grows with the batch's unique experts and tokens.
TEST_F(BatchEngineTest, ModelClockReplayIsDeterministicButForWallTime) {
  ReplayOptions ro;
  ro.clock = StepClock::MODEL;
  ro.cost = make_step_cost_model(model().backbone(), &model());
  ASSERT_GT(ro.cost.dense_bytes, 0);
  ASSERT_GT(ro.cost.expert_bytes, 0);
  EXPECT_LT(ro.cost.step_seconds(4, 1), ro.cost.step_seconds(4, 2));
  EXPECT_LT(ro.cost.step_seconds(4, 2), ro.cost.step_seconds(40, 2));
  Trace trace;
  const auto reqs = requests();
  for (size_t i = 0; i < reqs.size(); ++i) {
    TraceRequest t;
    // Arrivals every 1.5 modelled decode steps: requests join while others run.
    t.arrival_s = 1.5 * ro.cost.step_seconds(1, 1) * static_cast<double>(i);
    t.prompt_tokens = reqs[i].prompt;
    t.prompt_len = static_cast<int64_t>(t.prompt_tokens.size());
    t.output_len = reqs[i].max_tokens;
    trace.requests.push_back(t);
  }
  auto run = [&] {
    BatchEngineOptions o;
    o.limits.token_budget = 16;
    o.n_ctx = 64;
    BatchEngine engine(model().backbone(), &model(), &model(), nullptr, {}, o);
    return replay_trace(engine, trace, nullptr, ro);
  };
  const ReplayResult a = run(), b = run();
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (size_t i = 0; i < a.steps.size(); ++i) {
    EXPECT_EQ(a.steps[i].start_s, b.steps[i].start_s) << i;
    EXPECT_EQ(a.steps[i].seconds, b.steps[i].seconds) << i;
    EXPECT_EQ(a.steps[i].tokens, b.steps[i].tokens) << i;
    EXPECT_EQ(a.steps[i].prefills, b.steps[i].prefills) << i;
    EXPECT_EQ(a.steps[i].unique_experts, b.steps[i].unique_experts) << i;
    EXPECT_EQ(a.steps[i].seconds, ro.cost.step_seconds(a.steps[i].tokens, a.steps[i].unique_experts)) << i;
  }
  for (size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(a.requests[i].first_token_s, b.requests[i].first_token_s) << i;
    EXPECT_EQ(a.requests[i].finish_s, b.requests[i].finish_s) << i;
    EXPECT_EQ(a.requests[i].generated, reqs[i].max_tokens) << i;
  }
  EXPECT_EQ(a.makespan_s, b.makespan_s);
  int64_t mixed = 0;  // steps that batch more than one request
  for (const StepRecord& st : a.steps) mixed += st.prefills + st.decodes > 1;
  EXPECT_GT(mixed, 0);
}

// Issue 16: cache policies compared on one access stream. Under the model clock the loads do not
// move the clock, so every policy and prefetch setting gets the same batches; the recorded stream
// replayed offline (cache_sim.h) gives the live store's demand counts exactly; each step reads a
// prefix of the plan the engine gave the store (the batch's own slabs, in the forward pass's order).
TEST_F(BatchEngineTest, ModelClockGivesEveryCachePolicyTheSameStreamAndTheSimulatorMatchesTheStore) {
  ReplayOptions ro;
  ro.clock = StepClock::MODEL;
  ro.cost = make_step_cost_model(model().backbone(), &model());
  Trace trace;
  const auto reqs = requests();
  for (size_t i = 0; i < reqs.size(); ++i) {
    TraceRequest t;
    t.arrival_s = 1.5 * ro.cost.step_seconds(1, 1) * static_cast<double>(i);
    t.prompt_tokens = reqs[i].prompt;
    t.prompt_len = static_cast<int64_t>(t.prompt_tokens.size());
    t.output_len = reqs[i].max_tokens;
    trace.requests.push_back(t);
  }
  struct Run {
    AccessStream stream;
    TierStats stats;
  };
  auto run = [&](CachePolicy policy, bool prefetch, int horizon) {
    TierOptions t;
    t.policy = policy;
    t.capacity.max_slabs = 3;
    t.prefetch = prefetch;
    t.direct_io = false;
    t.seed = 7;
    TieredExperts tiers(model(), t);
    StreamRecorder recorder(tiers, model(), horizon);
    BatchEngineOptions o;
    o.limits.token_budget = 16;
    o.n_ctx = 64;
    o.plan_horizon = horizon;
    BatchEngine engine(model().backbone(), &model(), &recorder, &tiers, {}, o);
    engine.set_recorder(&recorder);
    replay_trace(engine, trace, &tiers, ro);
    return Run{recorder.stream(), tiers.stats()};
  };
  for (int horizon : {0, 1, 3}) {
    SCOPED_TRACE("horizon " + std::to_string(horizon));
    const Run belady = run(CachePolicy::BELADY, false, horizon);
    ASSERT_FALSE(belady.stream.steps.empty());
    for (const StreamStep& st : belady.stream.steps) {
      ASSERT_LE(st.accesses.size(), st.plan.size());
      EXPECT_TRUE(std::equal(st.accesses.begin(), st.accesses.end(), st.plan.begin()));
    }
    EXPECT_EQ(belady.stats.accesses, belady.stream.accesses());
    const CacheCapacity cap{3, 0};
    const CacheStats online = simulate_on_stream(belady.stream, StreamPolicy::BELADY_ONLINE, cap);
    EXPECT_EQ(online.misses, belady.stats.misses);
    EXPECT_EQ(online.hits, belady.stats.hits);
    EXPECT_EQ(online.bytes_loaded, belady.stats.bytes_read);
    const CacheStats optimum = simulate_on_stream(belady.stream, StreamPolicy::OPTIMUM, cap);
    EXPECT_LE(optimum.misses, online.misses);
    for (auto [policy, prefetch] : {std::pair{CachePolicy::LRU, false}, std::pair{CachePolicy::RANDOM, false},
                                    std::pair{CachePolicy::BELADY, true}, std::pair{CachePolicy::LRU, true}}) {
      const Run other = run(policy, prefetch, horizon);
      ASSERT_EQ(other.stream.steps.size(), belady.stream.steps.size()) << cache_policy_name(policy) << prefetch;
      for (size_t i = 0; i < other.stream.steps.size(); ++i) {
        EXPECT_EQ(other.stream.steps[i].accesses, belady.stream.steps[i].accesses) << i;
        EXPECT_EQ(other.stream.steps[i].plan, belady.stream.steps[i].plan) << i;
      }
      if (!prefetch) {
        const StreamPolicy sp = policy == CachePolicy::LRU ? StreamPolicy::LRU : StreamPolicy::RANDOM;
        const CacheStats sim = simulate_on_stream(belady.stream, sp, cap, 7);
        EXPECT_EQ(sim.misses, other.stats.misses) << cache_policy_name(policy);
        EXPECT_LE(optimum.misses, sim.misses) << cache_policy_name(policy);
      }
    }
  }
}

TEST(ReplayDistribution, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  const Distribution d = distribution(v);
  EXPECT_DOUBLE_EQ(d.mean, 50.5);
  EXPECT_DOUBLE_EQ(d.p50, 50);
  EXPECT_DOUBLE_EQ(d.p95, 95);
  EXPECT_DOUBLE_EQ(d.p99, 99);
  EXPECT_DOUBLE_EQ(distribution({7}).p99, 7);
  EXPECT_DOUBLE_EQ(distribution({}).mean, 0);
}

}  // namespace
}  // namespace lookahead::moe::serving
