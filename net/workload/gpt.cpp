#include "net/workload/gpt.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"

namespace lookahead::net {

int64_t GptModel::block_params() const {
  const int64_t attention = 4 * d_model * d_model;  // q, k, v, o
  const int64_t mlp = (gated_mlp ? 3 : 2) * d_model * ffn;
  return attention + mlp;
}

int64_t GptModel::params() const {
  return layers * block_params() + (tied_embeddings ? 1 : 2) * vocab * d_model;
}

namespace {

const std::vector<GptModel>& presets() {
  static const std::vector<GptModel> models = {
      {"gpt-117m", 12, 768, 3072, 50257, false, true},
      {"llama-7b", 32, 4096, 11008, 32000, true, false},
      {"llama-13b", 40, 5120, 13824, 32000, true, false},
  };
  return models;
}

// One gradient tensor group in backward order: its name and parameter count.
struct Grad {
  std::string name;
  int64_t params = 0;
};

}  // namespace

std::vector<std::string> gpt_model_names() {
  std::vector<std::string> names;
  for (const auto& m : presets()) names.push_back(m.name);
  return names;
}

GptModel gpt_model(std::string_view name) {
  for (const auto& m : presets())
    if (m.name == name) return m;
  fail("GPT model: unknown '{}' (expected {})", name, fmt::join(gpt_model_names(), ", "));
}

GptIteration gpt_iteration(const GptIterationSpec& spec) {
  const GptModel& m = spec.model;
  if (m.layers < 1 || m.d_model < 1 || m.ffn < 1 || m.vocab < 1) fail("GPT iteration: model '{}' has an empty shape", m.name);
  if (spec.layers < 0 || spec.layers > m.layers)
    fail("GPT iteration: layers must be 0 (all) or 1..{} for {} (got {})", m.layers, m.name, spec.layers);
  if (spec.ranks < 2) fail("GPT iteration: data-parallel ranks must be >= 2 (got {})", spec.ranks);
  if (spec.first_host < 0) fail("GPT iteration: first host must be >= 0 (got {})", spec.first_host);
  if (spec.tokens_per_rank < 1) fail("GPT iteration: tokens per rank must be >= 1 (got {})", spec.tokens_per_rank);
  if (!(spec.tflops > 0)) fail("GPT iteration: TFLOP/s per rank must be > 0 (got {})", spec.tflops);
  if (!(spec.mfu > 0) || spec.mfu > 1) fail("GPT iteration: MFU must be in (0, 1] (got {})", spec.mfu);
  if (spec.bucket_bytes == 0) fail("GPT iteration: bucket size must be > 0 bytes");
  if (spec.grad_bytes != 2 && spec.grad_bytes != 4) fail("GPT iteration: gradient bytes must be 2 or 4 (got {})", spec.grad_bytes);

  const int layers = spec.layers > 0 ? spec.layers : m.layers;
  // Backward order: the output head (untied), the blocks from the last down, the token embedding
  // (tied: it also holds the head's gradient, complete only once the input side is done).
  std::vector<Grad> grads;
  if (!m.tied_embeddings) grads.push_back({"head", m.vocab * m.d_model});
  for (int l = layers - 1; l >= 0; --l) grads.push_back({fmt::format("block{}", l), m.block_params()});
  grads.push_back({"embedding", m.vocab * m.d_model});

  GptIteration it;
  for (const Grad& g : grads) it.params += g.params;
  const double flops_per_us = spec.tflops * 1e12 * spec.mfu / 1e6;
  const auto tokens = static_cast<double>(spec.tokens_per_rank);
  it.forward_us = 2.0 * static_cast<double>(it.params) * tokens / flops_per_us;
  it.backward_us = 2.0 * it.forward_us;

  // Fill buckets in backward order; a tensor group is never split.
  double t = it.forward_us;
  GptBucket open;
  for (const Grad& g : grads) {
    t += 4.0 * static_cast<double>(g.params) * tokens / flops_per_us;  // its share of the backward pass
    if (open.bytes == 0) open.first = g.name;
    open.bytes += static_cast<uint64_t>(g.params) * static_cast<uint64_t>(spec.grad_bytes);
    open.last = g.name;
    open.ready_us = t;
    if (open.bytes >= spec.bucket_bytes) {
      it.buckets.push_back(open);
      open = {};
    }
  }
  if (open.bytes > 0) it.buckets.push_back(open);

  std::vector<int> hosts(static_cast<size_t>(spec.ranks));
  for (int r = 0; r < spec.ranks; ++r) hosts[static_cast<size_t>(r)] = spec.first_host + r;
  for (size_t k = 0; k < it.buckets.size(); ++k) {
    Job job;
    job.name = fmt::format("bucket{}", k);
    job.collective.kind = collective::Kind::ALL_REDUCE;
    job.collective.algorithm = spec.algorithm;
    job.collective.ranks = spec.ranks;
    job.collective.message_bytes = it.buckets[k].bytes;
    job.hosts = hosts;
    job.start_ps = static_cast<uint64_t>(it.buckets[k].ready_us * 1e6);
    job.jitter_ps = spec.jitter_ps;
    if (k > 0) job.after = {static_cast<int>(k) - 1};  // NCCL: one stream, in launch order
    it.jobs.push_back(std::move(job));
  }
  return it;
}

}  // namespace lookahead::net
