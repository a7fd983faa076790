#pragma once
// The expert-reconstruction flags shared by `moe refactor` and `moe prune`
// (moe/refactor/ffn_reconstruction.h).
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "common/error.h"
#include "moe/refactor/refactor.h"

namespace lookahead::cli {

struct ReconstructionFlags {
  std::string ridge = "auto";
  // Fills r.ridge from the --ridge text: "auto" (< 0) or a number >= 0.
  void apply(moe::RefactorOptions& r) const {
    if (ridge == "auto") {
      r.ridge = -1;
      return;
    }
    try {
      size_t used = 0;
      r.ridge = std::stod(ridge, &used);
      if (used != ridge.size() || !(r.ridge >= 0)) throw std::invalid_argument(ridge);
    } catch (const std::exception&) {
      fail("--ridge '{}' must be auto or a number >= 0", ridge);
    }
  }
};

inline void add_reconstruction_flags(CLI::App& cmd, moe::RefactorOptions& r, ReconstructionFlags& f, const char* fit_on) {
  cmd.add_option("--reconstruct", r.reconstruct,
                 std::string("lsq (refit down_proj by ridge least squares to the dense FFN's output on ") + fit_on +
                     ") or none (the dense columns)")
      ->capture_default_str();
  cmd.add_option("--ridge", f.ridge, "ridge relative to the mean diagonal of the kept neurons' Gram matrix, or auto (chosen "
                 "per layer on validation tokens)")->capture_default_str();
  cmd.add_option("--reconstruct-tokens", r.reconstruct_tokens, "calibration tokens per domain to fit on")->capture_default_str();
  cmd.add_option("--validation-tokens", r.validation_tokens, "calibration tokens per domain after those, to choose the ridge on")
      ->capture_default_str();
  cmd.add_option("--select", r.select,
                 "which neurons to keep: activation (largest mean |a|, the paper's rule) or output (as many, chosen on the "
                 "fit tokens to least increase the FFN output error after the refit)")
      ->capture_default_str();
  cmd.add_option("--select-damp", r.select_damp, "--select output: damping relative to the mean diagonal of the Gram matrix")
      ->capture_default_str();
  cmd.add_option("--select-block", r.select_block, "--select output: neurons removed per step (1 = pure greedy, slowest)")
      ->capture_default_str();
}

}  // namespace lookahead::cli
