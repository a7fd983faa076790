#include "moe/serving/trace.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <fstream>
#include <random>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe::serving {

using nlohmann::json;

namespace {

constexpr size_t kMaxSkipReasons = 20;

// Uniform in (0, 1) from 53 random bits: the same on every platform.
double uniform01(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; }

double exponential(std::mt19937_64& rng, double rate) { return -std::log(uniform01(rng)) / rate; }

double standard_normal(std::mt19937_64& rng) {  // Box-Muller, one of the pair
  double u1 = uniform01(rng), u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t lognormal_length(std::mt19937_64& rng, double median, double sigma, int64_t lo, int64_t hi) {
  double x = std::exp(std::log(median) + sigma * standard_normal(rng));
  return std::clamp<int64_t>(std::llround(std::min(x, 1e15)), lo, hi);
}

void note_skip(Trace& trace, std::string reason) {
  ++trace.skipped;
  if (trace.skip_reasons.size() < kMaxSkipReasons) trace.skip_reasons.push_back(std::move(reason));
}

// Fills prompt_tokens / prompt_len / output_len from the prompt text and the reply text.
void set_lengths(TraceRequest& r, std::string_view reply, const Tokenizer* tokenizer) {
  if (tokenizer) {
    r.prompt_tokens = tokenizer->encode(r.prompt, true, false);
    r.prompt_len = static_cast<int64_t>(r.prompt_tokens.size());
    r.output_len = std::max<int64_t>(1, static_cast<int64_t>(tokenizer->encode(reply, false, false).size()));
  } else {
    r.prompt_len = estimate_tokens(r.prompt);
    r.output_len = estimate_tokens(reply);
    r.lengths_estimated = true;
  }
}

TraceRequest parse_jsonl_line(const json& j, const std::string& where, const TraceOptions& options) {
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  TraceRequest r;
  if (auto it = j.find("arrival_s"); it != j.end()) {
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
      fail("{}: field 'arrival_s': expected a number >= 0", where);
    }
    r.arrival_s = it->get<double>();
  } else if (options.rate <= 0) {
    fail("{}: field 'arrival_s' missing (or give a rate for Poisson arrivals)", where);
  }
  bool has_text = j.contains("prompt"), has_tokens = j.contains("prompt_tokens");
  if (has_text == has_tokens) fail("{}: expected exactly one of 'prompt' and 'prompt_tokens'", where);
  if (has_text) {
    const json& p = j.at("prompt");
    if (!p.is_string() || p.get_ref<const std::string&>().empty()) fail("{}: field 'prompt': expected a non-empty string", where);
    r.prompt = p.get<std::string>();
    if (options.tokenizer) {
      r.prompt_tokens = options.tokenizer->encode(r.prompt, true, false);
      r.prompt_len = static_cast<int64_t>(r.prompt_tokens.size());
    } else {
      r.prompt_len = estimate_tokens(r.prompt);
      r.lengths_estimated = true;  // the prompt's length only; output_len is given
    }
  } else {
    const json& p = j.at("prompt_tokens");
    if (!p.is_array() || p.empty()) fail("{}: field 'prompt_tokens': expected a non-empty list of token ids", where);
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_number_integer() || p[i].get<int64_t>() < 0 || p[i].get<int64_t>() > INT32_MAX) {
        fail("{}: field 'prompt_tokens[{}]': expected a token id (integer >= 0)", where, i);
      }
      r.prompt_tokens.push_back(static_cast<int32_t>(p[i].get<int64_t>()));
    }
    r.prompt_len = static_cast<int64_t>(r.prompt_tokens.size());
  }
  auto out = j.find("output_len");
  if (out == j.end()) fail("{}: field 'output_len' missing", where);
  if (!out->is_number_integer() || out->get<int64_t>() < 1) fail("{}: field 'output_len': expected an integer >= 1", where);
  r.output_len = out->get<int64_t>();
  return r;
}

Trace parse_jsonl(std::string_view text, const std::string& source, const TraceOptions& options) {
  Trace trace;
  size_t pos = 0;
  int64_t line_no = 0;
  double last_arrival = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string where = fmt::format("{}:{}", source, line_no);
    try {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) fail("{}: not valid JSON", where);
      TraceRequest r = parse_jsonl_line(j, where, options);
      if (options.rate <= 0 && r.arrival_s < last_arrival) {
        fail("{}: field 'arrival_s': {} is before the previous line's {} (times must not decrease)", where,
             r.arrival_s, last_arrival);
      }
      last_arrival = r.arrival_s;
      trace.requests.push_back(std::move(r));
    } catch (const Error& e) {
      if (!options.skip_bad) throw;
      note_skip(trace, e.what());
    }
  }
  return trace;
}

json parse_json_list(std::string_view text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) fail("{}: not valid JSON", source);
  if (!j.is_array()) fail("{}: expected a JSON list of conversations", source);
  return j;
}

bool is_human(std::string_view who) { return who == "human" || who == "user"; }
bool is_reply(std::string_view who) {
  return who == "gpt" || who == "chatgpt" || who == "bard" || who == "bing" || who == "assistant" || who == "model";
}

// Shared by both dumps: turns are (speaker, text) read from `speaker_key` / `text_key`.
Trace parse_conversations(std::string_view text, TraceFormat format, const std::string& source,
                          const TraceOptions& options) {
  json list = parse_json_list(text, source);
  const bool sharegpt = format == TraceFormat::SHAREGPT;
  const char* speaker_key = sharegpt ? "from" : "role";
  const char* text_key = sharegpt ? "value" : "content";
  Trace trace;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string where = fmt::format("{}: entry {}", source, i);
    try {
      const json& entry = list[i];
      if (!entry.is_object()) fail("{}: expected a JSON object", where);
      std::string conv_key = sharegpt ? "conversations" : "conversation";
      if (!sharegpt && !entry.contains(conv_key) && entry.contains("conversation_a")) conv_key = "conversation_a";
      auto it = entry.find(conv_key);
      if (it == entry.end()) fail("{}: field '{}' missing", where, conv_key);
      if (!it->is_array()) fail("{}: field '{}': expected a list of turns", where, conv_key);
      std::vector<std::string> human;
      std::string reply;
      bool got_reply = false;
      for (size_t t = 0; t < it->size() && !got_reply; ++t) {
        const json& turn = (*it)[t];
        std::string field = fmt::format("{}[{}]", conv_key, t);
        if (!turn.is_object()) fail("{}: field '{}': expected an object", where, field);
        auto who = turn.find(speaker_key);
        if (who == turn.end() || !who->is_string()) fail("{}: field '{}.{}': expected a string", where, field, speaker_key);
        auto body = turn.find(text_key);
        if (body == turn.end() || !body->is_string()) fail("{}: field '{}.{}': expected a string", where, field, text_key);
        const std::string& speaker = who->get_ref<const std::string&>();
        if (is_human(speaker)) {
          human.push_back(body->get<std::string>());
        } else if (is_reply(speaker)) {
          if (human.empty()) break;  // a reply with nothing asked before it: unusable
          reply = body->get<std::string>();
          got_reply = true;
        } else if (speaker != "system") {
          fail("{}: field '{}.{}': unknown speaker '{}'", where, field, speaker_key, speaker);
        }
      }
      std::string prompt;
      for (const std::string& h : human) prompt += (prompt.empty() ? "" : "\n\n") + h;
      if (!got_reply || prompt.find_first_not_of(" \t\r\n") == std::string::npos || reply.empty()) {
        note_skip(trace, fmt::format("{}: no human turn followed by a non-empty reply", where));
        continue;
      }
      TraceRequest r;
      r.prompt = std::move(prompt);
      set_lengths(r, reply, options.tokenizer);
      trace.requests.push_back(std::move(r));
    } catch (const Error& e) {
      if (!options.skip_bad) throw;
      note_skip(trace, e.what());
    }
  }
  return trace;
}

}  // namespace

TraceFormat parse_trace_format(std::string_view name, std::string_view what) {
  if (name == "jsonl") return TraceFormat::JSONL;
  if (name == "sharegpt") return TraceFormat::SHAREGPT;
  if (name == "lmsys") return TraceFormat::LMSYS;
  fail("{}: unknown '{}' (expected jsonl, sharegpt or lmsys)", what, name);
}

const char* trace_format_name(TraceFormat format) {
  switch (format) {
    case TraceFormat::JSONL: return "jsonl";
    case TraceFormat::SHAREGPT: return "sharegpt";
    case TraceFormat::LMSYS: return "lmsys";
  }
  return "?";
}

TraceFormat detect_trace_format(std::string_view text) {
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != '[') return TraceFormat::JSONL;
  json j = json::parse(text, nullptr, false);
  if (!j.is_array() || j.empty() || !j[0].is_object()) return TraceFormat::JSONL;
  if (j[0].contains("conversations")) return TraceFormat::SHAREGPT;
  if (j[0].contains("conversation") || j[0].contains("conversation_a")) return TraceFormat::LMSYS;
  return TraceFormat::JSONL;
}

int64_t estimate_tokens(std::string_view text) {
  int64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  int64_t by_words = (4 * words + 2) / 3;
  int64_t by_bytes = (static_cast<int64_t>(text.size()) + 3) / 4;
  return std::max<int64_t>(1, std::max(by_words, by_bytes));
}

void assign_poisson_arrivals(std::vector<TraceRequest>& requests, double rate, uint64_t seed) {
  if (!(rate > 0) || !std::isfinite(rate)) fail("trace: rate must be a number > 0 (requests/s), got {}", rate);
  std::mt19937_64 rng(seed);
  double t = 0;
  for (TraceRequest& r : requests) {
    t += exponential(rng, rate);
    r.arrival_s = t;
  }
}

Trace parse_trace(std::string_view text, TraceFormat format, const std::string& source, const TraceOptions& options) {
  if (options.rate < 0 || !std::isfinite(options.rate)) fail("{}: rate must be >= 0, got {}", source, options.rate);
  if (format != TraceFormat::JSONL && options.rate <= 0) {
    fail("{}: a {} dump has no arrival times: give a rate (requests/s) for Poisson arrivals", source,
         trace_format_name(format));
  }
  Trace trace = format == TraceFormat::JSONL ? parse_jsonl(text, source, options)
                                             : parse_conversations(text, format, source, options);
  if (options.max_requests > 0 && static_cast<int64_t>(trace.requests.size()) > options.max_requests) {
    trace.requests.resize(options.max_requests);
  }
  if (options.rate > 0) assign_poisson_arrivals(trace.requests, options.rate, options.seed);
  if (trace.requests.empty()) fail("{}: no usable requests ({} skipped)", source, trace.skipped);
  return trace;
}

namespace {
std::string read_text_file(const std::string& path, std::string_view what) { return read_input_file(path, what); }
}  // namespace

Trace read_trace(const std::string& path, std::optional<TraceFormat> format, const TraceOptions& options) {
  std::string text = read_text_file(path, "trace");
  return parse_trace(text, format ? *format : detect_trace_format(text), path, options);
}

Trace synth_trace(std::string_view corpus, const std::string& source, const SynthTraceOptions& o,
                  const Tokenizer* tokenizer) {
  if (o.n_requests < 1) fail("synthetic trace: n_requests must be >= 1, got {}", o.n_requests);
  if (!(o.prompt_median > 0) || !(o.output_median > 0)) fail("synthetic trace: length medians must be > 0");
  if (!(o.prompt_sigma >= 0) || !(o.output_sigma >= 0)) fail("synthetic trace: length sigmas must be >= 0");
  if (o.prompt_min < 1 || o.prompt_max < o.prompt_min) fail("synthetic trace: need 1 <= prompt_min <= prompt_max");
  if (o.output_min < 1 || o.output_max < o.output_min) fail("synthetic trace: need 1 <= output_min <= output_max");
  std::vector<int32_t> corpus_tokens;
  std::vector<std::string_view> words;
  if (tokenizer) {
    corpus_tokens = tokenizer->encode(corpus, false, false);
    if (corpus_tokens.empty()) fail("{}: corpus is empty", source);
  } else {
    size_t pos = 0;
    while (true) {
      size_t b = corpus.find_first_not_of(" \t\r\n\f\v", pos);
      if (b == std::string_view::npos) break;
      size_t e = corpus.find_first_of(" \t\r\n\f\v", b);
      if (e == std::string_view::npos) e = corpus.size();
      words.push_back(corpus.substr(b, e - b));
      pos = e;
    }
    if (words.empty()) fail("{}: corpus has no words", source);
  }
  std::mt19937_64 rng(o.seed);
  Trace trace;
  for (int64_t i = 0; i < o.n_requests; ++i) {
    TraceRequest r;
    int64_t plen = lognormal_length(rng, o.prompt_median, o.prompt_sigma, o.prompt_min, o.prompt_max);
    r.output_len = lognormal_length(rng, o.output_median, o.output_sigma, o.output_min, o.output_max);
    if (tokenizer) {
      size_t start = rng() % corpus_tokens.size();
      for (int64_t k = 0; k < plen; ++k) r.prompt_tokens.push_back(corpus_tokens[(start + k) % corpus_tokens.size()]);
      r.prompt = tokenizer->decode(r.prompt_tokens);
      r.prompt_len = plen;
    } else {
      size_t start = rng() % words.size();
      int64_t n_words = std::max<int64_t>(1, std::llround(0.75 * static_cast<double>(plen)));
      for (int64_t k = 0; k < n_words; ++k) {
        if (k) r.prompt += ' ';
        r.prompt += words[(start + k) % words.size()];
      }
      r.prompt_len = estimate_tokens(r.prompt);
      r.lengths_estimated = true;
    }
    trace.requests.push_back(std::move(r));
  }
  assign_poisson_arrivals(trace.requests, o.rate, o.seed ^ 0x9e3779b97f4a7c15ULL);
  return trace;
}

std::string trace_to_jsonl(const Trace& trace) {
  std::string out;
  for (const TraceRequest& r : trace.requests) {
    json j;
    j["arrival_s"] = r.arrival_s;
    if (!r.prompt_tokens.empty()) {
      j["prompt_tokens"] = r.prompt_tokens;
    } else {
      j["prompt"] = r.prompt;
    }
    j["output_len"] = r.output_len;
    out += j.dump(-1, ' ', false, json::error_handler_t::replace);
    out += '\n';
  }
  return out;
}

void write_trace_jsonl(const std::string& path, const Trace& trace) { write_file_atomic(path, trace_to_jsonl(trace)); }

}  // namespace lookahead::moe::serving
