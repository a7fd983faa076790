#pragma once
// A domain-labelled text corpus as data/build_corpus.py writes it: DIR/<domain>/<split>.txt.
//
// Contract: open_corpus() lists the domains (sub-directories holding <split>.txt, sorted by name,
// or exactly `only` when given) and throws lookahead::Error naming the directory or domain when the
// directory is missing, a requested domain is missing, or a domain's split file is empty.
#include <cstdint>
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

}  // namespace lookahead::moe
