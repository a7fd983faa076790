#pragma once
// A recorded expert access stream: per engine step, the (layer, expert) slabs the forward pass read,
// in order, and the plan the engine gave the expert store before the step (the batch's own slabs,
// then its prediction of the next --horizon batches). Cache policies are compared on one such
// stream (cache_sim.h), so every policy sees the same batches: in a live replay on a measured clock
// the batches depend on how long each policy stalled.
//
// Contract:
//   - StreamRecorder is an ExpertWeights over another one (the model itself or a TieredExperts):
//     expert() records the access and forwards it. BatchEngine calls begin_step(plan) before each
//     forward pass (BatchEngine::set_recorder). Accesses before the first begin_step are refused.
//   - File: one JSON object {"format": "lookahead-expert-stream", "version": 1, "n_layer",
//     "n_expert", "slab_bytes": [[bytes of (layer, expert)] per layer], "plan_horizon", "source":
//     {free-form: how it was made}, "steps": [{"accesses": [[layer, expert], ...], "plan": [...]}]},
//     written atomically. read_access_stream() checks everything it reads (format, version, sizes,
//     every key inside n_layer x n_expert) and throws lookahead::Error naming the file and the field.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/model/experts.h"
#include "moe/model/readme_model.h"
#include "moe/serving/expert_cache.h"

namespace lookahead::moe::serving {

struct StreamStep {
  std::vector<SlabKey> accesses;  // read by the forward pass, in order
  std::vector<SlabKey> plan;      // told to the store before the step: this batch's slabs + predicted batches
};

struct AccessStream {
  int32_t n_layer = 0, n_expert = 0;
  std::vector<uint64_t> slab_bytes;  // [layer * n_expert + expert]
  int plan_horizon = 0;              // predicted batches after the current one in each plan
  std::string source_json = "{}";    // how the stream was made (a JSON object)
  std::vector<StreamStep> steps;

  uint64_t bytes(const SlabKey& k) const {
    return slab_bytes[static_cast<size_t>(k.layer) * static_cast<size_t>(n_expert) + static_cast<size_t>(k.expert)];
  }
  uint64_t accesses() const;
  // Every access of every step, in order, with its slab's size.
  std::vector<SlabAccess> flat() const;
};

class StreamRecorder : public ExpertWeights {
 public:
  StreamRecorder(const ExpertWeights& inner, const ReadMeModel& model, int plan_horizon);
  int32_t n_expert() const override { return inner_.n_expert(); }
  const ExpertFfn& expert(int layer, int32_t e) const override;
  void begin_step(std::vector<SlabKey> plan);
  const AccessStream& stream() const { return stream_; }
  AccessStream& stream() { return stream_; }

 private:
  const ExpertWeights& inner_;
  mutable AccessStream stream_;
};

void write_access_stream(const std::string& path, const AccessStream& stream);
AccessStream read_access_stream(const std::string& path);

}  // namespace lookahead::moe::serving
