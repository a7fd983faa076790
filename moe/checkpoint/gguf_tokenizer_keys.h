#pragma once
// The tokenizer.ggml.* GGUF keys from a Hugging Face tokenizer.json, as llama.cpp's
// convert_hf_to_gguf.py writes them for byte-level BPE vocabularies (GPT-2 style: SmolLM2,
// Llama-3, Qwen):
//   tokenizer.ggml.model "gpt2", .pre (pre-tokenizer name, see below), .tokens (by id, padded to
//   the model's vocab size with "[PAD<id>]"), .token_type (1 normal, 3 control = special added
//   token, 4 user-defined = other added token, 5 unused = padding), .merges ("a b"),
//   .bos/.eos/.unknown/.padding_token_id and .add_bos_token from config.json /
//   tokenizer_config.json, and tokenizer.chat_template.
//
// .pre: llama.cpp identifies the pre-tokenizer by hashing the tokenization of a test string with
// the HF library; without it we read the pre_tokenizer structure instead: Digits(individual) +
// ByteLevel -> "smollm", plain ByteLevel -> "gpt-2", anything else -> "default".
//
// Contract: returns false and writes nothing when the directory has no tokenizer.json or the
// model is not byte-level BPE (SentencePiece tokenizer.model is not converted yet); malformed
// JSON throws lookahead::Error naming the file and field.
#include <cstdint>
#include <string>

namespace lookahead::moe {

class GgufWriter;

bool write_hf_tokenizer(const std::string& dir, int32_t n_vocab, GgufWriter& writer);

}  // namespace lookahead::moe
