#pragma once
// Hugging Face tokenizer files: tokenizer.json (byte-level BPE models) and tokenizer.model
// (SentencePiece protobuf), with tokenizer_config.json for BOS/EOS, add_bos_token and the chat
// template. Tokenizer::from_hf_dir uses these; they take file contents so fuzz targets can too.
//
// Contract: malformed input throws lookahead::Error naming `source` and the offending field
// (e.g. "tokenizer.json: model.merges[3]: expected a string 'a b' or a pair [a, b]"); nothing else
// escapes. Supported tokenizer.json: model.type "BPE" with a ByteLevel pre-tokenizer, optionally
// after Split (behavior Isolated) and Digits pre-tokenizers, in a Sequence.
#include <memory>
#include <string>
#include <string_view>

#include "moe/tokenize/tokenizer.h"
#include "moe/tokenize/vocabulary.h"

namespace lookahead::moe {

// config_json may be empty (no tokenizer_config.json).
std::unique_ptr<Tokenizer> tokenizer_from_hf_json(std::string_view tokenizer_json, std::string_view config_json,
                                                  const std::string& source);

// Reads the pieces, scores, types, special ids and add_dummy_prefix of a SentencePiece
// ModelProto (the tokenizer.model file).
Vocabulary sentencepiece_model_vocabulary(std::string_view model_proto, const std::string& source);

}  // namespace lookahead::moe
