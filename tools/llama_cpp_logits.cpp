// A second independent reference: llama.cpp's logits for the prompts of a transformers fixture
// (tools/reference_logits.py), written in the same fixture format so that
// tests/integration/reference_logits_test.cpp can compare our engine with both.
//
// llama.cpp computes quantized matmuls the way our engine does (activations quantized to 8-bit
// blocks, integer dot products), so on Q4_1 it is the reference for "same arithmetic", while
// transformers (float32 activations) is the reference for "same function".
//
// Not part of the CMake build (it needs llama.cpp, which is not committed): tools/llama_cpp_logits.sh
// compiles it against the static libraries of bench/llama_cpp_build.sh and runs it.
//   llama_cpp_logits MODEL.gguf IN_FIXTURE.json OUT_FIXTURE.json [threads]
// The prompts' ids are taken from IN_FIXTURE (transformers' tokenization) and fed verbatim; llama.cpp's
// own tokenization of each text is recorded as "llama_cpp_ids" for comparison. KV cache: F32 (ours).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "llama.h"

static void quiet_log(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: llama_cpp_logits MODEL.gguf IN_FIXTURE.json OUT_FIXTURE.json [threads]\n");
    return 2;
  }
  const std::string model_path = argv[1], in_path = argv[2], out_path = argv[3];
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  std::ifstream in(in_path);
  if (!in) {
    std::fprintf(stderr, "llama_cpp_logits: cannot open %s\n", in_path.c_str());
    return 1;
  }
  nlohmann::json fx = nlohmann::json::parse(in);

  llama_log_set(quiet_log, nullptr);
  llama_backend_init();
  llama_model* model = llama_model_load_from_file(model_path.c_str(), llama_model_default_params());
  if (!model) {
    std::fprintf(stderr, "llama_cpp_logits: cannot load %s\n", model_path.c_str());
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);
  const int top_k = fx.at("top_k").get<int>();

  for (auto& p : fx.at("prompts")) {
    std::vector<llama_token> ids = p.at("ids").get<std::vector<llama_token>>();
    const std::string text = p.at("text").get<std::string>();
    std::vector<llama_token> own(text.size() + 8);
    const int n_own = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), own.data(),
                                     static_cast<int32_t>(own.size()), p.at("add_special").get<bool>(), true);
    own.resize(static_cast<size_t>(std::max(n_own, 0)));
    p["llama_cpp_ids"] = own;

    const int n = static_cast<int>(ids.size());
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(std::max(n, 16));
    cp.n_batch = cp.n_ubatch = static_cast<uint32_t>(std::max(n, 16));
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    llama_context* ctx = llama_init_from_model(model, cp);
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; ++i) {
      batch.token[i] = ids[static_cast<size_t>(i)];
      batch.pos[i] = i;
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch) != 0) {
      std::fprintf(stderr, "llama_cpp_logits: llama_decode failed on %s\n", p.at("name").get<std::string>().c_str());
      return 1;
    }
    nlohmann::json argmax = nlohmann::json::array(), gaps = nlohmann::json::array(), tk_ids = nlohmann::json::array(),
                   tk_logits = nlohmann::json::array();
    std::vector<int> order(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n; ++i) {
      const float* row = llama_get_logits_ith(ctx, i);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [row](int a, int b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
      });
      argmax.push_back(order[0]);
      gaps.push_back(row[order[0]] - row[order[1]]);
      std::vector<int> ki(order.begin(), order.begin() + top_k);
      std::vector<float> kv;
      for (int id : ki) kv.push_back(row[id]);
      tk_ids.push_back(ki);
      tk_logits.push_back(kv);
    }
    p.erase("full_last");  // whole rows are not stored for this reference (fixture size)
    p["argmax"] = argmax;
    p["top2_gap"] = gaps;
    p["topk_ids"] = tk_ids;
    p["topk_logits"] = tk_logits;
    llama_batch_free(batch);
    llama_free(ctx);
    std::fprintf(stderr, "%16s: %4d tokens, llama.cpp tokenization %s transformers'\n", p.at("name").get<std::string>().c_str(),
                 n, own == ids ? "equals" : "DIFFERS from");
  }
  fx["generator"] = "tools/llama_cpp_logits.cpp";
  fx["reference"] = "llama.cpp (" + std::string(LLAMA_CPP_FROM) + "), CPU, KV cache F32";
  fx["full_last_file"] = "";
  {
    std::ofstream j(out_path + ".tmp");
    j << fx.dump() << "\n";
  }
  std::rename((out_path + ".tmp").c_str(), out_path.c_str());
  llama_model_free(model);
  llama_backend_free();
  std::fprintf(stderr, "wrote %s\n", out_path.c_str());
  return 0;
}
