// `lookahead-train`: the libtorch side of Read-ME (docs/readme-model.md). A separate binary so the
// inference engine (`lookahead`) never links libtorch.
//   lookahead-train router        --data router_targets.safetensors --out router.safetensors ...
//   lookahead-train router-logits --router router.safetensors --tokens 1,2,3 [--json]
//   lookahead-train experts       --model READ_ME_OR_PRUNED_DIR --data tokens.safetensors --steps N --out DIR [--teacher dense [--teacher-model PARENT]] ...
// Errors in input print one line "lookahead-train: error: ..." and exit 1.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "common/error.h"
#include "train/experts.h"
#include "train/router.h"

namespace {

using namespace lookahead;

std::vector<int32_t> parse_tokens(const std::string& text) {
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      fail("--tokens: expected comma-separated token ids, got '{}'", item);
    out.push_back(static_cast<int32_t>(v));
    pos = comma + 1;
  }
  if (out.empty()) fail("--tokens: need at least one token id");
  return out;
}

void run_router(const train::RouterTrainOptions& o, bool json) {
  auto r = train::train_router(o);
  const auto& c = r.config;
  if (json) {
    nlohmann::json j = {{"out", o.out},
                        {"router_config", c.to_json()},
                        {"parameters", r.parameters},
                        {"steps", o.steps},
                        {"seconds", r.seconds},
                        {"ms_per_step", r.ms_per_step},
                        {"loss_first", r.loss_first},
                        {"loss_last", r.loss_last},
                        {"loss", r.loss},
                        {"eval_tokens", r.eval_tokens},
                        {"accuracy_targets", r.accuracy_targets},
                        {"accuracy_domain", r.accuracy_domain},
                        {"confusion", r.confusion}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("router: %lld params (N %lld, heads %lld, d_r %lld, inter %lld, %s, normalizer %g)\n",
              static_cast<long long>(r.parameters), static_cast<long long>(c.n_expert), static_cast<long long>(c.n_head),
              static_cast<long long>(c.d_model), static_cast<long long>(c.d_inter), c.hidden_act(), static_cast<double>(c.normalizer));
  std::printf("router: %lld steps in %.1f s (%.1f ms/step), loss %.4f -> %.4f (mean of first/last 10%% of steps)\n",
              static_cast<long long>(o.steps), r.seconds, r.ms_per_step, r.loss_first, r.loss_last);
  std::printf("router: training accuracy %.2f%% vs argmax of summed targets, %.2f%% vs domain labels (%lld tokens); wrote %s\n",
              100.0 * r.accuracy_targets, 100.0 * r.accuracy_domain, static_cast<long long>(r.eval_tokens), o.out.c_str());
}

void run_router_logits(const std::string& path, const std::string& tokens_text, int threads, bool json) {
  const auto tokens = parse_tokens(tokens_text);
  auto r = train::router_logits(path, tokens, threads);
  const int64_t n = r.config.n_expert;
  if (json) {
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < tokens.size(); ++i)
      rows.push_back(std::vector<float>(r.logits.begin() + static_cast<int64_t>(i) * n, r.logits.begin() + static_cast<int64_t>(i + 1) * n));
    nlohmann::json j = {{"tokens", tokens}, {"experts", r.experts}, {"logits", rows}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string line = fmt::format("{}\t{}\texpert {}\t", i, tokens[i], r.experts[i]);
    for (int64_t e = 0; e < n; ++e) line += fmt::format("{}{:.9g}", e ? " " : "", r.logits[i * n + e]);
    std::printf("%s\n", line.c_str());
  }
}

void run_experts(const train::ExpertTrainOptions& o, bool json) {
  auto r = train::finetune_experts(o);
  if (json) {
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& p : r.curve)
      curve.push_back({{"step", p.step}, {"train_tokens", p.train_tokens}, {"train_loss", p.train_loss},
                       {"heldout_ce", p.heldout_ce}, {"heldout_kl", p.heldout_kl}, {"seconds", p.seconds}});
    nlohmann::json j = {{"out", o.out},
                        {"trainable_parameters", r.trainable_parameters},
                        {"steps", o.steps},
                        {"seconds", r.seconds},
                        {"ms_per_step", r.ms_per_step},
                        {"tokens_per_second", r.tokens_per_second},
                        {"train_tokens", r.train_tokens},
                        {"teacher", o.teacher},
                        {"resumed_from", r.resumed_from},
                        {"stopped", r.stopped},
                        {"loss_first", r.loss_first},
                        {"loss_last", r.loss_last},
                        {"loss", r.loss},
                        {"eval_tokens", r.eval_tokens},
                        {"eval_loss_before", r.eval_loss_before},
                        {"eval_loss_after", r.eval_loss_after},
                        {"eval_kl_before", r.eval_kl_before},
                        {"eval_kl_after", r.eval_kl_after},
                        {"curve", curve},
                        {"experts", r.experts},
                        {"expert_share", r.expert_share}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::string shares;
  for (size_t e = 0; e < r.experts.size(); ++e)
    shares += fmt::format("{}{} {:.1f}%", e ? ", " : "", r.experts[e], 100.0 * r.expert_share[e]);
  const std::string loss_name =
      r.distilled ? (o.kl_weight == 1.0 ? std::string("KL to the dense teacher")
                                        : fmt::format("{:g} KL to the dense teacher + {:g} CE", o.kl_weight, 1.0 - o.kl_weight))
                  : std::string("CE");
  std::printf("experts: %lld trainable params (%s), loss %s; steps %lld..%lld of %lld in %.1f s (%.0f ms/step, %.0f tokens/s)\n",
              static_cast<long long>(r.trainable_parameters), o.train_attention ? "experts + attention" : "experts",
              loss_name.c_str(), static_cast<long long>(r.resumed_from), static_cast<long long>(r.stopped ? o.stop_after : o.steps),
              static_cast<long long>(o.steps), r.seconds, r.ms_per_step, r.tokens_per_second);
  std::printf("experts: training loss %.4f -> %.4f (mean of first/last 10%% of steps); routing: %s\n", r.loss_first,
              r.loss_last, shares.c_str());
  if (r.stopped) {
    std::printf("experts: stopped after step %lld; checkpoint %s.ckpt (continue with --resume)\n",
                static_cast<long long>(o.stop_after), o.out.c_str());
    return;
  }
  if (r.eval_tokens > 0 && !std::isnan(r.eval_kl_before))
    std::printf("experts: held-out KL to the dense model %.4f -> %.4f\n", r.eval_kl_before, r.eval_kl_after);
  if (r.eval_tokens > 0)
    std::printf("experts: held-out loss %.4f -> %.4f (perplexity %.2f -> %.2f, %lld tokens); wrote %s\n", r.eval_loss_before,
                r.eval_loss_after, std::exp(r.eval_loss_before), std::exp(r.eval_loss_after),
                static_cast<long long>(r.eval_tokens), o.out.c_str());
  else
    std::printf("experts: no held-out sequences (--holdout 0 or one sequence); wrote %s\n", o.out.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // libtorch's OpenMP workers busy-wait between parallel regions, taking cores from OpenBLAS's own
  // GEMM threads: on 2 cores that made a training step 1.5-3x slower (and far worse on a loaded
  // machine). libgomp reads its wait policy once, when it loads, so set it and start again; a
  // policy the user set is kept.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0) ::execv("/proc/self/exe", argv);
  CLI::App app{"lookahead-train: libtorch training for Read-ME (router; expert fine-tuning)", "lookahead-train"};
  app.set_version_flag("--version", "lookahead-train " LOOKAHEAD_VERSION);
  app.require_subcommand(1);

  auto router_opts = std::make_shared<train::RouterTrainOptions>();
  auto json = std::make_shared<bool>(false);
  {
    auto& o = *router_opts;
    CLI::App* cmd = app.add_subcommand("router", "Train the pre-gating router on router_targets.safetensors");
    cmd->add_option("--data", o.data, "router_targets.safetensors (docs/readme-model.md)")->required();
    cmd->add_option("--out", o.out, "output router.safetensors (cluster_predictor.* + router_config)")->required();
    cmd->add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
    cmd->add_option("--lr", o.lr, "peak learning rate (cosine decay to 0)")->capture_default_str();
    cmd->add_option("--weight-decay", o.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str();
    cmd->add_option("--batch", o.batch, "windows per step")->capture_default_str();
    cmd->add_option("--seq-len", o.seq_len, "window length in tokens (each window starts at router position 0)")->capture_default_str();
    cmd->add_option("--seed", o.seed, "seed for init and window sampling")->capture_default_str();
    cmd->add_option("--warmup", o.warmup, "linear warm-up steps before the cosine decay")->capture_default_str();
    cmd->add_option("--heads", o.heads, "attention heads (default: data's router_config, else 4)");
    cmd->add_option("--width", o.width, "router width d_r (default: the init embedding's width)");
    cmd->add_option("--inter", o.inter, "MLP inner size (default: data's router_config, else d_r)");
    cmd->add_option("--normalizer", o.normalizer, "score divisor: released (1), paper (sqrt(d_r/heads)) or a number");
    cmd->add_option("--mlp", o.mlp, "silu (released: proj_2(silu(proj_1 x))) or swiglu (paper)");
    cmd->add_option("--threads", o.threads, "libtorch intra-op threads (results are reproducible per thread count)")
        ->capture_default_str();
    cmd->add_flag("--json", *json, "one JSON object on stdout (with the per-step loss curve)");
    cmd->callback([router_opts, json] {
      router_opts->progress = !*json;
      run_router(*router_opts, *json);
    });
  }
  {
    auto path = std::make_shared<std::string>();
    auto tokens = std::make_shared<std::string>();
    auto threads = std::make_shared<int>(1);
    CLI::App* cmd = app.add_subcommand("router-logits", "Print a trained router's logits at every position");
    cmd->add_option("--router", *path, "router.safetensors written by `lookahead-train router`")->required();
    cmd->add_option("--tokens", *tokens, "comma-separated token ids, fed from position 0")->required();
    cmd->add_option("--threads", *threads, "libtorch intra-op threads")->capture_default_str();
    cmd->add_flag("--json", *json, "JSON: tokens, experts, logits [T][N]");
    cmd->callback([path, tokens, threads, json] { run_router_logits(*path, *tokens, *threads, *json); });
  }

  auto expert_opts = std::make_shared<train::ExpertTrainOptions>();
  {
    auto& o = *expert_opts;
    CLI::App* cmd = app.add_subcommand(
        "experts", "Train a Read-ME model's experts, router frozen (stage 2): LM loss, or distillation from the dense FFN");
    cmd->add_option("--model", o.model, "student: a Read-ME directory (lookahead moe refactor), or a dense Hugging Face directory (lookahead moe prune; then every token takes its one FFN, no router)")->required();
    cmd->add_option("--data", o.data, "safetensors with I32 `tokens` (+ `seq_start`); router_targets.safetensors works")->required();
    cmd->add_option("--out", o.out, "output Read-ME directory (must not exist)")->required();
    cmd->add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
    cmd->add_option("--lr", o.lr, "peak learning rate (cosine decay to 0)")->capture_default_str();
    cmd->add_option("--weight-decay", o.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str();
    cmd->add_option("--batch", o.batch, "windows per step")->capture_default_str();
    cmd->add_option("--seq-len", o.seq_len, "window length (each window from position 0)")->capture_default_str();
    cmd->add_option("--seed", o.seed, "seed for window sampling")->capture_default_str();
    cmd->add_option("--warmup", o.warmup, "linear warm-up steps before the cosine decay")->capture_default_str();
    cmd->add_flag("--train-attention", o.train_attention, "also train q/k/v/o and the layer norms (default: frozen)");
    cmd->add_option("--teacher", o.teacher,
                    "none: next-token CE only; dense: distil from the directory's dense FFN (mlp.*) with the original attention")
        ->capture_default_str();
    cmd->add_option("--teacher-model", o.teacher_model,
                    "with --teacher dense: the teacher's attention + dense FFN from this Hugging Face or Read-ME directory "
                    "(the student's parent; default: the student's own mlp.*). Needed when --model is a dense pruned model");
    cmd->add_option("--kl-weight", o.kl_weight, "with --teacher dense: loss = w * KL(teacher || student) + (1 - w) * CE")
        ->capture_default_str();
    cmd->add_option("--eval-every", o.eval_every, "held-out CE and KL every N steps (0: before and after only)")->capture_default_str();
    cmd->add_option("--curve", o.curve, "CSV of the held-out curve: step,train_tokens,train_loss,heldout_ce,heldout_kl,seconds");
    cmd->add_option("--checkpoint-every", o.checkpoint_every, "write OUT.ckpt every N steps (0: never)")->capture_default_str();
    cmd->add_flag("--resume", o.resume, "continue from OUT.ckpt (same options; same result as an uninterrupted run)");
    cmd->add_option("--stop-after", o.stop_after, "stop after step N with OUT.ckpt written, no output (0: run to --steps)")
        ->capture_default_str();
    cmd->add_option("--holdout", o.holdout, "fraction of sequences (the last ones) held out for the eval loss")->capture_default_str();
    cmd->add_option("--eval-windows", o.eval_windows, "most held-out windows evaluated before and after")->capture_default_str();
    cmd->add_option("--threads", o.threads, "libtorch intra-op threads (results are reproducible per thread count)")
        ->capture_default_str();
    cmd->add_flag("--json", *json, "one JSON object on stdout (with the per-step loss curve)");
    cmd->callback([expert_opts, json] {
      expert_opts->progress = !*json;
      run_experts(*expert_opts, *json);
    });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "lookahead-train: error: %s\n", e.what());
    return 2;
  } catch (const lookahead::Error& e) {
    std::fprintf(stderr, "lookahead-train: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lookahead-train: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
