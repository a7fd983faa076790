// `lookahead moe refactor`: turn a dense model into a Read-ME model directory (statistics,
// experts, router targets, router training, export). Router training runs `lookahead-train`, a
// separate program linked with libtorch, so this binary (the inference engine) never links it.
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_reconstruction_flags.h"
#include "common/error.h"
#include "moe/checkpoint/convert.h"
#include "moe/kernels/matmul.h"
#include "moe/refactor/refactor.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace lookahead::moe;

struct RefactorCommandOptions {
  RefactorOptions r;
  std::string domains, experts_from = "domains", dtype = "f16", normalizer = "released", mlp = "silu";
  int64_t router_steps = 300;
  int64_t router_batch = 16;
  double router_lr = 5e-4;
  uint64_t seed = 0;
  int threads = 0;
  bool no_dense_ffn = false;
  lookahead::cli::ReconstructionFlags reconstruction;
};

// lookahead-train next to this binary, else $LOOKAHEAD_TRAIN, else on PATH.
std::string trainer_path() {
  if (const char* env = std::getenv("LOOKAHEAD_TRAIN"); env && *env) return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = self.parent_path() / "lookahead-train";
    if (fs::exists(beside, ec)) return beside.string();
  }
  return "lookahead-train";
}

void run_process(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    lookahead::fail("cannot run {} (build it: it is the libtorch trainer, target lookahead-train)", args[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) lookahead::fail("waiting for {} failed", args[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    lookahead::fail("{} failed (exit status {}); see its message above", args[0],
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

void run_refactor(RefactorCommandOptions o) {
  if (o.experts_from != "domains")
    lookahead::fail("--experts-from '{}': only 'domains' (one expert per corpus domain, the paper's recipe) exists",
                    o.experts_from);
  lookahead::cli::apply_threads(o.threads);
  std::stringstream list(o.domains);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) o.r.domains.push_back(name);
  const auto type = parse_convert_type(o.dtype);
  if (!type) lookahead::fail("--dtype '{}' must be f16, bf16, f32, q8_0, q4_0 or q4_1", o.dtype);
  o.r.dtype = *type;
  o.r.dense_ffn = !o.no_dense_ffn;
  o.reconstruction.apply(o.r);
  if (o.mlp != "silu" && o.mlp != "swiglu") lookahead::fail("--router-mlp '{}' must be silu or swiglu", o.mlp);
  o.r.router.swiglu = o.mlp == "swiglu";
  const int32_t hd = o.r.router.n_head > 0 ? o.r.router.d_model / o.r.router.n_head : 0;
  if (o.normalizer == "released") o.r.router.normalizer = 1.0f;
  else if (o.normalizer == "paper") o.r.router.normalizer = std::sqrt(static_cast<float>(std::max(hd, 1)));
  else lookahead::fail("--router-normalizer '{}' must be released (1) or paper (sqrt(head size))", o.normalizer);
  if (o.router_steps < 1) lookahead::fail("--router-steps must be >= 1 (got {})", o.router_steps);

  const RouterConfig& rc = o.r.router;
  const std::string trainer = trainer_path();
  auto train = [&](const std::string& targets, const std::string& out) {
    std::vector<std::string> args = {trainer, "router", "--data", targets, "--out", out,
                                     "--steps", std::to_string(o.router_steps),
                                     "--batch", std::to_string(o.router_batch),
                                     "--lr", fmt::format("{}", o.router_lr),
                                     "--seed", std::to_string(o.seed),
                                     "--heads", std::to_string(rc.n_head),
                                     "--width", std::to_string(rc.d_model),
                                     "--inter", std::to_string(rc.d_inter),
                                     "--normalizer", fmt::format("{}", rc.normalizer),
                                     "--mlp", rc.hidden_act()};
    if (o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
    run_process(args);
  };
  const RefactorSummary s = refactor_to_readme(o.r, train);
  fmt::print("{}: Read-ME model with {} experts ({} calibration tokens, {} router training tokens)\n", o.r.out,
             s.experts.size(), s.stats_tokens, s.router_tokens);
  double perm = 0;
  for (double p : s.permanent_share) perm += p;
  fmt::print("  permanent expert: {:.1f}% of FFN neurons (mean over layers)\n", 100 * perm / s.permanent_share.size());
  for (size_t e = 0; e < s.experts.size(); ++e)
    fmt::print("  expert {} {:12} {:.1f}% of FFN neurons\n", e, s.experts[e], 100 * s.expert_share[e]);
  if (!s.error_fit.empty()) {
    fmt::print("  {}reconstruction: {:.0f} s; FFN output error, cut -> reconstructed (mean over layers; fit tokens{}):\n",
               o.r.select == "output" ? "neuron selection by output error + " : "", s.reconstruct_seconds,
               o.r.ridge < 0 ? " | validation tokens, median ridge" : "");
    for (size_t e = 0; e < s.experts.size(); ++e) {
      fmt::print("    {:12} {:5.1f}% -> {:5.1f}% reconstructed", s.experts[e], 100 * s.error_cut[e], 100 * s.error_fit[e]);
      if (o.r.ridge < 0)
        fmt::print(" | {:5.1f}% -> {:5.1f}%, ridge {}", 100 * s.validation_error_cut[e], 100 * s.validation_error_fit[e],
                   s.ridge[e]);
      fmt::print("\n");
    }
  }
}

const bool registered = lookahead::cli::register_command(
    {"moe", "refactor", "Refactor a dense model into a Read-ME model (experts + pre-gating router)", [](CLI::App& cmd) {
       auto o = std::make_shared<RefactorCommandOptions>();
       RefactorOptions& r = o->r;
       r.router.n_head = 4;
       r.router.d_model = 256;
       r.router.d_inter = 512;
       cmd.add_option("--model", r.model, "dense model: .gguf file or Hugging Face directory")->required();
       cmd.add_option("--corpus", r.corpus, "corpus directory DIR/<domain>/{calibration,train}.txt")->required();
       cmd.add_option("--out", r.out, "output Read-ME model directory (must not exist)")->required();
       cmd.add_option("--work", r.work_dir, "directory for intermediate files (default: OUT.work; reused)");
       cmd.add_option("--experts-from", o->experts_from, "where experts come from: domains")->capture_default_str();
       cmd.add_option("--domains", o->domains, "comma-separated subset of corpus domains (default: all)");
       cmd.add_option("--keep", r.keep, "fraction of FFN neurons each domain keeps, in (0, 1]")->capture_default_str();
       cmd.add_option("--ctx", r.ctx, "tokens per forward window for statistics")->capture_default_str();
       cmd.add_option("--stats-tokens", r.stats_tokens, "calibration tokens per domain")->capture_default_str();
       cmd.add_option("--router-tokens", r.router_tokens, "router training tokens per domain")->capture_default_str();
       cmd.add_option("--router-ctx", r.router_ctx, "router training window length")->capture_default_str();
       cmd.add_option("--router-steps", o->router_steps, "router training steps")->capture_default_str();
       cmd.add_option("--router-batch", o->router_batch, "router training windows per step")->capture_default_str();
       cmd.add_option("--router-lr", o->router_lr, "router peak learning rate (AdamW, cosine)")->capture_default_str();
       cmd.add_option("--router-heads", r.router.n_head, "router attention heads")->capture_default_str();
       cmd.add_option("--router-width", r.router.d_model, "router width d_r (paper: 512)")->capture_default_str();
       cmd.add_option("--router-inter", r.router.d_inter, "router MLP inner size")->capture_default_str();
       cmd.add_option("--router-normalizer", o->normalizer, "attention score scale: released (1) or paper (sqrt(head size))")
           ->capture_default_str();
       cmd.add_option("--router-mlp", o->mlp, "router MLP: silu (released code) or swiglu (paper)")->capture_default_str();
       cmd.add_option("--dtype", o->dtype, "weight type of the export: f16, bf16, f32, or GGML blocks q8_0, q4_0, q4_1 (experts are then "
                      "rounded up to whole 32-neuron blocks with their next most active neurons)")->capture_default_str();
       lookahead::cli::add_reconstruction_flags(cmd, r, o->reconstruction, "its domain's calibration tokens");
       cmd.add_option("--general-mix", r.general_mix,
                      "share of each expert's selection and fit objective taken from all domains' calibration tokens "
                      "(0 = its own domain only)")
           ->capture_default_str();
       cmd.add_flag("--no-dense-ffn", o->no_dense_ffn, "leave the dense FFN out (then --route dense is unavailable)");
       cmd.add_option("--seed", o->seed, "router training seed")->capture_default_str();
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
       cmd.callback([o] { run_refactor(*o); });
     }});

}  // namespace
