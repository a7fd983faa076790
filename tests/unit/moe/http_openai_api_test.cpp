// The OpenAI request parsing and validation of `moe serve` (moe/http/openai_api.h) on a fake
// byte tokenizer: every rejected request names its parameter with OpenAI's error fields.
#include <gtest/gtest.h>

#include "moe/http/openai_api.h"

namespace lookahead::moe::http {

using serving::EngineLimits;
using serving::EngineMetrics;
using serving::FinishReason;
namespace {

// One token per byte (ids 0..255), BOS 256, EOS 257; "chat template" "<role>content\n" + "<assistant>".
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(256);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string token_bytes(int32_t id) const override { return id < 256 ? std::string(1, static_cast<char>(id)) : ""; }
  int32_t vocab_size() const override { return 258; }
  int32_t bos() const override { return 256; }
  int32_t eos() const override { return 257; }
  bool is_end_of_generation(int32_t id) const override { return id == 257; }
  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const override {
    std::string out;
    for (const auto& m : messages) out += "<" + m.role + ">" + m.content + "\n";
    if (add_generation_prompt) out += "<assistant>";
    return out;
  }
};

class ServeApi : public ::testing::Test {
 protected:
  ByteTokenizer tok;
  ApiContext ctx{"tiny", &tok, 64, 258};

  // The ApiError a body raises (status 0 when it parses).
  ApiError completion_error(const std::string& body) {
    try {
      parse_completion_request(body, ctx);
    } catch (const ApiError& e) {
      return e;
    }
    return ApiError(0, "", "");
  }
  ApiError chat_error(const std::string& body) {
    try {
      parse_chat_request(body, ctx);
    } catch (const ApiError& e) {
      return e;
    }
    return ApiError(0, "", "");
  }
};

TEST_F(ServeApi, CompletionDefaultsAndParameters) {
  ApiRequest r = parse_completion_request(R"({"model":"tiny","prompt":"hi"})", ctx);
  EXPECT_EQ(r.kind, ApiKind::COMPLETION);
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{256, 'h', 'i'}));
  EXPECT_EQ(r.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FALSE(r.seeded);
  EXPECT_FALSE(r.stream);

  r = parse_completion_request(R"({"prompt":["hi"],"max_tokens":5,"temperature":0,"top_p":0.5,"top_k":7,"seed":-3,
                                   "stop":["\n","END",""],"n":1,"stream":true,"stream_options":{"include_usage":true}})",
                               ctx);
  EXPECT_EQ(r.model, "tiny");  // absent model: the served one
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.sampling.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));  // empty stop strings dropped
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);

  r = parse_completion_request(R"({"prompt":[1,2,3],"stop":"x","max_tokens":null})", ctx);
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{1, 2, 3}));  // token ids as given, no BOS
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x"}));
}

TEST_F(ServeApi, MalformedJsonAndWrongTypes) {
  ApiError e = completion_error("{\"prompt\": ");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.code, "invalid_json");
  EXPECT_EQ(completion_error("[1,2]").status, 400);

  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c : {Case{R"({"prompt":"a","temperature":"hot"})", "temperature"},
                        Case{R"({"prompt":"a","max_tokens":"5"})", "max_tokens"},
                        Case{R"({"prompt":"a","max_tokens":2.5})", "max_tokens"},
                        Case{R"({"prompt":"a","top_k":1.5})", "top_k"},
                        Case{R"({"prompt":"a","seed":"1"})", "seed"},
                        Case{R"({"prompt":"a","stream":1})", "stream"},
                        Case{R"({"prompt":"a","stop":5})", "stop"},
                        Case{R"({"prompt":"a","stop":["a",1]})", "stop"},
                        Case{R"({"prompt":"a","model":7})", "model"},
                        Case{R"({"prompt":{"text":"a"}})", "prompt"},
                        Case{R"({"prompt":[1,"a"]})", "prompt"},
                        Case{R"({"prompt":"a","stream":true,"stream_options":true})", "stream_options"}}) {
    e = completion_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_EQ(e.code, "invalid_type") << c.body;
    EXPECT_NE(std::string(e.what()).find(c.param), std::string::npos) << e.what();
  }
}

TEST_F(ServeApi, OutOfRangeValues) {
  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c : {Case{R"({"prompt":"a","temperature":2.5})", "temperature"},
                        Case{R"({"prompt":"a","temperature":-1})", "temperature"},
                        Case{R"({"prompt":"a","top_p":0})", "top_p"},
                        Case{R"({"prompt":"a","top_p":1.5})", "top_p"},
                        Case{R"({"prompt":"a","top_k":-1})", "top_k"},
                        Case{R"({"prompt":"a","n":2})", "n"},
                        Case{R"({"prompt":"a","max_tokens":0})", "max_tokens"},
                        Case{R"({"prompt":"a","stop":["a","b","c","d","e"]})", "stop"},
                        Case{R"({"prompt":"a","stream_options":{"include_usage":true}})", "stream_options"},
                        Case{R"({"prompt":"a","logprobs":2})", "logprobs"},
                        Case{R"({"prompt":"a","echo":true})", "echo"},
                        Case{R"({"prompt":[1,999]})", "prompt"},
                        Case{R"({"prompt":[-1]})", "prompt"},
                        Case{R"({"prompt":["a","b"]})", "prompt"},
                        Case{R"({})", "prompt"}}) {
    ApiError e = completion_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
  }
}

TEST_F(ServeApi, UnknownModelIs404) {
  ApiError e = completion_error(R"({"model":"gpt-4","prompt":"a"})");
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.code, "model_not_found");
  EXPECT_EQ(e.param, "model");
  EXPECT_NE(std::string(e.what()).find("gpt-4"), std::string::npos);
}

TEST_F(ServeApi, MaxTokensBeyondTheContext) {
  // Context 64: "hi" is 3 tokens with BOS, so 61 fit and 62 do not.
  EXPECT_EQ(parse_completion_request(R"({"prompt":"hi","max_tokens":61})", ctx).max_tokens, 61);
  ApiError e = completion_error(R"({"prompt":"hi","max_tokens":62})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_NE(std::string(e.what()).find("maximum context length is 64 tokens"), std::string::npos) << e.what();
  e = completion_error(R"({"prompt":"hi","max_completion_tokens":100})");
  EXPECT_EQ(e.param, "max_completion_tokens");
  // A prompt that fills the context leaves no room at all.
  e = completion_error(R"({"prompt":")" + std::string(70, 'x') + R"("})");
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.param, "prompt");
  // The completions default (16) shrinks to what is left.
  EXPECT_EQ(parse_completion_request(R"({"prompt":")" + std::string(55, 'x') + R"("})", ctx).max_tokens, 8);
}

TEST_F(ServeApi, ChatRendersTheTemplateAndDefaultsToTheRestOfTheContext) {
  ApiRequest r = parse_chat_request(
      R"({"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"h"},{"type":"text","text":"i"}]},
                      {"role":"assistant","content":null},{"role":"user","content":"?"}]})",
      ctx);
  EXPECT_EQ(r.kind, ApiKind::CHAT);
  const std::string rendered = "<system>be brief\n<user>hi\n<assistant>\n<user>?\n<assistant>";
  EXPECT_EQ(r.prompt.size(), rendered.size() + 1);
  EXPECT_EQ(tok.decode(std::vector<int32_t>(r.prompt.begin() + 1, r.prompt.end())), rendered);
  EXPECT_EQ(r.max_tokens, 64 - static_cast<int64_t>(r.prompt.size()));
}

TEST_F(ServeApi, ChatMessageErrors) {
  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c : {Case{R"({})", "messages"},
                        Case{R"({"messages":"hi"})", "messages"},
                        Case{R"({"messages":[]})", "messages"},
                        Case{R"({"messages":["hi"]})", "messages[0]"},
                        Case{R"({"messages":[{"content":"hi"}]})", "messages[0].role"},
                        Case{R"({"messages":[{"role":"wizard","content":"hi"}]})", "messages[0].role"},
                        Case{R"({"messages":[{"role":"user","content":"a"},{"role":"user"}]})", "messages[1].content"},
                        Case{R"({"messages":[{"role":"user","content":5}]})", "messages[0].content"},
                        Case{R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content"}}) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
  }
}

TEST_F(ServeApi, ErrorBodyHasOpenAIShape) {
  const nlohmann::json j = error_json(ApiError(400, "invalid_request_error", "bad", "temperature", "invalid_type"));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_EQ(j["error"]["code"], "invalid_type");
  const nlohmann::json k = error_json(error_for_status(404, "GET", "/nope"));
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_EQ(k["error"]["code"], "unknown_url");
  EXPECT_NE(k["error"]["message"].get<std::string>().find("/nope"), std::string::npos);
  EXPECT_EQ(error_for_status(413, "POST", "/v1/completions").status, 413);
}

TEST_F(ServeApi, ResponsesAndChunks) {
  ApiRequest chat = parse_chat_request(R"({"messages":[{"role":"user","content":"hi"}]})", ctx);
  const nlohmann::json full = completion_response(chat, "chatcmpl-1", 7, "hello", FinishReason::LENGTH, {10, 2});
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["model"], "tiny");
  EXPECT_EQ(full["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(full["usage"]["total_tokens"], 12);
  EXPECT_EQ(full["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const nlohmann::json cached = completion_response(chat, "chatcmpl-2", 7, "hello", FinishReason::STOP, {10, 2, 9});
  EXPECT_EQ(cached["usage"]["prompt_tokens_details"]["cached_tokens"], 9);
  EXPECT_EQ(cached["usage"]["prompt_tokens"], 10);
  const std::string piece = "he";
  const nlohmann::json first = stream_chunk(chat, "chatcmpl-1", 7, &piece, true, nullptr);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "he");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const nlohmann::json last = stream_chunk(chat, "chatcmpl-1", 7, nullptr, false, "stop");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");

  ApiRequest cmpl = parse_completion_request(R"({"prompt":"hi"})", ctx);
  const nlohmann::json c = completion_response(cmpl, "cmpl-1", 7, "x", FinishReason::STOP, {3, 1});
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["choices"][0]["text"], "x");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "stop");
  // Invalid UTF-8 from the model never breaks the JSON.
  const std::string bad = "a\xff" "b";
  EXPECT_EQ(sse_event(stream_chunk(cmpl, "cmpl-1", 7, &bad, false, nullptr)).rfind("data: {", 0), 0u);
  EXPECT_NE(dump(nlohmann::json(bad)).find("\xEF\xBF\xBD"), std::string::npos);
}

TEST_F(ServeApi, PrometheusText) {
  EngineMetrics m;
  m.requests_accepted = 5;
  m.requests_finished_stop = 3;
  m.requests_rejected_queue_full = 2;
  m.requests_rejected_invalid = 1;
  m.queue_depth = 4;
  m.tokens_per_second = 12.5;
  EngineLimits lim{64, 2, 8, 258};
  HttpCounters http;
  http.responses_by_code = {{200, 5}, {429, 2}};
  http.requests_rejected_invalid = 6;  // 400s the API refused before the engine saw them
  const std::string text = prometheus_text(m, lim, http);
  for (const char* line :
       {"# TYPE lookahead_requests_accepted_total counter", "lookahead_requests_accepted_total 5",
        "# TYPE lookahead_requests_finished_total counter", "lookahead_requests_finished_total{reason=\"stop\"} 3",
        "lookahead_requests_rejected_total{reason=\"queue_full\"} 2",
        "lookahead_requests_rejected_total{reason=\"invalid\"} 7", "lookahead_http_responses_total{code=\"429\"} 2",
        "lookahead_waiting_requests 4", "lookahead_max_waiting_requests 8", "lookahead_running_sequences 0",
        "lookahead_batch_tokens 0", "lookahead_generated_tokens_per_second 12.500",
        "lookahead_expert_cache_hit_ratio 0.000000", "lookahead_slow_tier_bytes_total 0",
        "lookahead_max_running_sequences 2", "# TYPE lookahead_time_to_first_token_seconds histogram",
        "# TYPE lookahead_inter_token_latency_seconds histogram",
        "# TYPE lookahead_request_duration_seconds histogram"})
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line;
  // Outcomes are not mixed with admission.
  EXPECT_EQ(text.find("status=\"accepted\""), std::string::npos);
}

TEST_F(ServeApi, HistogramsAreCumulativeInSeconds) {
  Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in it (le)
  h.observe(0.5);
  h.observe(7);
  EXPECT_EQ(h.count, 4u);
  EXPECT_DOUBLE_EQ(h.sum, 7.65);
  HttpCounters http;
  http.latency.time_to_first_token = h;
  const std::string text = prometheus_text(EngineMetrics{}, EngineLimits{}, http);
  for (const char* line : {"lookahead_time_to_first_token_seconds_bucket{le=\"0.1\"} 2",
                           "lookahead_time_to_first_token_seconds_bucket{le=\"1\"} 3",
                           "lookahead_time_to_first_token_seconds_bucket{le=\"+Inf\"} 4",
                           "lookahead_time_to_first_token_seconds_sum 7.650000",
                           "lookahead_time_to_first_token_seconds_count 4",
                           "lookahead_request_duration_seconds_bucket{le=\"+Inf\"} 0"})
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line;
}

}  // namespace
}  // namespace lookahead::moe::http
