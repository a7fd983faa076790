#pragma once
// Where a batch's per-token experts come from (bridge/traffic.h turns them into traffic):
// - the Read-ME pre-gating router run on text (router only; the backbone never runs), windows of
//   `ctx` positions, each BOS-prefixed as `moe router-eval` does;
// - a trace file of expert ids (one integer per token, whitespace separated, '#' comments);
// - a synthetic Zipf draw: P(expert e) proportional to 1/(e+1)^skew (expert 0 the hottest), seeded.
#include <cstdint>
#include <string>
#include <vector>

namespace lookahead::moe {
class ReadMeModel;
}

namespace lookahead::bridge {

// The experts of the first `tokens` text tokens of `text`. Throws lookahead::Error if the text has
// fewer tokens (naming `where`) or ctx is out of the router's range.
std::vector<int32_t> route_text(const moe::ReadMeModel& model, const std::string& text, int64_t tokens, int64_t ctx,
                                const std::string& where);

// Expert ids from a trace file; throws naming the file and the offending entry (not an integer,
// negative, or >= experts when experts > 0).
std::vector<int32_t> read_expert_trace(const std::string& path, int experts);

// `tokens` seeded Zipf draws over `experts` experts. skew >= 0 (0: uniform). Throws on bad values.
std::vector<int32_t> zipf_experts(int experts, double skew, uint64_t tokens, uint64_t seed);

}  // namespace lookahead::bridge
