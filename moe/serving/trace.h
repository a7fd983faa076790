#pragma once
// Request traces for the Read-ME serving system: read, convert and generate.
//
// Formats (a TraceRequest each; times in seconds, lengths in tokens):
//   - jsonl: our format, one JSON object per line (blank lines skipped):
//       {"arrival_s": 0.25, "prompt": "text", "output_len": 128}
//       {"arrival_s": 0.50, "prompt_tokens": [1, 2, 3], "output_len": 16}
//     arrival_s >= 0 and non-decreasing (optional when a rate is given: Poisson times replace it);
//     exactly one of prompt / prompt_tokens; output_len >= 1. Other keys are ignored.
//   - sharegpt: a JSON list of {"conversations": [{"from": "human", "value": "..."},
//     {"from": "gpt", "value": "..."}, ...]} ("user" counts as human; "gpt", "chatgpt", "bard",
//     "bing", "assistant", "model" as replies; "system" turns are ignored).
//   - lmsys: the LMSYS conversation dumps, a JSON list of {"conversation": [{"role": "user",
//     "content": "..."}, {"role": "assistant", ...}], ...} (LMSYS-Chat-1M); an entry with only
//     "conversation_a" (the Chatbot Arena conversations release) uses that one.
//   For the two dumps, each conversation gives one request: its first exchange. The prompt is the
//   human turns before the first reply (joined by a blank line); output_len is that reply's length.
//   Conversations with no human turn before a reply, or no reply, are skipped and counted (public
//   dumps contain them). Later turns are not replayed (they would need the earlier ones as context).
//   Dumps carry no times: a rate (requests/s) is required and arrivals are a Poisson process.
//
// Lengths: with a tokenizer, prompt_tokens = encode(prompt, add_special = true) (no chat template)
// and output_len = the reply's token count (encode without specials), so lengths are exact for that
// model. Without one, both are the word-based estimate below and lengths_estimated is set.
//
// Errors: lookahead::Error naming the file and line (jsonl) or entry index (dumps) and the field,
// e.g. "t.jsonl:3: field 'output_len': expected an integer >= 1". With skip_bad a bad line/entry is
// skipped and counted instead (a file that is not JSON at all still fails).
//
// Synthetic traces (synth_trace): n requests, Poisson arrivals at `rate`, prompt and output
// lengths log-normal: L = clamp(round(exp(ln(median) + sigma * Z)), min, max), Z ~ N(0, 1).
// Defaults: prompt median 256, sigma 1.0, [4, 2048]; output median 128, sigma 0.9, [1, 1024]
// (long-tailed like public chat dumps; chosen by hand, not fitted to one). Prompts are consecutive
// text from a corpus at a uniformly random start (wrapping): L tokens when a tokenizer is given,
// else round(3 L / 4) words.
//
// Determinism: a (file, options, seed) gives the same trace on every platform (mt19937_64 and our
// own uniform/exponential/normal transforms, not the implementation-defined std distributions).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lookahead::moe {
class Tokenizer;
}

namespace lookahead::moe::serving {

struct TraceRequest {
  double arrival_s = 0;
  std::string prompt;                  // text; empty when the trace gave token ids only
  std::vector<int32_t> prompt_tokens;  // given ids, or the tokenizer's encoding of `prompt`
  int64_t prompt_len = 0;              // prompt_tokens.size() when known, else the estimate
  int64_t output_len = 0;              // tokens to generate
  bool lengths_estimated = false;      // prompt_len / output_len are word-based estimates
};

struct Trace {
  std::vector<TraceRequest> requests;  // by arrival time
  int64_t skipped = 0;                 // bad lines/entries (skip_bad) and unusable conversations
  std::vector<std::string> skip_reasons;  // the first few, for the report
};

enum class TraceFormat { JSONL, SHAREGPT, LMSYS };
// "jsonl", "sharegpt", "lmsys"; anything else throws naming `what`.
TraceFormat parse_trace_format(std::string_view name, std::string_view what = "trace format");
const char* trace_format_name(TraceFormat format);
// jsonl unless the text is a JSON list whose first entry has "conversations" (sharegpt) or
// "conversation" / "conversation_a" (lmsys).
TraceFormat detect_trace_format(std::string_view text);

struct TraceOptions {
  const Tokenizer* tokenizer = nullptr;  // exact token lengths; else word-based estimates
  double rate = 0;                       // > 0: Poisson arrivals at this many requests/s
  uint64_t seed = 0;                     // for the arrivals
  bool skip_bad = false;
  int64_t max_requests = 0;              // keep the first n (0 = all)
};

// Reads `path` (format detected when not given). `source` names the text in errors.
Trace read_trace(const std::string& path, std::optional<TraceFormat> format, const TraceOptions& options);
Trace parse_trace(std::string_view text, TraceFormat format, const std::string& source, const TraceOptions& options);

// Replaces arrival times with a Poisson process of `rate` requests/s from t = 0.
void assign_poisson_arrivals(std::vector<TraceRequest>& requests, double rate, uint64_t seed);

// Word-based token estimate: max(ceil(4 w / 3), ceil(bytes / 4)), at least 1, where w counts
// whitespace-separated words (the ~0.75 words per token of English BPE text; the byte term keeps
// code and unspaced scripts from being undercounted).
int64_t estimate_tokens(std::string_view text);

struct SynthTraceOptions {
  int64_t n_requests = 100;
  double rate = 1.0;  // requests/s
  uint64_t seed = 0;
  double prompt_median = 256, prompt_sigma = 1.0;
  int64_t prompt_min = 4, prompt_max = 2048;
  double output_median = 128, output_sigma = 0.9;
  int64_t output_min = 1, output_max = 1024;
};

// A synthetic trace drawing prompts from `corpus` (text); `source` names it in errors.
Trace synth_trace(std::string_view corpus, const std::string& source, const SynthTraceOptions& options,
                  const Tokenizer* tokenizer);

// Our JSONL format (prompt_tokens when known, else prompt), readable by read_trace.
std::string trace_to_jsonl(const Trace& trace);
void write_trace_jsonl(const std::string& path, const Trace& trace);  // atomic

}  // namespace lookahead::moe::serving
