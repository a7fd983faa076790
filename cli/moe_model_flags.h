#pragma once
// Flags shared by the `moe` commands that run a model: which model and routing, and how to sample.
// Defaults differ per command on purpose (chat samples cooler and keeps a longer context), so each
// command sets them before calling the add_* function.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "common/error.h"
#include "moe/model/sampling.h"

namespace lookahead::cli {

struct ModelFlags {
  std::string model;
  std::string route;  // empty: the model's default (router for Read-ME, dense otherwise)
};

inline void add_model_flags(CLI::App& cmd, ModelFlags& f) {
  cmd.add_option("--model", f.model, "GGUF file, Hugging Face checkpoint directory or Read-ME model directory")
      ->required();
  cmd.add_option("--route", f.route, "Read-ME routing: router (default), oracle:DOMAIN, random[:SEED], dense");
}

struct SamplingFlags {
  uint64_t seed = 0;
  float temp = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  int threads = 0;
  int64_t ctx = 2048;
  CLI::Option* ctx_option = nullptr;  // to tell a given --ctx from the default
  moe::SamplingParams params() const { return {temp, top_k, top_p, seed}; }
  bool ctx_given() const { return ctx_option && ctx_option->count() > 0; }
};

// --ctx, the same in every command: at least `min_ctx`; a context the user gave must fit the
// model's training context (n_ctx_train, 0 = unknown: no limit) or it is an error; the command's
// default is capped at the training context. Call with n_ctx_train 0 to check the flag before
// the model loads.
inline int64_t resolve_ctx(int64_t ctx, bool given, int64_t n_ctx_train, int64_t min_ctx = 1) {
  if (ctx < min_ctx) fail("--ctx must be >= {} tokens, got {}", min_ctx, ctx);
  if (n_ctx_train > 0 && ctx > n_ctx_train) {
    if (given) fail("--ctx {} is larger than the model's training context of {} tokens", ctx, n_ctx_train);
    return n_ctx_train;
  }
  return ctx;
}

inline void add_sampling_flags(CLI::App& cmd, SamplingFlags& f) {
  cmd.add_option("--seed", f.seed, "sampling seed")->capture_default_str();
  cmd.add_option("--temp", f.temp, "temperature in [0, 2] (0 = greedy)")->capture_default_str();
  cmd.add_option("--top-k", f.top_k, "keep the k most likely tokens (>= 0; 0 = all)")->capture_default_str();
  cmd.add_option("--top-p", f.top_p, "nucleus sampling mass in (0, 1] (1 = off)")->capture_default_str();
  cmd.add_option("--threads,-t", f.threads, "CPU threads (0 = all cores)")->capture_default_str();
  f.ctx_option = cmd.add_option("--ctx,-c", f.ctx, "context size in tokens (at most the model's training context)")
                     ->capture_default_str();
}

}  // namespace lookahead::cli
