// libFuzzer target: request traces (moe/serving/trace.h) in all three formats (our JSONL, ShareGPT,
// LMSYS). Any input must either parse or throw lookahead::Error; a crash, sanitizer report, leak or
// hang is a bug. A trace that parses must hold sane requests (lengths >= 1, arrival times finite
// and non-decreasing) and survive a round trip through our JSONL writer.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "moe/serving/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lookahead::moe::serving;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (TraceFormat format : {TraceFormat::JSONL, TraceFormat::SHAREGPT, TraceFormat::LMSYS}) {
    for (bool skip_bad : {false, true}) {
      TraceOptions options;
      options.skip_bad = skip_bad;
      options.rate = format == TraceFormat::JSONL && !skip_bad ? 0 : 3.0;
      options.seed = size;
      try {
        Trace trace = parse_trace(input, format, "fuzz", options);
        if (trace.requests.empty()) __builtin_trap();
        double last = 0;
        for (const TraceRequest& r : trace.requests) {
          if (r.prompt_len < 1 || r.output_len < 1 || !std::isfinite(r.arrival_s) || r.arrival_s < last) __builtin_trap();
          last = r.arrival_s;
        }
        Trace back = parse_trace(trace_to_jsonl(trace), TraceFormat::JSONL, "fuzz-roundtrip", {});
        if (back.requests.size() != trace.requests.size()) __builtin_trap();
      } catch (const lookahead::Error&) {
      }
    }
  }
  return 0;
}
