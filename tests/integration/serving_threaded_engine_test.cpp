// The ServingEngine contract (moe/serving/serving_engine.h) on ThreadedEngine with the real SmolLM2 model
// (dense, through the same continuous-batching core as Read-ME models): greedy output equals the
// plain generation loop, events arrive in order with one final event, cancel frees the sequence, a
// full queue refuses at once, drain finishes or cancels, and sequences batched together generate
// what each generates alone.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "moe/checkpoint/model_source.h"
#include "moe/model/generate.h"
#include "moe/serving/threaded_engine.h"

using namespace lookahead::moe;
using namespace lookahead::moe::serving;

namespace {

const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::vector<int32_t> kPrompt = {504, 3575, 282, 4649, 314};  // "The capital of France is"

// Collects one request's events.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<TokenEvent> events;
  std::thread::id thread;
  bool done() {
    return !events.empty() && events.back().finish != FinishReason::NONE;
  }
  TokenCallback callback() {
    return [this](const TokenEvent& e) {
      std::lock_guard lk(mu);
      thread = std::this_thread::get_id();
      events.push_back(e);
      cv.notify_all();
    };
  }
  void wait_done() {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(120), [&] { return done(); }));
  }
  void wait_tokens(size_t n) {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(120), [&] { return events.size() >= n || done(); }));
  }
  std::string text() {
    std::lock_guard lk(mu);
    std::string t;
    for (const auto& e : events) t += e.text;
    return t;
  }
};

// A dense-model engine: n_ctx per sequence, max running sequences, max queue, batch token budget.
std::unique_ptr<ThreadedEngine> make_engine(const LlamaModel& model, const Tokenizer& tok, int64_t n_ctx,
                                            int64_t max_running, int64_t max_queue, int64_t token_budget) {
  ThreadedEngineOptions o;
  o.core.n_ctx = n_ctx;
  o.core.limits.max_running = max_running;
  o.core.limits.token_budget = token_budget;
  o.core.scheduler = serving::SchedulerKind::DECODE_FIRST;
  o.max_queue = max_queue;
  return std::make_unique<ThreadedEngine>(model, nullptr, nullptr, nullptr, tok, o);
}

GenerationRequest request(const std::vector<int32_t>& prompt, int64_t max_tokens, Collector& c) {
  GenerationRequest r;
  r.prompt = prompt;
  r.sampling = {0.0f, 0, 1.0f, 0};
  r.max_tokens = max_tokens;
  r.on_token = c.callback();
  return r;
}

class ServeEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing (run scripts/setup)";
    source_ = open_model(kModel);
    model_ = std::make_unique<LlamaModel>(*source_);
  }
  std::unique_ptr<ModelSource> source_;
  std::unique_ptr<LlamaModel> model_;
};

}  // namespace

TEST_F(ServeEngine, GreedyOutputEqualsTheGenerationLoop) {
  const Tokenizer& tok = source_->tokenizer();
  std::vector<int32_t> want;
  {
    LlamaContext ctx(*model_, {128, 512, TensorType::F32});
    Sampler greedy({0.0f, 0, 1.0f, 0}, model_->hparams().n_vocab);
    generate(ctx, greedy, kPrompt, 6, nullptr, [&](int32_t t) {
      want.push_back(t);
      return true;
    });
  }
  auto owned = make_engine(*model_, tok, 128, 2, 4, 128);
  ThreadedEngine& engine = *owned;
  Collector c;
  const SubmitResult s = engine.submit(request(kPrompt, 6, c));
  ASSERT_EQ(s.status, SubmitStatus::ACCEPTED) << s.message;
  c.wait_done();
  std::vector<int32_t> got;
  for (size_t i = 0; i + 1 < c.events.size(); ++i) {
    EXPECT_EQ(c.events[i].finish, FinishReason::NONE);
    EXPECT_EQ(c.events[i].request_id, s.id);
    got.push_back(c.events[i].token);
  }
  EXPECT_EQ(got, want);
  const TokenEvent& last = c.events.back();
  EXPECT_EQ(last.finish, FinishReason::LENGTH);
  EXPECT_EQ(last.token, -1);
  EXPECT_EQ(last.usage.prompt_tokens, 5);
  EXPECT_EQ(last.usage.completion_tokens, 6);
  EXPECT_EQ(c.text(), tok.decode(want));
  EXPECT_NE(c.thread, std::this_thread::get_id());  // callbacks come from the engine's thread
  const EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.requests_accepted, 1u);
  EXPECT_EQ(m.requests_finished_length, 1u);
  EXPECT_EQ(m.generated_tokens_total, 6u);
  EXPECT_EQ(m.prompt_tokens_total, 5u);
  EXPECT_EQ(m.running_sequences, 0);
  EXPECT_EQ(m.cache_hit_ratio, 0.0);
}

TEST_F(ServeEngine, StopStringEndsTheRequest) {
  auto owned = make_engine(*model_, source_->tokenizer(), 128, 1, 4, 128);
  ThreadedEngine& engine = *owned;
  Collector full;
  engine.submit(request(kPrompt, 6, full));
  full.wait_done();
  const std::string text = full.text();  // " Paris.\n\nThe ..."
  ASSERT_GT(text.size(), 8u);
  Collector c;
  GenerationRequest r = request(kPrompt, 6, c);
  r.stop = {text.substr(6, 2)};
  engine.submit(std::move(r));
  c.wait_done();
  EXPECT_EQ(c.text(), text.substr(0, 6));
  EXPECT_EQ(c.events.back().finish, FinishReason::STOP);
}

TEST_F(ServeEngine, RefusalsQueueFullCancelAndDrain) {
  auto owned = make_engine(*model_, source_->tokenizer(), 64, 1, 1, 64);
  ThreadedEngine& engine = *owned;
  Collector bad;
  EXPECT_EQ(engine.submit(request({}, 4, bad)).status, SubmitStatus::INVALID);
  EXPECT_EQ(engine.submit(request(kPrompt, 60, bad)).status, SubmitStatus::INVALID);  // 5 + 60 > 64
  EXPECT_EQ(engine.submit(request({1, 999999}, 4, bad)).status, SubmitStatus::INVALID);
  EXPECT_TRUE(bad.events.empty());

  Collector running, queued, refused;
  ASSERT_EQ(engine.submit(request(kPrompt, 50, running)).status, SubmitStatus::ACCEPTED);
  running.wait_tokens(1);  // admitted: the one slot is taken
  const SubmitResult q = engine.submit(request(kPrompt, 50, queued));
  ASSERT_EQ(q.status, SubmitStatus::ACCEPTED);
  EXPECT_EQ(engine.submit(request(kPrompt, 4, refused)).status, SubmitStatus::QUEUE_FULL);
  EXPECT_TRUE(refused.events.empty());

  // Cancel the queued request: it finishes CANCELLED without a token.
  EXPECT_TRUE(engine.cancel(q.id));
  queued.wait_done();
  EXPECT_EQ(queued.events.size(), 1u);
  EXPECT_EQ(queued.events.back().finish, FinishReason::CANCELLED);
  EXPECT_FALSE(engine.cancel(q.id));  // already finished
  EXPECT_FALSE(engine.cancel(987654));

  // Drain with no grace cancels the running request and refuses new ones.
  EXPECT_FALSE(engine.drain(std::chrono::milliseconds(0)));
  running.wait_done();
  EXPECT_EQ(running.events.back().finish, FinishReason::CANCELLED);
  EXPECT_LT(running.events.back().usage.completion_tokens, 50);
  EXPECT_EQ(engine.submit(request(kPrompt, 4, refused)).status, SubmitStatus::DRAINING);
  const EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.running_sequences, 0);
  EXPECT_EQ(m.queue_depth, 0);
  EXPECT_EQ(m.requests_cancelled, 2u);
  EXPECT_EQ(m.requests_rejected_queue_full, 1u);
  EXPECT_EQ(m.requests_rejected_invalid, 3u);
  EXPECT_EQ(m.requests_rejected_draining, 1u);
}

TEST_F(ServeEngine, ConcurrentSequencesDoNotDisturbEachOther) {
  auto owned = make_engine(*model_, source_->tokenizer(), 128, 3, 8, 128);
  ThreadedEngine& engine = *owned;
  const std::vector<std::vector<int32_t>> prompts = {kPrompt, {504, 3575, 282, 7042}, {1, 2, 3, 4, 5, 6, 7}};
  std::vector<std::string> solo;
  for (const auto& p : prompts) {
    Collector c;
    engine.submit(request(p, 5, c));
    c.wait_done();
    solo.push_back(c.text());
  }
  std::vector<Collector> together(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    ASSERT_EQ(engine.submit(request(prompts[i], 5, together[i])).status, SubmitStatus::ACCEPTED);
  for (size_t i = 0; i < prompts.size(); ++i) {
    together[i].wait_done();
    EXPECT_EQ(together[i].text(), solo[i]) << i;
  }
  EXPECT_TRUE(engine.drain(std::chrono::seconds(5)));
}
