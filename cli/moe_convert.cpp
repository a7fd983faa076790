// `lookahead moe convert --model PATH --out OUT.gguf [--type T]`: write a llama-architecture GGUF
// (loadable by llama.cpp) from a GGUF file or a Hugging Face checkpoint directory, re-typing the
// weights (moe/format/convert.h has the rules).
#include <fmt/format.h>

#include <memory>

#include "cli/command.h"
#include "moe/format/convert.h"

namespace {

struct ConvertArgs {
  std::string model;
  std::string out;
  std::string type = "keep";
  bool quiet = false;
};

void run_convert(const ConvertArgs& a) {
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
    {"moe", "convert", "Convert a GGUF file or Hugging Face checkpoint to a GGUF of one weight type",
     [](CLI::App& cmd) {
       auto a = std::make_shared<ConvertArgs>();
       cmd.add_option("--model", a->model, "input: .gguf file or Hugging Face checkpoint directory")->required();
       cmd.add_option("--out", a->out, "output .gguf path (written atomically)")->required();
       cmd.add_option("--type", a->type, "weight type: f32, f16, bf16, q8_0, q4_0, q4_1, keep (norms stay f32)")
           ->capture_default_str();
       cmd.add_flag("--quiet", a->quiet, "no progress bar or summary");
       cmd.callback([a] { run_convert(*a); });
     }});

}  // namespace
