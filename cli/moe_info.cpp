// `lookahead moe info --model PATH`: what a model file holds (metadata, tensors, types, sizes).
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <variant>

#include "cli/command.h"
#include "common/error.h"
#include "moe/format/gguf.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/model/loaded_model.h"
#include "moe/model/readme_model.h"

namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
  bool tensors = false;
};

std::string value_summary(const lookahead::moe::GgufValue& v) {
  using namespace lookahead::moe;
  if (auto* s = std::get_if<std::string>(&v.value)) return s->size() > 60 ? fmt::format("\"{}...\"", s->substr(0, 57)) : fmt::format("\"{}\"", *s);
  if (auto* u = std::get_if<uint64_t>(&v.value)) return std::to_string(*u);
  if (auto* i = std::get_if<int64_t>(&v.value)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v.value)) return fmt::format("{}", *d);
  if (auto* b = std::get_if<bool>(&v.value)) return *b ? "true" : "false";
  auto& a = std::get<std::shared_ptr<GgufArray>>(v.value);
  return fmt::format("[array of {}]", a->values.size());
}

// A metadata value as JSON: strings, numbers and booleans as themselves (never re-quoted or
// shortened: a chat template comes out whole); arrays of up to kJsonArrayMax values in full,
// longer ones (the vocabulary) as {"array_length": N}.
constexpr size_t kJsonArrayMax = 256;
nlohmann::json value_json(const lookahead::moe::GgufValue& v) {
  using namespace lookahead::moe;
  if (auto* s = std::get_if<std::string>(&v.value)) return *s;
  if (auto* u = std::get_if<uint64_t>(&v.value)) return *u;
  if (auto* i = std::get_if<int64_t>(&v.value)) return *i;
  if (auto* d = std::get_if<double>(&v.value)) return *d;
  if (auto* b = std::get_if<bool>(&v.value)) return *b;
  auto& a = std::get<std::shared_ptr<GgufArray>>(v.value);
  if (a->values.size() > kJsonArrayMax) return {{"array_length", a->values.size()}};
  nlohmann::json out = nlohmann::json::array();
  for (const GgufValue& e : a->values) out.push_back(value_json(e));
  return out;
}

// A Hugging Face checkpoint directory: its config's shape and its tensors.
void run_hf_info(const InfoOptions& o) {
  using namespace lookahead::moe;
  HfCheckpoint ckpt(o.model);
  const LlamaHparams& hp = ckpt.hparams();
  std::map<std::string, uint64_t> bytes_by_type;
  uint64_t params = 0;
  for (const auto& t : ckpt.tensors()) {
    bytes_by_type[std::string(tensor_type_name(t.type))] += t.bytes;
    params += static_cast<uint64_t>(t.elements());
  }
  const nlohmann::json shape = {{"layers", hp.n_layer},       {"hidden_size", hp.n_embd},  {"intermediate_size", hp.n_ff},
                                {"heads", hp.n_head},         {"kv_heads", hp.n_head_kv}, {"head_dim", hp.head_dim},
                                {"vocab_size", hp.n_vocab},   {"context_length", hp.n_ctx_train},
                                {"rope_theta", hp.rope_theta}, {"rms_norm_eps", hp.rms_eps},
                                {"tied_embeddings", hp.tied_embeddings}};
  if (o.json) {
    nlohmann::json j;
    j["path"] = o.model;
    j["format"] = "huggingface";
    j["architecture"] = ckpt.architecture();
    j["tensor_count"] = ckpt.tensors().size();
    j["parameters"] = params;
    j["bytes_by_type"] = bytes_by_type;
    j["config"] = shape;
    if (o.tensors)
      for (const auto& t : ckpt.tensors())
        j["tensors"].push_back({{"name", t.name}, {"hf_name", ckpt.hf_name(t.name)}, {"type", tensor_type_name(t.type)},
                                {"shape", t.shape}, {"bytes", t.bytes}});
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{}: Hugging Face checkpoint ({}), {} tensors, {:.1f}M parameters\n", o.model, ckpt.architecture(),
             ckpt.tensors().size(), params / 1e6);
  for (const auto& [type, bytes] : bytes_by_type) fmt::print("  {:5} {:8.1f} MiB\n", type, bytes / 1048576.0);
  for (const auto& [k, v] : shape.items()) fmt::print("  {} = {}\n", k, v.dump());
  if (o.tensors)
    for (const auto& t : ckpt.tensors())
      fmt::print("  tensor {:40} {:5} [{}]  ({})\n", t.name, tensor_type_name(t.type), fmt::join(t.shape, ", "),
                 ckpt.hf_name(t.name));
}

// A Read-ME model directory: backbone shape, experts and their sizes, the router.
void run_readme_info(const InfoOptions& o) {
  using namespace lookahead::moe;
  ReadMeModel m(o.model);
  const LlamaHparams& hp = m.source().hparams();
  const ReadMeConfig& c = m.config();
  const RouterConfig& r = c.router;
  const uint64_t router_params = static_cast<uint64_t>(r.n_vocab) * r.d_model + 4ull * r.d_model * (r.d_model + 1) +
                                 static_cast<uint64_t>(r.proj_1_rows()) * (r.d_model + 1) +
                                 static_cast<uint64_t>(r.d_model) * (r.d_inter + 1) + 3ull * r.d_model +
                                 static_cast<uint64_t>(r.n_expert) * (r.d_model + 1);
  uint64_t slab_max = 0, slab_sum = 0;
  for (int l = 0; l < hp.n_layer; ++l)
    for (int32_t e = 0; e < m.n_expert(); ++e) {
      const uint64_t b = m.slab(l, e).bytes;
      slab_max = std::max(slab_max, b), slab_sum += b;
    }
  if (o.json) {
    nlohmann::json j;
    j["path"] = o.model;
    j["layers"] = hp.n_layer, j["hidden_size"] = hp.n_embd, j["intermediate_size"] = hp.n_ff;
    nlohmann::json fr = nlohmann::json::object();
    for (int32_t e = 0; e < m.n_expert(); ++e) fr[c.experts[static_cast<size_t>(e)]] = m.ffn_fraction(e);
    j["readme"] = {{"experts", c.experts}, {"keep", c.keep}, {"dtype", c.dtype}, {"source_model", c.source_model},
                   {"expert_ffn_fraction", fr}, {"dense_ffn", m.backbone().has_dense_ffn()},
                   {"router", {{"heads", r.n_head}, {"width", r.d_model}, {"inter", r.d_inter}, {"mlp", r.hidden_act()},
                               {"normalizer", r.normalizer}, {"max_positions", r.max_positions}, {"parameters", router_params}}},
                   {"slab_bytes_max", slab_max}, {"slab_bytes_total", slab_sum}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{}: Read-ME model, {} layers, d {}, FFN {}, {} experts (keep {}, {}), dense FFN {}\n", o.model, hp.n_layer,
             hp.n_embd, hp.n_ff, m.n_expert(), c.keep, c.dtype, m.backbone().has_dense_ffn() ? "included" : "absent");
  for (int32_t e = 0; e < m.n_expert(); ++e)
    fmt::print("  expert {} {:12} {:5.1f}% of FFN neurons (mean over layers)\n", e, c.experts[static_cast<size_t>(e)],
               100 * m.ffn_fraction(e));
  fmt::print("  router: 1 layer, {} heads, width {}, MLP {} ({}), normalizer {}, {:.2f}M parameters\n", r.n_head, r.d_model,
             r.d_inter, r.hidden_act(), r.normalizer, router_params / 1e6);
  fmt::print("  expert slabs: {:.2f} MiB largest, {:.1f} MiB in all\n", slab_max / 1048576.0, slab_sum / 1048576.0);
}

void run_info(const InfoOptions& o) {
  if (lookahead::moe::is_readme_dir(o.model)) return run_readme_info(o);
  if (std::filesystem::is_directory(o.model)) {
    if (!std::filesystem::exists(std::filesystem::path(o.model) / "config.json"))
      lookahead::fail("--model {}: a directory without config.json (expected a .gguf file, a Hugging Face checkpoint "
                      "or a Read-ME model directory)", o.model);
    return run_hf_info(o);
  }
  lookahead::moe::GgufFile file(o.model);
  std::map<std::string, uint64_t> bytes_by_type;
  uint64_t params = 0;
  for (const auto& t : file.tensors()) {
    bytes_by_type[std::string(lookahead::moe::tensor_type_name(t.type))] += t.bytes;
    params += static_cast<uint64_t>(t.elements());
  }
  if (o.json) {
    nlohmann::json j;
    j["path"] = file.path();
    j["gguf_version"] = file.version();
    j["tensor_count"] = file.tensors().size();
    j["parameters"] = params;
    j["bytes_by_type"] = bytes_by_type;
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& [k, v] : file.metadata()) meta[k] = value_json(v);
    j["metadata"] = meta;
    if (o.tensors) {
      for (const auto& t : file.tensors())
        j["tensors"].push_back({{"name", t.name}, {"type", lookahead::moe::tensor_type_name(t.type)}, {"shape", t.shape}, {"bytes", t.bytes}});
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{}: GGUF v{}, {} tensors, {:.1f}M parameters\n", file.path(), file.version(), file.tensors().size(), params / 1e6);
  for (const auto& [type, bytes] : bytes_by_type) fmt::print("  {:5} {:8.1f} MiB\n", type, bytes / 1048576.0);
  for (const auto& [k, v] : file.metadata()) fmt::print("  {} = {}\n", k, value_summary(v));
  if (o.tensors)
    for (const auto& t : file.tensors())
      fmt::print("  tensor {:40} {:5} [{}]\n", t.name, lookahead::moe::tensor_type_name(t.type), fmt::join(t.shape, ", "));
}

const bool registered = lookahead::cli::register_command(
    {"moe", "info", "Show a model file's metadata and tensors", [](CLI::App& cmd) {
       auto o = std::make_shared<InfoOptions>();
       cmd.add_option("--model", o->model, "GGUF file, Hugging Face checkpoint directory or Read-ME model directory")
           ->required();
       cmd.add_flag("--tensors", o->tensors, "list every tensor");
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_info(*o); });
     }});

}  // namespace
