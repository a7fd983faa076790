#include "moe/serving/synth_model.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/staging_dir.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"
#include "moe/model/readme_model.h"
#include "moe/refactor/readme_export.h"

namespace lookahead::moe::serving {

namespace fs = std::filesystem;

namespace {

struct NamedShape {
  const char* name;
  LlamaHparams hp;
};

LlamaHparams make_hp(int32_t vocab, int32_t d, int32_t layers, int32_t heads, int32_t kv, int32_t ff, int32_t ctx,
                     float theta, float eps, bool tied) {
  LlamaHparams hp;
  hp.n_vocab = vocab;
  hp.n_embd = d;
  hp.n_layer = layers;
  hp.n_head = heads;
  hp.n_head_kv = kv;
  hp.head_dim = d / heads;
  hp.n_ff = ff;
  hp.n_ctx_train = ctx;
  hp.rope_theta = theta;
  hp.rms_eps = eps;
  hp.rope_neox = true;  // Hugging Face layout
  hp.tied_embeddings = tied;
  return hp;
}

// Published configs (Hugging Face config.json of each model).
const std::vector<NamedShape>& shapes() {
  static const std::vector<NamedShape> all = {
      {"llama2-7b", make_hp(32000, 4096, 32, 32, 32, 11008, 4096, 10000.0f, 1e-5f, false)},
      {"llama3-8b", make_hp(128256, 4096, 32, 32, 8, 14336, 8192, 500000.0f, 1e-5f, false)},
      {"smollm2-135m", make_hp(49152, 576, 30, 9, 3, 1536, 8192, 100000.0f, 1e-5f, true)},
      {"smollm2-360m", make_hp(49152, 960, 32, 15, 5, 2560, 8192, 100000.0f, 1e-5f, true)},
      {"tiny", make_hp(256, 64, 2, 4, 2, 128, 512, 10000.0f, 1e-5f, true)},
  };
  return all;
}

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// The random stream of (seed, tensor, row): independent of generation order and of the layer count.
uint64_t stream(uint64_t seed, const std::string& tensor, uint64_t row) {
  uint64_t s = seed ^ fnv1a(tensor);
  splitmix(s);
  s ^= row * 0xD1B54A32D192ED03ull;
  splitmix(s);
  return s;
}

// n values uniform in [-std*sqrt(3), std*sqrt(3)] (standard deviation `std`).
void fill_uniform(float* dst, int64_t n, float std, uint64_t state) {
  const float a = std * std::sqrt(3.0f);
  for (int64_t i = 0; i + 1 < n; i += 2) {
    const uint64_t x = splitmix(state);
    dst[i] = (static_cast<float>(x >> 40) * 0x1p-24f * 2.0f - 1.0f) * a;
    dst[i + 1] = (static_cast<float>((x >> 8) & 0xFFFFFF) * 0x1p-24f * 2.0f - 1.0f) * a;
  }
  if (n % 2) dst[n - 1] = (static_cast<float>(splitmix(state) >> 40) * 0x1p-24f * 2.0f - 1.0f) * a;
}

// Sorted random subset of `count` of [0, n).
std::vector<int32_t> random_subset(int32_t n, int32_t count, uint64_t state) {
  std::vector<int32_t> all(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  for (int32_t i = 0; i < count; ++i) {
    const auto j = i + static_cast<int32_t>(splitmix(state) % static_cast<uint64_t>(n - i));
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
  }
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> names;
  for (const NamedShape& s : shapes()) names.emplace_back(s.name);
  return names;
}

LlamaHparams synth_shape(const std::string& name) {
  for (const NamedShape& s : shapes())
    if (name == s.name) return s.hp;
  std::string known;
  for (const std::string& n : synth_shape_names()) known += (known.empty() ? "" : ", ") + n;
  fail("--shape: unknown shape '{}' (known: {})", name, known);
}

RouterConfig synth_router_config(const LlamaHparams& hp, int32_t experts) {
  RouterConfig rc;  // defaults: 4 heads, width 512 (the paper's), inner 1024
  rc.n_expert = experts;
  rc.n_vocab = hp.n_vocab;
  if (hp.n_embd < 512) {  // small shapes get a router no wider than the backbone
    rc.d_model = std::max(16, hp.n_embd / 2);
    rc.d_inter = 2 * rc.d_model;
    rc.n_head = 2;
  }
  rc.max_positions = std::max(hp.n_ctx_train, 512);
  return rc;
}

void check_synth_options(const SynthOptions& o) {
  const LlamaHparams hp = synth_shape(o.shape);
  if (o.experts < 1 || o.experts > 1024) fail("--experts must be in 1..1024, got {}", o.experts);
  if (o.layers < 0 || o.layers > 1024) fail("--layers must be in 0..1024 (0 = the shape's), got {}", o.layers);
  if (!(o.keep > 0.0 && o.keep <= 1.0)) fail("--keep must be in (0, 1], got {}", o.keep);
  if (!is_weight_type(o.dtype)) fail("--dtype {}: not a weight type", tensor_type_name(o.dtype));
  check_whole_block_rows(hp, o.dtype, "--shape " + o.shape);
  if (expert_neurons(o.keep, hp.n_ff, o.dtype) < 1)
    fail("--keep {}: experts of a {}-neuron FFN would be empty", o.keep, hp.n_ff);
}

int32_t expert_neurons(double keep, int32_t n_ff, TensorType dtype) {
  // A block type's expert must be whole blocks: its down_proj rows are the expert's neurons.
  const auto block = static_cast<int32_t>(traits(dtype).block_size);
  const auto n = static_cast<int32_t>(std::lround(keep * n_ff));
  return std::min(n_ff, (n + block / 2) / block * block);
}

void write_synth_model(const SynthOptions& o, const std::string& out) {
  check_synth_options(o);
  if (out.empty()) fail("--out: an output directory is required");
  LlamaHparams hp = synth_shape(o.shape);
  if (o.layers > 0) hp.n_layer = o.layers;
  const int32_t per_expert = expert_neurons(o.keep, hp.n_ff, o.dtype);
  std::error_code ec;
  if (fs::exists(out, ec) && !o.force) fail("{}: already exists; pass --force to replace it", out);

  std::unique_ptr<ModelSource> tokenizer_source;
  const Tokenizer* tok = nullptr;
  if (!o.tokenizer.empty()) {
    tokenizer_source = open_model(o.tokenizer);
    tok = &tokenizer_source->tokenizer();
    hp.n_vocab = tok->vocab_size();
  }

  ReadMeConfig config;
  config.router = synth_router_config(hp, o.experts);
  for (int32_t e = 0; e < o.experts; ++e) config.experts.push_back("expert" + std::to_string(e));
  config.keep = o.keep;
  config.source_model = "synth:" + o.shape + ":seed" + std::to_string(o.seed);
  config.dtype = std::string(tensor_type_name(o.dtype));

  StagingDir tmp(out, o.force);  // replaces an existing `out` only once the new one is complete
  write_file_atomic((tmp.path() / "config.json").string(), readme_config_json(hp, tok, o.dtype, config));
  if (tokenizer_source) write_readme_tokenizer(*tokenizer_source, tmp.path().string());

  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.set_metadata("synth", config.source_model);
  const uint64_t seed = o.seed;
  // A [rows, cols] matrix whose row r is stream (name, r): std 1/sqrt(cols) unless given.
  auto add_random = [&](const std::string& name, TensorType type, int64_t rows, int64_t cols, float std = 0.0f) {
    const float s = std > 0.0f ? std : 1.0f / std::sqrt(static_cast<float>(cols));
    w.add_tensor(name, type, {rows, cols}, [name, type, rows, cols, s, seed](uint8_t* dst) {
      std::vector<float> row(static_cast<size_t>(cols));
      const int64_t stride = row_bytes(type, cols);
      for (int64_t r = 0; r < rows; ++r) {
        fill_uniform(row.data(), cols, s, stream(seed, name, static_cast<uint64_t>(r)));
        quantize_row(type, row.data(), dst + r * stride, cols);
      }
    });
  };
  auto add_constant = [&](const std::string& name, int64_t n, float value) {
    w.add_tensor(name, TensorType::F32, {n}, [n, value](uint8_t* dst) {
      std::fill_n(reinterpret_cast<float*>(dst), n, value);
    });
  };

  const int64_t d = hp.n_embd, hd = hp.head_dim, ff = hp.n_ff;
  const TensorType dt = o.dtype;
  add_random("model.embed_tokens.weight", dt, hp.n_vocab, d);
  for (int l = 0; l < hp.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add_constant(p + "input_layernorm.weight", d, 1.0f);
    add_random(p + "self_attn.q_proj.weight", dt, hp.n_head * hd, d);
    add_random(p + "self_attn.k_proj.weight", dt, hp.n_head_kv * hd, d);
    add_random(p + "self_attn.v_proj.weight", dt, hp.n_head_kv * hd, d);
    add_random(p + "self_attn.o_proj.weight", dt, d, hp.n_head * hd);
    add_constant(p + "post_attention_layernorm.weight", d, 1.0f);
    // The layer's dense FFN is implicit: gate/up row j and down column j are streams of neuron j.
    const std::string gate = p + "mlp.gate_proj", up = p + "mlp.up_proj", down = p + "mlp.down_proj";
    for (int32_t e = 0; e < o.experts; ++e) {
      auto ids = std::make_shared<std::vector<int32_t>>(
          random_subset(hp.n_ff, per_expert, stream(seed, p + "neurons", static_cast<uint64_t>(e))));
      const int64_t s = per_expert;
      for (const std::string* dense : {&gate, &up}) {
        const std::string dense_name = *dense;
        w.add_tensor(expert_tensor_name(l, dense == &gate ? "gate" : "up", e), dt, {s, d},
                     [dense_name, ids, dt, d, seed](uint8_t* dst) {
                       std::vector<float> row(static_cast<size_t>(d));
                       const int64_t stride = row_bytes(dt, d);
                       const float std = 1.0f / std::sqrt(static_cast<float>(d));
                       for (size_t i = 0; i < ids->size(); ++i) {
                         fill_uniform(row.data(), d, std, stream(seed, dense_name, static_cast<uint64_t>((*ids)[i])));
                         quantize_row(dt, row.data(), dst + static_cast<int64_t>(i) * stride, d);
                       }
                     });
      }
      w.add_tensor(expert_tensor_name(l, "down", e), dt, {d, s}, [down, ids, dt, d, s, ff, seed](uint8_t* dst) {
        // Column i of the expert is dense column ids[i]: generate columns, then convert rows.
        std::vector<float> m(static_cast<size_t>(d * s)), col(static_cast<size_t>(d));
        const float std = 1.0f / std::sqrt(static_cast<float>(ff));
        for (int64_t i = 0; i < s; ++i) {
          fill_uniform(col.data(), d, std, stream(seed, down, static_cast<uint64_t>((*ids)[static_cast<size_t>(i)])));
          for (int64_t r = 0; r < d; ++r) m[static_cast<size_t>(r * s + i)] = col[static_cast<size_t>(r)];
        }
        const int64_t stride = row_bytes(dt, s);
        for (int64_t r = 0; r < d; ++r) quantize_row(dt, m.data() + r * s, dst + r * stride, s);
      });
      w.add_tensor(expert_neurons_name(l, e), TensorType::I32, {s}, [ids](uint8_t* dst) {
        std::copy(ids->begin(), ids->end(), reinterpret_cast<int32_t*>(dst));
      });
    }
  }
  add_constant("model.norm.weight", d, 1.0f);
  if (!hp.tied_embeddings) add_random("lm_head.weight", dt, hp.n_vocab, d);

  const RouterConfig& rc = config.router;
  const int64_t dr = rc.d_model, mid = rc.swiglu ? 2 * int64_t{rc.d_inter} : rc.d_inter;
  const std::string cp = "cluster_predictor.";
  add_random(cp + "embed.weight", TensorType::F32, rc.n_vocab, dr, 1.0f);
  add_constant(cp + "input_layernorm_0.weight", dr, 1.0f);
  for (const char* proj : {"q", "k", "v", "o"}) {
    add_random(cp + proj + "_proj_0.weight", TensorType::F32, dr, dr);
    add_constant(cp + proj + "_proj_0.bias", dr, 0.0f);
  }
  add_constant(cp + "post_attention_layernorm_0.weight", dr, 1.0f);
  add_random(cp + "proj_1_0.weight", TensorType::F32, mid, dr);
  add_constant(cp + "proj_1_0.bias", mid, 0.0f);
  add_random(cp + "proj_2_0.weight", TensorType::F32, dr, rc.d_inter);
  add_constant(cp + "proj_2_0.bias", dr, 0.0f);
  add_constant(cp + "out_layernorm.weight", dr, 1.0f);
  add_random(cp + "proj_out.weight", TensorType::F32, rc.n_expert, dr);
  add_constant(cp + "proj_out.bias", rc.n_expert, 0.0f);

  w.write((tmp.path() / "model.safetensors").string(), o.progress ? "writing synthetic Read-ME model" : "");

  tmp.commit();
}

}  // namespace lookahead::moe::serving
