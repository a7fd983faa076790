// Trace formats (moe/serving/trace.h): our JSONL, ShareGPT and LMSYS dumps, Poisson arrivals,
// errors naming file/line/entry/field, and the synthetic generator's length distributions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "moe/serving/trace.h"
#include "moe/tokenize/tokenizer.h"
#include "tests/scratch_path.h"

namespace lookahead::moe::serving {
namespace {

// One token per byte (id = byte value), BOS = 256 when add_special.
class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(256);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string token_bytes(int32_t id) const override { return id < 256 ? std::string(1, static_cast<char>(id)) : ""; }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id);
    return out;
  }
  int32_t vocab_size() const override { return 257; }
  int32_t bos() const override { return 256; }
  int32_t eos() const override { return -1; }
  bool is_end_of_generation(int32_t) const override { return false; }
  std::string apply_chat_template(const std::vector<ChatMessage>&, bool) const override { return ""; }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ServingTrace, Jsonl) {
  std::string text =
      "{\"arrival_s\": 0.5, \"prompt\": \"hello there world\", \"output_len\": 7}\n"
      "\n"
      "{\"arrival_s\": 1.25, \"prompt_tokens\": [1, 2, 3], \"output_len\": 2, \"extra\": true}\n";
  Trace t = parse_trace(text, TraceFormat::JSONL, "t.jsonl", {});
  ASSERT_EQ(t.requests.size(), 2u);
  EXPECT_DOUBLE_EQ(t.requests[0].arrival_s, 0.5);
  EXPECT_EQ(t.requests[0].prompt, "hello there world");
  EXPECT_EQ(t.requests[0].prompt_len, 5);  // max(ceil(4*3/3)=4, ceil(17/4)=5)
  EXPECT_TRUE(t.requests[0].lengths_estimated);
  EXPECT_EQ(t.requests[0].output_len, 7);
  EXPECT_EQ(t.requests[1].prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(t.requests[1].prompt_len, 3);
  EXPECT_FALSE(t.requests[1].lengths_estimated);
  ByteTokenizer tok;
  TraceOptions o;
  o.tokenizer = &tok;
  t = parse_trace(text, TraceFormat::JSONL, "t.jsonl", o);
  EXPECT_EQ(t.requests[0].prompt_len, 18);  // BOS + 17 bytes
  // Round trip through our writer.
  Trace back = parse_trace(trace_to_jsonl(t), TraceFormat::JSONL, "w.jsonl", {});
  ASSERT_EQ(back.requests.size(), 2u);
  EXPECT_EQ(back.requests[0].prompt_tokens, t.requests[0].prompt_tokens);
  EXPECT_DOUBLE_EQ(back.requests[1].arrival_s, 1.25);
}

TEST(ServingTrace, JsonlErrorsNameLineAndField) {
  auto err = [](const std::string& text) {
    return error_of([&] { parse_trace(text, TraceFormat::JSONL, "t.jsonl", {}); });
  };
  EXPECT_EQ(err("{\"arrival_s\": 0, \"prompt\": \"a\", \"output_len\": 1}\n{\"arrival_s\": 1, \"prompt\": \"a\", \"output_len\": 0}"),
            "t.jsonl:2: field 'output_len': expected an integer >= 1");
  EXPECT_EQ(err("{\"arrival_s\": 0, \"prompt\": \"a\"}"), "t.jsonl:1: field 'output_len' missing");
  EXPECT_EQ(err("{\"arrival_s\": 0, \"output_len\": 3}"), "t.jsonl:1: expected exactly one of 'prompt' and 'prompt_tokens'");
  EXPECT_EQ(err("{\"prompt\": \"a\", \"output_len\": 3}"),
            "t.jsonl:1: field 'arrival_s' missing (or give a rate for Poisson arrivals)");
  EXPECT_EQ(err("{\"arrival_s\": 0, \"prompt_tokens\": [1, -2], \"output_len\": 3}"),
            "t.jsonl:1: field 'prompt_tokens[1]': expected a token id (integer >= 0)");
  EXPECT_EQ(err("{not json"), "t.jsonl:1: not valid JSON");
  EXPECT_EQ(err("{\"arrival_s\": 2, \"prompt\": \"a\", \"output_len\": 1}\n{\"arrival_s\": 1, \"prompt\": \"a\", \"output_len\": 1}"),
            "t.jsonl:2: field 'arrival_s': 1 is before the previous line's 2 (times must not decrease)");
  EXPECT_EQ(err(""), "t.jsonl: no usable requests (0 skipped)");
  // skip_bad: bad lines are counted, good ones kept.
  TraceOptions o;
  o.skip_bad = true;
  Trace t = parse_trace("oops\n{\"arrival_s\": 0, \"prompt\": \"a\", \"output_len\": 1}\n", TraceFormat::JSONL, "t.jsonl", o);
  EXPECT_EQ(t.requests.size(), 1u);
  EXPECT_EQ(t.skipped, 1);
  EXPECT_EQ(t.skip_reasons.at(0), "t.jsonl:1: not valid JSON");
  EXPECT_THROW(read_trace("/nonexistent/trace.jsonl", std::nullopt, {}), Error);
}

const char* kShareGpt = R"([
  {"id": "a", "conversations": [{"from": "human", "value": "one two three"}, {"from": "gpt", "value": "four five"},
                                {"from": "human", "value": "later turn"}, {"from": "gpt", "value": "not used"}]},
  {"id": "b", "conversations": [{"from": "gpt", "value": "reply first"}]},
  {"id": "c", "conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "x"},
                                {"from": "human", "value": "y"}, {"from": "chatgpt", "value": "z"}]}
])";

TEST(ServingTrace, ShareGpt) {
  TraceOptions o;
  o.rate = 2.0;
  o.seed = 1;
  EXPECT_EQ(detect_trace_format(kShareGpt), TraceFormat::SHAREGPT);
  Trace t = parse_trace(kShareGpt, TraceFormat::SHAREGPT, "s.json", o);
  ASSERT_EQ(t.requests.size(), 2u);
  EXPECT_EQ(t.skipped, 1);  // entry b: no human turn before the reply
  EXPECT_EQ(t.requests[0].prompt, "one two three");
  EXPECT_EQ(t.requests[0].output_len, 3);  // "four five": max(ceil(8/3)=3, ceil(9/4)=3)
  EXPECT_EQ(t.requests[1].prompt, "x\n\ny");
  EXPECT_GT(t.requests[0].arrival_s, 0);
  EXPECT_GT(t.requests[1].arrival_s, t.requests[0].arrival_s);
  ByteTokenizer tok;
  o.tokenizer = &tok;
  t = parse_trace(kShareGpt, TraceFormat::SHAREGPT, "s.json", o);
  EXPECT_EQ(t.requests[0].output_len, 9);  // bytes of "four five"
  EXPECT_EQ(t.requests[0].prompt_len, 14);
  EXPECT_FALSE(t.requests[0].lengths_estimated);
  // Dumps have no times: a rate is required.
  EXPECT_EQ(error_of([] { parse_trace(kShareGpt, TraceFormat::SHAREGPT, "s.json", {}); }),
            "s.json: a sharegpt dump has no arrival times: give a rate (requests/s) for Poisson arrivals");
  TraceOptions r;
  r.rate = 1;
  EXPECT_EQ(error_of([&] {
              parse_trace(R"([{"conversations": [{"from": "human", "value": 3}]}])", TraceFormat::SHAREGPT, "s.json", r);
            }),
            "s.json: entry 0: field 'conversations[0].value': expected a string");
  EXPECT_EQ(error_of([&] { parse_trace(R"([{"id": 1}])", TraceFormat::SHAREGPT, "s.json", r); }),
            "s.json: entry 0: field 'conversations' missing");
  EXPECT_EQ(error_of([&] { parse_trace(R"({"a": 1})", TraceFormat::SHAREGPT, "s.json", r); }),
            "s.json: expected a JSON list of conversations");
  EXPECT_EQ(error_of([&] { parse_trace("[", TraceFormat::SHAREGPT, "s.json", r); }), "s.json: not valid JSON");
}

TEST(ServingTrace, Lmsys) {
  const char* text = R"([
    {"conversation_id": "1", "conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello you"}]},
    {"question_id": "2", "conversation_a": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b c"}]},
    {"conversation_id": "3", "conversation": [{"role": "robot", "content": "?"}]}
  ])";
  EXPECT_EQ(detect_trace_format(text), TraceFormat::LMSYS);
  TraceOptions o;
  o.rate = 10;
  o.skip_bad = true;
  Trace t = parse_trace(text, TraceFormat::LMSYS, "l.json", o);
  ASSERT_EQ(t.requests.size(), 2u);
  EXPECT_EQ(t.requests[0].prompt, "hi");
  EXPECT_EQ(t.requests[0].output_len, 3);  // "hello you": max(3, 3)
  EXPECT_EQ(t.requests[1].prompt, "q");
  EXPECT_EQ(t.skipped, 1);
  EXPECT_EQ(t.skip_reasons.at(0), "l.json: entry 2: field 'conversation[0].role': unknown speaker 'robot'");
  o.max_requests = 1;
  EXPECT_EQ(parse_trace(text, TraceFormat::LMSYS, "l.json", o).requests.size(), 1u);
}

TEST(ServingTrace, PoissonArrivalsAreSeededWithTheRightRate) {
  std::vector<TraceRequest> a(20000), b(20000);
  assign_poisson_arrivals(a, 4.0, 9);
  assign_poisson_arrivals(b, 4.0, 9);
  EXPECT_EQ(a.back().arrival_s, b.back().arrival_s);
  EXPECT_NEAR(a.back().arrival_s / a.size(), 0.25, 0.01);  // mean gap 1 / rate
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end(), [](auto& x, auto& y) { return x.arrival_s < y.arrival_s; }));
  EXPECT_THROW(assign_poisson_arrivals(a, 0, 1), Error);
  EXPECT_THROW(parse_trace_format("csv"), Error);
}

TEST(ServingTrace, SynthLengthsFollowTheStatedLogNormals) {
  std::string corpus = "the quick brown fox jumps over the lazy dog and keeps running far away";
  SynthTraceOptions o;
  o.n_requests = 4000;
  o.rate = 5;
  o.seed = 3;
  ByteTokenizer tok;
  Trace t = synth_trace(corpus, "corpus.txt", o, &tok);
  ASSERT_EQ(t.requests.size(), 4000u);
  std::vector<double> logs_p, logs_o;
  for (const TraceRequest& r : t.requests) {
    ASSERT_EQ(static_cast<int64_t>(r.prompt_tokens.size()), r.prompt_len);
    ASSERT_GE(r.prompt_len, o.prompt_min);
    ASSERT_LE(r.prompt_len, o.prompt_max);
    ASSERT_GE(r.output_len, o.output_min);
    ASSERT_LE(r.output_len, o.output_max);
    ASSERT_EQ(r.prompt.size(), r.prompt_tokens.size());  // text from the corpus, byte-level
    logs_p.push_back(std::log(static_cast<double>(r.prompt_len)));
    logs_o.push_back(std::log(static_cast<double>(r.output_len)));
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return std::exp(v[v.size() / 2]);
  };
  EXPECT_NEAR(median(logs_p), 256, 20);
  EXPECT_NEAR(median(logs_o), 128, 10);
  EXPECT_NEAR(t.requests.back().arrival_s / 4000, 0.2, 0.01);
  // Same seed, same trace; without a tokenizer the lengths are estimates from corpus words.
  Trace again = synth_trace(corpus, "corpus.txt", o, &tok);
  EXPECT_EQ(trace_to_jsonl(again), trace_to_jsonl(t));
  o.n_requests = 5;
  Trace words = synth_trace(corpus, "corpus.txt", o, nullptr);
  EXPECT_TRUE(words.requests[0].lengths_estimated);
  EXPECT_NE(words.requests[0].prompt.find(' '), std::string::npos);
  EXPECT_EQ(error_of([&] { synth_trace("  \n", "corpus.txt", o, nullptr); }), "corpus.txt: corpus has no words");
}

TEST(ServingTrace, ReadAndWriteFiles) {
  std::filesystem::path dir = lookahead::test::scratch_path("serving_trace_test");
  std::filesystem::create_directories(dir);
  std::string path = (dir / "s.json").string();
  std::ofstream(path) << kShareGpt;
  TraceOptions o;
  o.rate = 1;
  Trace t = read_trace(path, std::nullopt, o);  // format detected
  EXPECT_EQ(t.requests.size(), 2u);
  std::string out = (dir / "t.jsonl").string();
  write_trace_jsonl(out, t);
  EXPECT_EQ(read_trace(out, std::nullopt, {}).requests.size(), 2u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lookahead::moe::serving
