// `lookahead moe tokenize --model PATH (--prompt TEXT | --file PATH)`: the token ids of a text
// with the model's tokenizer (like llama.cpp's llama-tokenize), or with --count only the number
// of tokens and the encoding speed.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "common/input_file.h"
#include "moe/checkpoint/model_source.h"
#include "common/error.h"
#include "moe/format/gguf.h"
#include "moe/tokenize/tokenizer.h"

namespace {

struct TokenizeOptions {
  std::string model;
  std::string prompt;
  std::string file;
  bool parse_special = false;
  bool add_special = false;
  bool count = false;
  bool pieces = false;
  bool json = false;
};

void run_tokenize(const TokenizeOptions& o) {
  using namespace lookahead;
  using namespace lookahead::moe;
  if (o.prompt.empty() == o.file.empty()) fail("moe tokenize: give exactly one of --prompt or --file");
  std::string text = o.prompt;
  if (!o.file.empty()) {
    text = read_input_file(o.file, "--file");
  }
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<Tokenizer> owned;
  std::unique_ptr<ModelSource> source;
  const Tokenizer* tokenizer = nullptr;
  if (std::filesystem::is_directory(o.model)) {
    // The same directory reader as generate: a Hugging Face checkpoint or a Read-ME model, with
    // tokenizer.json, tokenizer.model or tokenizer.gguf.
    source = open_model(o.model);
    tokenizer = &source->tokenizer();
  } else {
    gguf = std::make_unique<GgufFile>(o.model);
    owned = Tokenizer::from_gguf(*gguf);
    tokenizer = owned.get();
  }
  auto start = std::chrono::steady_clock::now();
  auto ids = tokenizer->encode(text, o.add_special, o.parse_special);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    nlohmann::json j = {{"tokens", ids.size()}, {"bytes", text.size()}, {"seconds", seconds},
                        {"mb_per_s", seconds > 0 ? text.size() / 1e6 / seconds : 0.0}};
    if (!o.count) j["ids"] = ids;
    fmt::print("{}\n", j.dump());
  } else if (o.count) {
    fmt::print("{} tokens, {} bytes, {:.3f} s, {:.2f} MB/s\n", ids.size(), text.size(), seconds,
               seconds > 0 ? text.size() / 1e6 / seconds : 0.0);
  } else if (o.pieces) {
    for (auto id : ids) fmt::print("{:6} -> '{}'\n", id, tokenizer->token_bytes(id));
  } else {
    std::string line;
    for (auto id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
    fmt::print("{}\n", line);
  }
}

const bool registered = lookahead::cli::register_command(
    {"moe", "tokenize", "Print the token ids of a text with a model's tokenizer", [](CLI::App& cmd) {
       auto o = std::make_shared<TokenizeOptions>();
       cmd.add_option("--model", o->model, "a .gguf file, a Hugging Face checkpoint directory or a Read-ME model directory")->required();
       cmd.add_option("--prompt", o->prompt, "the text to tokenize");
       cmd.add_option("--file", o->file, "read the text from this file");
       cmd.add_flag("--special", o->parse_special, "special tokens written in the text (e.g. <|im_start|>) become their ids");
       cmd.add_flag("--add-special", o->add_special, "prepend BOS when the vocabulary asks for it");
       cmd.add_flag("--pieces", o->pieces, "print each id with its text");
       cmd.add_flag("--count", o->count, "print only the token count and the encoding speed");
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_tokenize(*o); });
     }});

}  // namespace
