#pragma once
// Flags shared by the `moe` commands that run a model: which model and routing, and how to sample.
// Defaults differ per command on purpose (chat samples cooler and keeps a longer context), so each
// command sets them before calling the add_* function.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

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
  moe::SamplingParams params() const { return {temp, top_k, top_p, seed}; }
};

inline void add_sampling_flags(CLI::App& cmd, SamplingFlags& f) {
  cmd.add_option("--seed", f.seed, "sampling seed")->capture_default_str();
  cmd.add_option("--temp", f.temp, "temperature (0 = greedy)")->capture_default_str();
  cmd.add_option("--top-k", f.top_k, "keep the k most likely tokens (0 = all)")->capture_default_str();
  cmd.add_option("--top-p", f.top_p, "nucleus sampling mass")->capture_default_str();
  cmd.add_option("--threads,-t", f.threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd.add_option("--ctx,-c", f.ctx, "context size in tokens")->capture_default_str();
}

}  // namespace lookahead::cli
