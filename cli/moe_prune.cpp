// `lookahead moe prune`: the dense model with the same active FFN size as a Read-ME model (every
// layer's FFN pruned to one width by the same activation statistic, no routing), the baseline the
// paper compares Read-ME against. moe/refactor/pruned_model.h says what it keeps and writes.
#include <fmt/format.h>

#include <memory>
#include <sstream>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_reconstruction_flags.h"
#include "common/error.h"
#include "moe/checkpoint/convert.h"
#include "moe/kernels/matmul.h"
#include "moe/refactor/refactor.h"

namespace {

using namespace lookahead::moe;

struct PruneCommandOptions {
  RefactorOptions r;
  std::string domains, dtype = "f16";
  int32_t width = 0;
  int threads = 0;
  lookahead::cli::ReconstructionFlags reconstruction;
};

void run_prune(PruneCommandOptions o) {
  lookahead::cli::apply_threads(o.threads);
  if (o.width < 0) lookahead::fail("--width must be >= 0 (got {}; 0 = the Read-ME experts' mean size)", o.width);
  std::stringstream list(o.domains);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) o.r.domains.push_back(name);
  const auto type = parse_convert_type(o.dtype);
  if (!type) lookahead::fail("--dtype '{}' must be f16, bf16, f32, q8_0, q4_0 or q4_1", o.dtype);
  o.r.dtype = *type;
  o.reconstruction.apply(o.r);
  const PruneSummary s = prune_to_dense(o.r, o.width);
  fmt::print("{}: dense model with FFN width {} ({} calibration tokens)\n", o.r.out, s.width, s.stats_tokens);
  if (o.r.reconstruct == "lsq")
    fmt::print("  FFN output error (mean over layers): fit tokens {:.1f}% cut -> {:.1f}% reconstructed{}\n", 100 * s.error_cut,
               100 * s.error_fit,
               o.r.ridge < 0 ? fmt::format("; validation tokens {:.1f}% -> {:.1f}%, median ridge {}",
                                           100 * s.validation_error_cut, 100 * s.validation_error_fit, s.ridge)
                             : "");
}

const bool registered = lookahead::cli::register_command(
    {"moe", "prune", "Prune a dense model's FFN to the Read-ME experts' size (the same-active-size dense baseline)",
     [](CLI::App& cmd) {
       auto o = std::make_shared<PruneCommandOptions>();
       RefactorOptions& r = o->r;
       cmd.add_option("--model", r.model, "dense model: .gguf file or Hugging Face directory")->required();
       cmd.add_option("--corpus", r.corpus, "corpus directory DIR/<domain>/calibration.txt")->required();
       cmd.add_option("--out", r.out, "output Hugging Face checkpoint directory (must not exist)")->required();
       cmd.add_option("--work", r.work_dir, "directory for intermediate files (default: OUT.work; pass moe refactor's "
                      "--work to share its statistics)");
       cmd.add_option("--domains", o->domains, "comma-separated subset of corpus domains (default: all)");
       cmd.add_option("--keep", r.keep, "width = the mean size of the experts `moe refactor --keep` extracts")
           ->capture_default_str();
       cmd.add_option("--width", o->width, "FFN neurons kept per layer (0 = from --keep)")->capture_default_str();
       cmd.add_option("--ctx", r.ctx, "tokens per forward window for statistics")->capture_default_str();
       cmd.add_option("--stats-tokens", r.stats_tokens, "calibration tokens per domain")->capture_default_str();
       lookahead::cli::add_reconstruction_flags(cmd, r, o->reconstruction, "all domains' calibration tokens");
       cmd.add_option("--dtype", o->dtype, "weight type: f16, bf16, f32, q8_0, q4_0, q4_1")->capture_default_str();
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
       cmd.callback([o] { run_prune(*o); });
     }});

}  // namespace
