// `lookahead moe synth --shape NAME --experts N --dtype bf16|f16|f32|q8_0|q4_0|q4_1 --out DIR`: a Read-ME model
// with random weights at a named shape (moe/serving/synth_model.h), for scale experiments.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "cli/command.h"
#include "common/error.h"
#include "moe/checkpoint/convert.h"
#include "moe/model/readme_model.h"
#include "moe/serving/synth_model.h"

namespace {

// scripts/setup puts SmolLM2 here; its tokenizer is the default vocabulary of a synthetic model.
constexpr const char* kDefaultTokenizer = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct SynthCliOptions {
  lookahead::moe::serving::SynthOptions synth;
  std::string dtype = "bf16";
  std::string out;
  bool no_tokenizer = false;
};

void run_synth(SynthCliOptions& o) {
  using namespace lookahead::moe;
  const std::string type = [&] {
    std::string t = o.dtype;
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t;
  }();
  if (type != "bf16" && type != "f16" && type != "f32" && type != "q8_0" && type != "q4_0" && type != "q4_1")
    lookahead::fail("--dtype '{}' must be bf16, f16, f32, q8_0, q4_0 or q4_1", o.dtype);
  o.synth.dtype = *parse_convert_type(type);
  serving::check_synth_options(o.synth);
  if (o.no_tokenizer) {
    o.synth.tokenizer.clear();
  } else if (o.synth.tokenizer.empty()) {
    // The repository's models/ from the working directory, else from the binary's (build/<preset>/).
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    for (const fs::path& candidate : {fs::path(kDefaultTokenizer), exe.parent_path() / "../.." / kDefaultTokenizer})
      if (o.synth.tokenizer.empty() && fs::exists(candidate, ec)) o.synth.tokenizer = candidate.lexically_normal().string();
    if (o.synth.tokenizer.empty())
      lookahead::fail("no tokenizer: pass --tokenizer FILE (a GGUF file or HF directory) or run scripts/setup for {}",
                      kDefaultTokenizer);
  }
  o.synth.progress = true;
  serving::write_synth_model(o.synth, o.out);
  ReadMeModel m(o.out);  // proves the result loads
  uint64_t expert_bytes = 0;
  const int n_layer = m.backbone().hparams().n_layer;
  for (int l = 0; l < n_layer; ++l)
    for (int32_t e = 0; e < m.n_expert(); ++e) expert_bytes += m.slab(l, e).bytes;
  fmt::print("{}: {} shape, {} layers, {} experts, {}, vocab {}; expert slabs {:.3f} GiB ({:.2f} MiB each)\n", o.out,
             o.synth.shape, n_layer, m.n_expert(), m.config().dtype, m.backbone().hparams().n_vocab,
             static_cast<double>(expert_bytes) / (1 << 30),
             static_cast<double>(m.slab(0, 0).bytes) / (1 << 20));
}

const bool registered = lookahead::cli::register_command(
    {"moe", "synth", "Write a Read-ME model with random weights at a named shape (scale experiments)", [](CLI::App& cmd) {
       auto o = std::make_shared<SynthCliOptions>();
       std::string shapes;
       for (const auto& n : lookahead::moe::serving::synth_shape_names()) shapes += (shapes.empty() ? "" : ", ") + n;
       cmd.add_option("--shape", o->synth.shape, "model shape: " + shapes)->required();
       cmd.add_option("--experts", o->synth.experts, "number of experts N")->capture_default_str();
       cmd.add_option("--dtype", o->dtype, "weight type: bf16, f16, f32, or GGML blocks q8_0, q4_0, q4_1 "
                      "(norms and router stay f32)")->capture_default_str();
       cmd.add_option("--out", o->out, "output model directory (must not exist unless --force)")->required();
       cmd.add_option("--layers", o->synth.layers, "layer count (default: the shape's)");
       cmd.add_option("--seed", o->synth.seed, "random seed")->capture_default_str();
       cmd.add_option("--keep", o->synth.keep, "fraction of the FFN neurons each expert holds (paper: 0.5)")
           ->capture_default_str();
       cmd.add_option("--tokenizer", o->synth.tokenizer,
                      std::string("GGUF file or HF directory whose tokenizer (and vocabulary size) the model takes "
                                  "(default: ") + kDefaultTokenizer + ")");
       cmd.add_flag("--no-tokenizer", o->no_tokenizer, "write no tokenizer; the shape's own vocabulary size");
       cmd.add_flag("--force", o->synth.force, "replace an existing output directory");
       cmd.callback([o] { run_synth(*o); });
     }});

}  // namespace
