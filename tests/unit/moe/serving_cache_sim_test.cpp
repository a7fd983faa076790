// Cache policies on one recorded access stream (moe/serving/cache_sim.h, access_stream.h): miss
// counts worked out by hand on small streams (offline optimum <= online Belady <= LRU, and how
// the online policy's horizon moves it), the stream file round trip, and bad stream files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "common/error.h"
#include "moe/serving/access_stream.h"
#include "moe/serving/cache_sim.h"

namespace lookahead::moe::serving {
namespace {

namespace fs = std::filesystem;

// One expert in `layers` layers, every step reads layer 0..layers-1: the loop a batch makes.
AccessStream loop_stream(int32_t layers, int steps, int horizon) {
  AccessStream s;
  s.n_layer = layers;
  s.n_expert = 1;
  s.slab_bytes.assign(static_cast<size_t>(layers), 100);
  s.plan_horizon = horizon;
  std::vector<SlabKey> batch;
  for (int32_t l = 0; l < layers; ++l) batch.push_back({l, 0});
  for (int i = 0; i < steps; ++i) {
    StreamStep st;
    st.accesses = batch;
    // The plan: this batch, then `horizon` predicted batches (here predicted right), none past the end.
    for (int h = 0; h <= horizon && i + h < steps; ++h) st.plan.insert(st.plan.end(), batch.begin(), batch.end());
    s.steps.push_back(st);
  }
  return s;
}

// Three slabs a b c read a b c | a b c | a b c with room for two (worked out in the comments).
TEST(CacheSim, LoopOfThreeSlabsInTwoOrderedByHand) {
  const CacheCapacity two{2, 0};
  // LRU evicts exactly the slab needed next: every access misses.
  EXPECT_EQ(simulate_on_stream(loop_stream(3, 3, 0), StreamPolicy::LRU, two).misses, 9u);
  // MIN: a b c(evict b) a+ b(evict a) c+ a(evict c) b+ c: 6 misses, 3 hits.
  const CacheStats optimum = simulate_on_stream(loop_stream(3, 3, 0), StreamPolicy::OPTIMUM, two);
  EXPECT_EQ(optimum.misses, 6u);
  EXPECT_EQ(optimum.hits, 3u);
  EXPECT_EQ(optimum.bytes_loaded, 600u);
  // Online, horizon 0: it sees only the current batch, so at the end of each batch both residents
  // look unused and it evicts the lowest key (a), the one needed first: a b c | a(evict c) b+
  // c(evict a) | a(evict c) b+ c: 7 misses.
  EXPECT_EQ(simulate_on_stream(loop_stream(3, 3, 0), StreamPolicy::BELADY_ONLINE, two).misses, 7u);
  // Online, horizon 1 (the next batch predicted right): as good as MIN here.
  EXPECT_EQ(simulate_on_stream(loop_stream(3, 3, 1), StreamPolicy::BELADY_ONLINE, two).misses, 6u);
  // The plan does not change the offline optimum or LRU.
  EXPECT_EQ(simulate_on_stream(loop_stream(3, 3, 1), StreamPolicy::OPTIMUM, two).misses, 6u);
  EXPECT_EQ(simulate_on_stream(loop_stream(3, 3, 1), StreamPolicy::LRU, two).misses, 9u);
}

TEST(CacheSim, AWrongPredictionCostsTheOnlinePolicyButNotTheOptimum) {
  // Slabs a=(0,0) b=(0,1) c=(0,2), room for two. Steps: [a b] [c] [a] [b]. The plan of step 2
  // predicts b next (wrong: a comes), so online keeps b and evicts a.
  AccessStream s;
  s.n_layer = 1;
  s.n_expert = 3;
  s.slab_bytes = {10, 10, 10};
  s.plan_horizon = 1;
  const SlabKey a{0, 0}, b{0, 1}, c{0, 2};
  s.steps = {{{a, b}, {a, b, c}}, {{c}, {c, b}}, {{a}, {a, b}}, {{b}, {b}}};
  const CacheCapacity two{2, 0};
  // Steps 1-4 (a b c a b): MIN a b c(evict b: a comes first) a+ b = 4 misses. Online: c evicts a
  // (the plan says b comes next), a evicts c, b hits: also 4; the wrong guess cost nothing yet.
  EXPECT_EQ(simulate_on_stream(s, StreamPolicy::OPTIMUM, two).misses, 4u);
  EXPECT_EQ(simulate_on_stream(s, StreamPolicy::BELADY_ONLINE, two).misses, 4u);
  // A fifth step reading c again. MIN: a b c(evict b) a+ b(evict a) c+ = 4 misses. Online: as
  // before, then c evicts a (both residents look unused; lowest key) = 5. LRU: every access = 6.
  s.steps.push_back({{c}, {c}});
  EXPECT_EQ(simulate_on_stream(s, StreamPolicy::OPTIMUM, two).misses, 4u);
  EXPECT_EQ(simulate_on_stream(s, StreamPolicy::BELADY_ONLINE, two).misses, 5u);
  EXPECT_EQ(simulate_on_stream(s, StreamPolicy::LRU, two).misses, 6u);
  const CacheStats random = simulate_on_stream(s, StreamPolicy::RANDOM, two, 3);
  EXPECT_GE(random.misses, 4u);
  EXPECT_EQ(random.hits + random.misses, 6u);
}

TEST(CacheSim, OptimumIsALowerBoundOnRandomStreams) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    AccessStream s;
    s.n_layer = 4;
    s.n_expert = 3;
    s.slab_bytes.assign(12, 7);
    s.plan_horizon = 1;
    for (int step = 0; step < 30; ++step) {
      StreamStep st;
      std::vector<int32_t> experts;
      for (int32_t e = 0; e < 3; ++e)
        if (rng() % 2) experts.push_back(e);
      if (experts.empty()) experts.push_back(static_cast<int32_t>(rng() % 3));
      for (int32_t l = 0; l < 4; ++l)
        for (int32_t e : experts) st.accesses.push_back({l, e});
      st.plan = st.accesses;
      for (int32_t l = 0; l < 4; ++l) st.plan.push_back({l, static_cast<int32_t>(rng() % 3)});  // a guess
      s.steps.push_back(st);
    }
    for (int64_t k : {1, 3, 6, 12}) {
      const CacheCapacity cap{k, 0};
      const uint64_t optimum = simulate_on_stream(s, StreamPolicy::OPTIMUM, cap).misses;
      for (StreamPolicy p : {StreamPolicy::BELADY_ONLINE, StreamPolicy::LRU, StreamPolicy::RANDOM})
        EXPECT_LE(optimum, simulate_on_stream(s, p, cap, 1).misses) << stream_policy_name(p) << " k=" << k;
      if (k == 12) {  // everything fits: only the first access to each slab misses
        std::set<SlabKey> distinct;
        for (const SlabAccess& a : s.flat()) distinct.insert(a.key);
        EXPECT_EQ(optimum, distinct.size());
      }
    }
  }
}

TEST(CacheSim, PolicyNames) {
  for (const char* name : {"optimum", "belady-online", "lru", "random"})
    EXPECT_STREQ(stream_policy_name(parse_stream_policy(name)), name);
  try {
    parse_stream_policy("belady", "--policy");
    FAIL() << "belady is ambiguous offline";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_stream_policy("fifo"), Error);
}

class AccessStreamFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lookahead_stream_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  fs::path dir_;
};

TEST_F(AccessStreamFile, RoundTrip) {
  AccessStream s = loop_stream(3, 4, 1);
  s.slab_bytes = {100, 200, 300};
  s.source_json = R"({"command":"test"})";
  const std::string p = (dir_ / "s.json").string();
  write_access_stream(p, s);
  const AccessStream back = read_access_stream(p);
  EXPECT_EQ(back.n_layer, 3);
  EXPECT_EQ(back.n_expert, 1);
  EXPECT_EQ(back.plan_horizon, 1);
  EXPECT_EQ(back.slab_bytes, s.slab_bytes);
  EXPECT_EQ(back.source_json, s.source_json);
  ASSERT_EQ(back.steps.size(), s.steps.size());
  for (size_t i = 0; i < s.steps.size(); ++i) {
    EXPECT_EQ(back.steps[i].accesses, s.steps[i].accesses);
    EXPECT_EQ(back.steps[i].plan, s.steps[i].plan);
  }
  EXPECT_EQ(simulate_on_stream(back, StreamPolicy::OPTIMUM, {2, 0}).bytes_loaded,
            simulate_on_stream(s, StreamPolicy::OPTIMUM, {2, 0}).bytes_loaded);
}

TEST_F(AccessStreamFile, BadFilesNameTheProblem) {
  const std::string head = R"({"format":"lookahead-expert-stream","version":1,"n_layer":2,"n_expert":2,)"
                           R"("slab_bytes":[[1,1],[1,1]],"plan_horizon":1,)";
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {"not json", "not a JSON object"},
      {R"({"format":"other","version":1})", "\"format\" must be \"lookahead-expert-stream\""},
      {R"({"format":"lookahead-expert-stream","version":2})", "\"version\" 2 is not supported"},
      {head + R"("steps":[{"accesses":[[2,0]],"plan":[]}]})", "step 0 \"accesses\"[0] layer is 2, expected 0..1"},
      {head + R"("steps":[{"accesses":[[0,0]]}]})", "step 0 has no \"plan\""},
      {head + R"("steps":[{"accesses":[[0]],"plan":[]}]})", "must be a [layer, expert] pair"},
      {head + R"("steps":[]})", "the stream has no steps"},
      {R"({"format":"lookahead-expert-stream","version":1,"n_layer":2,"n_expert":2,"slab_bytes":[[1,1]],)"
       R"("plan_horizon":1,"steps":[]})",
       "\"slab_bytes\" must be an array of n_layer (2) rows"},
  };
  for (const Case& c : cases) {
    const std::string p = write("bad.json", c.text);
    try {
      read_access_stream(p);
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_access_stream((dir_ / "missing.json").string()), Error);
}

}  // namespace
}  // namespace lookahead::moe::serving
