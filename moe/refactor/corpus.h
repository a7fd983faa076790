#pragma once
// A domain-labelled text corpus as data/build_corpus.py writes it: DIR/<domain>/<split>.txt.
//
// Contract: open_corpus() lists the domains (sub-directories holding <split>.txt, sorted by name,
// or exactly `only` when given) and throws lookahead::Error naming the directory or domain when the
// directory is missing, a requested domain is missing, or a domain's split file is empty.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lookahead::moe {

struct CorpusDomain {
  std::string name;
  std::string path;  // DIR/<name>/<split>.txt
};

std::vector<CorpusDomain> open_corpus(const std::string& dir, const std::string& split,
                                      const std::vector<std::string>& only = {});
std::string read_text_file(const std::string& path);

class Tokenizer;
// Tokenizes only as much of `text` as `want` tokens need: a prefix cut at a document boundary
// (blank line), doubled until it yields enough tokens (or the whole text). No special tokens.
std::vector<int32_t> tokenize_prefix(const Tokenizer& tokenizer, const std::string& text, int64_t want);

// Cuts `ids` into consecutive windows of at most `ctx` tokens, each `prefix` (e.g. BOS) followed by
// the next text tokens, until `max_text_tokens` text tokens are used; visit(window, text_tokens)
// sees each. Returns the text tokens used. The caller checks that ctx leaves room after prefix.
int64_t for_each_window(const std::vector<int32_t>& ids, const std::vector<int32_t>& prefix, int64_t ctx,
                        int64_t max_text_tokens,
                        const std::function<void(const std::vector<int32_t>& window, int64_t text_tokens)>& visit);

// Training tokens for `lookahead-train experts --data` (train/token_data.h): up to
// `tokens_per_domain` text tokens of each domain cut into windows of `ctx` tokens (prefix first,
// as everywhere else), domains interleaved window by window, written as safetensors `tokens` I32 [T], `seq_start` I32 [S+1] (one sequence
// per window) and `domain` I32 [T]. Atomic. Returns the number of tokens written.
int64_t write_corpus_tokens(const Tokenizer& tokenizer, const std::vector<CorpusDomain>& domains, int64_t tokens_per_domain,
                            int64_t ctx, const std::string& out);

}  // namespace lookahead::moe
