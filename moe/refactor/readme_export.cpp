#include "moe/refactor/readme_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/staging_dir.h"
#include "moe/checkpoint/convert.h"
#include "moe/format/gguf.h"
#include "moe/format/gguf_writer.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// Row r of a tensor (GGML order: shape[0] = row length), widened to f32.
void row_f32(const TensorView& t, int64_t r, float* out) {
  const int64_t cols = t.shape.at(0);
  dequantize_row(t.type, t.data + r * row_bytes(t.type, cols), out, cols);
}

std::vector<int64_t> hf_shape(const TensorView& t) { return {t.shape.rbegin(), t.shape.rend()}; }

// quantize_row, refusing a non-finite value: a NaN or Inf written into a model file would only
// show up later as garbage text, so the export stops and names the tensor.
void export_row(TensorType to, const float* row, uint8_t* dst, int64_t n, const std::string& tensor) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(row[i])) fail("Read-ME export: tensor '{}' holds a non-finite value ({})", tensor, row[i]);
  quantize_row(to, row, dst, n);
}

json dense_config(const LlamaHparams& hp, const Tokenizer* tok, TensorType dtype) {
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = hp.n_embd;
  j["intermediate_size"] = hp.n_ff;
  j["num_hidden_layers"] = hp.n_layer;
  j["num_attention_heads"] = hp.n_head;
  j["num_key_value_heads"] = hp.n_head_kv;
  j["head_dim"] = hp.head_dim;
  j["vocab_size"] = hp.n_vocab;
  j["max_position_embeddings"] = hp.n_ctx_train > 0 ? hp.n_ctx_train : 2048;
  j["rms_norm_eps"] = hp.rms_eps;
  j["rope_theta"] = hp.rope_theta;
  j["tie_word_embeddings"] = hp.tied_embeddings;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["torch_dtype"] = dtype == TensorType::F32 ? "float32" : dtype == TensorType::BF16 ? "bfloat16" : "float16";
  if (tok && tok->bos() >= 0) j["bos_token_id"] = tok->bos();
  if (tok && tok->eos() >= 0) j["eos_token_id"] = tok->eos();
  return j;
}

}  // namespace

void add_hf_tensor(SafetensorsWriter& w, const ModelSource& dense, const std::string& gguf_name, TensorType dtype) {
  const LlamaHparams& hp = dense.hparams();
  const bool gguf_layout = !hp.rope_neox;
  const TensorView& t = dense.tensor(gguf_name);
  const std::string hf = hf_name_of_gguf(gguf_name);
  LOOKAHEAD_CHECK(!hf.empty());
  const bool is_vector = t.shape.size() == 1;
  const TensorType to = is_vector ? TensorType::F32 : dtype;
  std::vector<int64_t> rows_from;  // hf row r comes from GGUF row rows_from[r]
  if (gguf_layout && (gguf_name.ends_with(".attn_q.weight") || gguf_name.ends_with(".attn_k.weight"))) {
    const int64_t heads = gguf_name.ends_with(".attn_q.weight") ? hp.n_head : hp.n_head_kv;
    const std::vector<int64_t> src = hf_to_gguf_rope_rows(t.rows(), heads);  // gguf row g <- hf row src[g]
    rows_from.assign(src.size(), 0);
    for (size_t g = 0; g < src.size(); ++g) rows_from[static_cast<size_t>(src[g])] = static_cast<int64_t>(g);
  }
  const TensorView* tp = &t;
  w.add_tensor(hf, to, hf_shape(t), [tp, to, rows_from, hf](uint8_t* dst) {
    const int64_t cols = tp->shape.at(0), rows = tp->rows();
    std::vector<float> row(static_cast<size_t>(cols));
    const int64_t stride = row_bytes(to, cols);
    for (int64_t r = 0; r < rows; ++r) {
      row_f32(*tp, rows_from.empty() ? r : rows_from[static_cast<size_t>(r)], row.data());
      export_row(to, row.data(), dst + r * stride, cols, hf);
    }
  });
}

void write_readme_tokenizer(const ModelSource& dense, const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  if (fs::is_directory(dense.path(), ec)) {
    bool any = false;
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.gguf", "tokenizer_config.json",
                             "special_tokens_map.json", "generation_config.json"}) {
      const fs::path from = fs::path(dense.path()) / name;
      if (!fs::exists(from, ec)) continue;
      fs::copy_file(from, dir / name, ec);
      if (ec) fail("{}: cannot copy to {}: {}", from.string(), (dir / name).string(), ec.message());
      any = any || std::string(name) == "tokenizer.json" || std::string(name) == "tokenizer.model" ||
            std::string(name) == "tokenizer.gguf";
    }
    if (!any) fail("{}: missing tokenizer (tokenizer.json, tokenizer.model or tokenizer.gguf)", dense.path());
    return;
  }
  // GGUF source: keep its tokenizer.* keys in a tensor-less GGUF file.
  GgufFile src(dense.path());
  GgufWriter w;
  w.set("general.architecture", gguf_string("llama"));
  int n = 0;
  for (const auto& [key, value] : src.metadata())
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value), ++n;
  if (n == 0) fail("{}: no tokenizer.* keys to export", dense.path());
  w.write((dir / "tokenizer.gguf").string());
}

std::string dense_config_json(const LlamaHparams& hp, const Tokenizer* tok, TensorType dtype) {
  return dense_config(hp, tok, dtype).dump(2) + "\n";
}

std::string readme_config_json(const LlamaHparams& hp, const Tokenizer* tok, TensorType dtype,
                               const ReadMeConfig& config) {
  json config_json = dense_config(hp, tok, dtype);
  nlohmann::json readme;
  config.to_config(readme);
  for (auto& [k, v] : readme.items()) config_json[k] = v;
  return config_json.dump(2) + "\n";
}

void check_whole_block_rows(const LlamaHparams& hp, TensorType dtype, const std::string& what) {
  const int64_t block = traits(dtype).block_size;
  const int64_t attention = int64_t{hp.n_head} * hp.head_dim;
  if (hp.n_embd % block != 0 || hp.n_ff % block != 0 || attention % block != 0)
    fail("{}: --dtype {} needs rows of whole {}-value blocks; this model's are {} (hidden), {} (FFN) and {} (attention)",
         what, tensor_type_name(dtype), block, hp.n_embd, hp.n_ff, attention);
}

void write_readme_model(const ModelSource& dense, const ExpertSets& sets, const ReadMeConfig& config,
                        const TensorLookup& router, const std::string& out, const ReadMeExportOptions& options) {
  const LlamaHparams& hp = dense.hparams();
  const TensorType dtype = options.dtype;
  if (!is_weight_type(dtype)) fail("Read-ME export: dtype {} is not a weight type", tensor_type_name(dtype));
  const int64_t block = traits(dtype).block_size;  // GGML block types: rows must be whole blocks
  if (sets.n_layer != hp.n_layer || sets.n_ff != hp.n_ff)
    fail("Read-ME export: expert sets are for {} layers x {} neurons, the model has {} x {}", sets.n_layer, sets.n_ff,
         hp.n_layer, hp.n_ff);
  const int32_t N = static_cast<int32_t>(sets.experts.size());
  if (N != config.router.n_expert)
    fail("Read-ME export: {} expert sets but the router has {} outputs", N, config.router.n_expert);
  check_whole_block_rows(hp, dtype, "Read-ME export");
  for (int32_t l = 0; l < sets.n_layer; ++l)
    for (int32_t e = 0; e < N; ++e)
      if (const auto s = static_cast<int64_t>(sets.neurons.at(static_cast<size_t>(l)).at(static_cast<size_t>(e)).size());
          s % block != 0)
        fail("Read-ME export: expert '{}' has {} neurons in layer {}; --dtype {} needs a multiple of {} (its down_proj "
             "rows are the expert's neurons; extract_experts(..., block) rounds them)",
             sets.experts[static_cast<size_t>(e)], s, l, tensor_type_name(dtype), block);
  StagingDir tmp(out);

  // config.json: the dense config plus the Read-ME keys.
  const Tokenizer* tok = nullptr;
  try {
    tok = &dense.tokenizer();
  } catch (const Error&) {
    tok = nullptr;  // write_tokenizer below names what is missing
  }
  write_file_atomic(tmp.file("config.json"), readme_config_json(hp, tok, dtype, config));
  write_readme_tokenizer(dense, tmp.path().string());

  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.set_metadata("readme.experts", [&] {
    std::string s;
    for (const auto& e : sets.experts) s += (s.empty() ? "" : ",") + e;
    return s;
  }());
  w.set_metadata("readme.reconstruction", options.reconstruction);
  for (const auto& [key, value] : options.metadata) w.set_metadata(key, value);
  auto add_dense = [&](const std::string& gguf_name) { add_hf_tensor(w, dense, gguf_name, dtype); };

  add_dense("token_embd.weight");
  for (int l = 0; l < hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                          "ffn_norm.weight"})
      add_dense(b + n);
    if (options.dense_ffn)
      for (const char* n : {"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}) add_dense(b + n);
    // Experts: gate/up are row subsets, down a column subset of the dense matrices (unless given).
    const TensorView* gate = options.gate ? nullptr : &dense.tensor(b + "ffn_gate.weight");
    const TensorView* up = options.up ? nullptr : &dense.tensor(b + "ffn_up.weight");
    const TensorView* down = options.down ? nullptr : &dense.tensor(b + "ffn_down.weight");
    const int64_t d = hp.n_embd;
    for (int32_t e = 0; e < N; ++e) {
      const std::vector<int32_t>* ids = &sets.neurons.at(static_cast<size_t>(l)).at(static_cast<size_t>(e));
      const auto s = static_cast<int64_t>(ids->size());
      if (s == 0) fail("Read-ME export: expert '{}' has no neurons in layer {}", sets.experts[static_cast<size_t>(e)], l);
      for (const char* part : {"gate", "up"}) {
        const bool is_gate = std::string(part) == "gate";
        const TensorView* m = is_gate ? gate : up;
        const ExpertRowProjs* given = is_gate ? options.gate : options.up;
        const std::vector<float>* rows = nullptr;
        if (given) {
          rows = &given->at(static_cast<size_t>(l)).at(static_cast<size_t>(e));
          if (static_cast<int64_t>(rows->size()) != s * d)
            fail("Read-ME export: {}_proj of layer {} expert '{}' has {} values, expected {} x {}", part, l,
                 sets.experts[static_cast<size_t>(e)], rows->size(), s, d);
        }
        const std::string name = expert_tensor_name(l, part, e);
        w.add_tensor(name, dtype, {s, d}, [m, rows, ids, dtype, d, name](uint8_t* dst) {
          std::vector<float> row(static_cast<size_t>(d));
          const int64_t stride = row_bytes(dtype, d);
          for (size_t i = 0; i < ids->size(); ++i) {
            if (rows)
              std::copy_n(rows->data() + static_cast<int64_t>(i) * d, d, row.data());
            else
              row_f32(*m, (*ids)[i], row.data());
            export_row(dtype, row.data(), dst + static_cast<int64_t>(i) * stride, d, name);
          }
        });
      }
      // down_proj: the refit matrix when reconstruction ran, else the dense columns S_e.
      const std::vector<float>* refit = nullptr;
      if (options.down) {
        refit = &options.down->at(static_cast<size_t>(l)).at(static_cast<size_t>(e));
        if (static_cast<int64_t>(refit->size()) != d * s)
          fail("Read-ME export: refit down_proj of layer {} expert '{}' has {} values, expected {} x {}", l,
               sets.experts[static_cast<size_t>(e)], refit->size(), d, s);
      }
      const std::string down_name = expert_tensor_name(l, "down", e);
      w.add_tensor(down_name, dtype, {d, s}, [down, ids, dtype, d, s, refit, down_name](uint8_t* dst) {
        const int64_t ff = refit ? 0 : down->shape.at(0), rows = d;  // down_proj is [d][n_ff]
        std::vector<float> row(static_cast<size_t>(ff)), picked(static_cast<size_t>(s));
        const int64_t stride = row_bytes(dtype, s);
        for (int64_t r = 0; r < rows; ++r) {
          if (refit) {
            std::copy_n(refit->data() + r * s, s, picked.data());
          } else {
            row_f32(*down, r, row.data());
            for (int64_t i = 0; i < s; ++i) picked[static_cast<size_t>(i)] = row[static_cast<size_t>((*ids)[static_cast<size_t>(i)])];
          }
          export_row(dtype, picked.data(), dst + r * stride, s, down_name);
        }
      });
      w.add_tensor(expert_neurons_name(l, e), TensorType::I32, {s}, ids->data());
    }
  }
  add_dense("output_norm.weight");
  if (!hp.tied_embeddings) add_dense("output.weight");

  // Router, F32.
  const RouterConfig& rc = config.router;
  const int64_t dr = rc.d_model, mid = rc.swiglu ? 2 * int64_t{rc.d_inter} : rc.d_inter;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> router_tensors = {
      {"embed.weight", {rc.n_vocab, dr}},
      {"input_layernorm_0.weight", {dr}},
      {"q_proj_0.weight", {dr, dr}}, {"q_proj_0.bias", {dr}},
      {"k_proj_0.weight", {dr, dr}}, {"k_proj_0.bias", {dr}},
      {"v_proj_0.weight", {dr, dr}}, {"v_proj_0.bias", {dr}},
      {"o_proj_0.weight", {dr, dr}}, {"o_proj_0.bias", {dr}},
      {"post_attention_layernorm_0.weight", {dr}},
      {"proj_1_0.weight", {mid, dr}}, {"proj_1_0.bias", {mid}},
      {"proj_2_0.weight", {dr, rc.d_inter}}, {"proj_2_0.bias", {dr}},
      {"out_layernorm.weight", {dr}},
      {"proj_out.weight", {rc.n_expert, dr}}, {"proj_out.bias", {rc.n_expert}},
  };
  for (const auto& [short_name, shape] : router_tensors) {
    const std::string name = "cluster_predictor." + short_name;
    const TensorView* t = router(name);
    if (!t) fail("Read-ME export: the trained router lacks '{}'", name);
    if (hf_shape(*t) != shape) fail("Read-ME export: router tensor '{}' has the wrong shape", name);
    w.add_tensor(name, TensorType::F32, shape, [t, name](uint8_t* dst) {
      const int64_t cols = t->shape.at(0);
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = 0; r < t->rows(); ++r) {
        row_f32(*t, r, row.data());
        export_row(TensorType::F32, row.data(), dst + r * cols * static_cast<int64_t>(sizeof(float)), cols, name);
      }
    });
  }

  w.write(tmp.file("model.safetensors"), options.progress ? "writing Read-ME model" : "");
  tmp.commit();
}

int64_t convert_readme_model(const std::string& in, const std::string& out, TensorType dtype, bool progress) {
  if (!is_weight_type(dtype)) fail("Read-ME convert: dtype {} is not a weight type", tensor_type_name(dtype));
  const ReadMeModel m(in);
  const HfCheckpoint& src = m.source();
  const LlamaHparams& hp = src.hparams();
  const int32_t N = m.n_expert();
  const int64_t d = hp.n_embd, block = traits(dtype).block_size;
  check_whole_block_rows(hp, dtype, "Read-ME convert");

  ExpertSets sets;
  sets.n_layer = static_cast<int32_t>(hp.n_layer);
  sets.n_ff = static_cast<int32_t>(hp.n_ff);
  sets.keep = m.config().keep;
  sets.experts = m.config().experts;
  ExpertRowProjs gate(static_cast<size_t>(hp.n_layer)), up(static_cast<size_t>(hp.n_layer));
  ExpertDownProjs down(static_cast<size_t>(hp.n_layer));
  int64_t padding = 0;
  for (int l = 0; l < hp.n_layer; ++l) {
    sets.neurons.emplace_back();
    for (int32_t e = 0; e < N; ++e) {
      const std::vector<int32_t>& ids = m.neurons(l, e);
      const auto s = static_cast<int64_t>(ids.size());
      const int64_t padded = (s + block - 1) / block * block;
      if (padded > hp.n_ff)
        fail("Read-ME convert: expert '{}' of layer {} has {} neurons; whole {}-neuron blocks would exceed the FFN's {}",
             sets.experts[static_cast<size_t>(e)], l, s, block, hp.n_ff);
      // The padded, sorted id list; slot[i] = the stored row of new neuron i (-1: a zero neuron).
      std::vector<int32_t> all = ids;
      for (int32_t j = 0; static_cast<int64_t>(all.size()) < padded; ++j)
        if (!std::binary_search(ids.begin(), ids.end(), j)) all.push_back(j);
      std::vector<int64_t> order(all.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return all[static_cast<size_t>(a)] < all[static_cast<size_t>(b)]; });
      std::vector<int32_t> sorted_ids;
      for (int64_t i : order) sorted_ids.push_back(all[static_cast<size_t>(i)]);
      padding += padded - s;

      auto tensor = [&](const char* part) -> const TensorView& {
        const std::string name = expert_tensor_name(l, part, e);
        const TensorView* t = src.raw_tensor(name);
        if (!t) fail("{}: missing tensor '{}'", in, name);
        return *t;
      };
      std::vector<float> row(static_cast<size_t>(std::max<int64_t>(d, s)));
      for (const char* part : {"gate", "up"}) {
        const TensorView& t = tensor(part);
        std::vector<float> rows(static_cast<size_t>(padded * d), 0.0f);
        for (int64_t i = 0; i < padded; ++i) {
          const int64_t from = order[static_cast<size_t>(i)];
          if (from >= s) continue;  // a padding neuron: zero row
          row_f32(t, from, rows.data() + i * d);
        }
        (std::string(part) == "gate" ? gate : up)[static_cast<size_t>(l)].push_back(std::move(rows));
      }
      const TensorView& t = tensor("down");
      std::vector<float> cols(static_cast<size_t>(d * padded), 0.0f);
      for (int64_t r = 0; r < d; ++r) {
        row_f32(t, r, row.data());
        for (int64_t i = 0; i < padded; ++i) {
          const int64_t from = order[static_cast<size_t>(i)];
          if (from < s) cols[static_cast<size_t>(r * padded + i)] = row[static_cast<size_t>(from)];
        }
      }
      down[static_cast<size_t>(l)].push_back(std::move(cols));
      sets.neurons.back().push_back(std::move(sorted_ids));
    }
  }
  update_permanent(sets);

  ReadMeExportOptions options;
  options.dtype = dtype;
  options.progress = progress;
  options.dense_ffn = src.raw_tensor("model.layers.0.mlp.gate_proj.weight") != nullptr;
  options.gate = &gate;
  options.up = &up;
  options.down = &down;
  const fs::path file = fs::path(in) / "model.safetensors";
  std::error_code ec;
  if (fs::exists(file, ec)) {
    SafetensorsFile st(file.string());
    for (const auto& [key, value] : st.metadata()) {
      if (key == "readme.reconstruction") options.reconstruction = value;
      else if (key.rfind("readme.", 0) == 0 && key != "readme.experts") options.metadata.emplace_back(key, value);
    }
  }
  options.metadata.emplace_back("readme.converted_from", fs::path(in).filename().string() + " (" +
                                                             std::to_string(padding) + " zero padding neurons)");
  ReadMeConfig config = m.config();
  config.dtype = std::string(tensor_type_name(dtype));
  write_readme_model(src, sets, config, [&](const std::string& n) { return src.raw_tensor(n); }, out, options);
  return padding;
}

}  // namespace lookahead::moe
