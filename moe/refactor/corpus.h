#pragma once
// A domain-labelled text corpus as data/build_corpus.py writes it: DIR/<domain>/<split>.txt.
//
// Contract: open_corpus() lists the domains (sub-directories holding <split>.txt, sorted by name,
// or exactly `only` when given) and throws lookahead::Error naming the directory or domain when the
// directory is missing, a requested domain is missing, or a domain's split file is empty.
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

}  // namespace lookahead::moe
