#pragma once
// A tiny synthetic Read-ME model (moe/serving/synth_model.h) in a temporary directory, for tests
// that need a real model directory: written once per test suite, removed with the object.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "moe/model/readme_model.h"
#include "moe/serving/synth_model.h"

namespace lookahead::moe::serving {

class TempSynthModel {
 public:
  // `tag` keeps suites that run at the same time apart.
  TempSynthModel(const std::string& tag, int32_t experts, int32_t layers, TensorType dtype, uint64_t seed)
      : dir_(std::filesystem::temp_directory_path() / ("lookahead_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir_);
    SynthOptions o;
    o.shape = "tiny";
    o.experts = experts;
    o.layers = layers;
    o.dtype = dtype;
    o.seed = seed;
    write_synth_model(o, (dir_ / "model").string());
    model_ = std::make_unique<ReadMeModel>((dir_ / "model").string());
  }
  ~TempSynthModel() {
    model_.reset();
    std::filesystem::remove_all(dir_);
  }
  const ReadMeModel& model() const { return *model_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<ReadMeModel> model_;
};

}  // namespace lookahead::moe::serving
