// `lookahead moe convert --model PATH --out OUT.gguf [--type T]`: write a llama-architecture GGUF
// (loadable by llama.cpp) from a GGUF file or a Hugging Face checkpoint directory, re-typing the
// weights (moe/checkpoint/convert.h has the rules). A Read-ME directory is re-exported as a Read-ME
// directory in the new type instead (moe/refactor/readme_export.h: convert_readme_model), e.g. a
// distilled F16 model to Q8_0 or Q4_1 for serving.
#include <fmt/format.h>

#include <memory>

#include "cli/command.h"
#include "common/error.h"
#include "moe/checkpoint/convert.h"
#include "moe/model/loaded_model.h"
#include "moe/refactor/readme_export.h"

namespace {

struct ConvertArgs {
  std::string model;
  std::string out;
  std::string type = "keep";
  bool quiet = false;
};

void run_readme_convert(const ConvertArgs& a) {
  const auto type = lookahead::moe::parse_convert_type(a.type);
  if (!type) lookahead::fail("--type: a Read-ME directory is converted to one named type (f32, f16, bf16, q8_0, q4_0, q4_1), not '{}'", a.type);
  const int64_t padding = lookahead::moe::convert_readme_model(a.model, a.out, *type, !a.quiet);
  if (!a.quiet)
    fmt::print("{}: Read-ME model in {}{}\n", a.out, a.type,
               padding ? fmt::format(" ({} zero neurons pad the experts to whole blocks)", padding) : std::string());
}

void run_convert(const ConvertArgs& a) {
  if (lookahead::moe::is_readme_dir(a.model)) return run_readme_convert(a);
  lookahead::moe::ConvertOptions o;
  o.model = a.model;
  o.out = a.out;
  o.type = lookahead::moe::parse_convert_type(a.type);
  o.progress = !a.quiet;
  auto s = lookahead::moe::convert_to_gguf(o);
  if (!a.quiet) {
    fmt::print("{}: {} tensors, {:.1f} MiB of weights ({})\n", o.out, s.tensors, s.bytes / 1048576.0, a.type);
    if (s.fallbacks)
      fmt::print("  {} tensors kept as F16: their rows are not a multiple of the {} block size\n", s.fallbacks, a.type);
  }
}

const bool registered = lookahead::cli::register_command(
    {"moe", "convert", "Convert a GGUF file or Hugging Face checkpoint to a GGUF of one weight type (a Read-ME directory to a Read-ME directory)",
     [](CLI::App& cmd) {
       auto a = std::make_shared<ConvertArgs>();
       cmd.add_option("--model", a->model, "input: .gguf file, Hugging Face checkpoint directory or Read-ME directory")->required();
       cmd.add_option("--out", a->out, "output .gguf path, or directory for a Read-ME input (written atomically; must not exist)")->required();
       cmd.add_option("--type", a->type, "weight type: f32, f16, bf16, q8_0, q4_0, q4_1, keep (norms stay f32)")
           ->capture_default_str();
       cmd.add_flag("--quiet", a->quiet, "no progress bar or summary");
       cmd.callback([a] { run_convert(*a); });
     }});

}  // namespace
