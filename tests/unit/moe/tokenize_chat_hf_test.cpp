// Chat templates, tokenizer.json / tokenizer_config.json parsing and the SentencePiece
// tokenizer.model reader, including their errors on malformed input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "moe/tokenize/byte_level_bpe.h"
#include "moe/tokenize/chat_template.h"
#include "moe/tokenize/hf_tokenizer.h"

namespace lookahead::moe {
namespace {

const char* kSmolTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' "
    "}}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

Vocabulary special_vocab() {
  Vocabulary v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.bos = 1, v.eos = 2;
  return v;
}

TEST(TokenizeChat, ChatMLWithTheTemplatesDefaultSystemPrompt) {
  ChatTemplate chat(kSmolTemplate, false, special_vocab());
  EXPECT_EQ(chat.format(), ChatFormat::CHATML);
  EXPECT_EQ(chat.default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(chat.apply({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chat.apply({{"system", "S"}, {"user", "Hi"}, {"assistant", "Yo"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n");
}

TEST(TokenizeChat, PlainChatMLHasNoDefaultSystem) {
  ChatTemplate chat("{% for m in messages %}<|im_start|>{{m.role}}...{% endfor %}", false, special_vocab());
  EXPECT_EQ(chat.default_system(), "");
  EXPECT_EQ(chat.apply({{"user", "Hi"}}, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TokenizeChat, Llama2FoldsTheSystemPromptIntoTheFirstTurn) {
  ChatTemplate chat("{{ bos_token + '[INST] ' }}", true, special_vocab());
  EXPECT_EQ(chat.format(), ChatFormat::LLAMA2);
  EXPECT_EQ(chat.apply({{"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello."}, {"user", "Bye"}}, true),
            // As the Hugging Face template: the joined first turn is stripped, so " Hi " keeps its
            // leading space.
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(chat.apply({{"user", " Hi "}}, true), "[INST] Hi [/INST]");
  EXPECT_EQ(chat.apply({{"user", "Q"}}, true), "[INST] Q [/INST]");
}

TEST(TokenizeChat, FallsBackByVocabularyTypeAndRejectsBadRoles) {
  EXPECT_EQ(ChatTemplate("", true, special_vocab()).format(), ChatFormat::LLAMA2);
  EXPECT_EQ(ChatTemplate("", false, special_vocab()).format(), ChatFormat::CHATML);
  EXPECT_THROW(ChatTemplate("", false, special_vocab()).apply({{"tool", "x"}}, true), Error);
  EXPECT_THROW(ChatTemplate("", true, special_vocab()).apply({{"user", "a"}, {"system", "b"}}, true), Error);
}

// A byte-level tokenizer.json over "a", "b", "ab", " " (as Ġ) and one special token.
std::string tokenizer_json(const std::string& merges, const std::string& pre = "") {
  std::string pre_tokenizer = pre.empty()
      ? R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},
           {"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]})"
      : pre;
  return R"({"version":"1.0","added_tokens":[{"id":5,"content":"<|endoftext|>","special":true}],
    "pre_tokenizer":)" + pre_tokenizer + R"(,
    "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"\u0120":3,"\u0120ab":4,"1":6},"merges":)" + merges + "}}";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizeHfJson, BothMergeSpellingsGiveTheSameTokenizer) {
  for (const std::string merges : {R"(["a b", "Ġ ab"])", R"([["a","b"],["Ġ","ab"]])"}) {
    auto tok = tokenizer_from_hf_json(tokenizer_json(merges), R"({"eos_token":"<|endoftext|>"})", "tokenizer.json");
    EXPECT_EQ(tok->encode("ab ab", false, false), (std::vector<int32_t>{2, 4}));
    EXPECT_EQ(tok->encode("ab<|endoftext|>", false, true), (std::vector<int32_t>{2, 5}));
    EXPECT_EQ(tok->encode("11", false, false), (std::vector<int32_t>{6, 6}));
    EXPECT_EQ(tok->eos(), 5);
    EXPECT_EQ(tok->decode({2, 4}), "ab ab");
  }
}

TEST(TokenizeHfJson, MalformedFilesNameTheField) {
  auto load = [](const std::string& json, const std::string& config = "") {
    return [=] { tokenizer_from_hf_json(json, config, "dir/tokenizer.json"); };
  };
  EXPECT_NE(error_of(load("{not json")).find("dir/tokenizer.json"), std::string::npos);
  EXPECT_NE(error_of(load("{}")).find("model"), std::string::npos);
  EXPECT_NE(error_of(load(tokenizer_json("[5]"))).find("model.merges[0]"), std::string::npos);
  EXPECT_NE(error_of(load(tokenizer_json("[\"ab\"]"))).find("model.merges[0]"), std::string::npos);
  EXPECT_NE(error_of(load(R"({"model":{"type":"Unigram","vocab":[]}})")).find("model.type"), std::string::npos);
  EXPECT_NE(error_of(load(R"({"model":{"type":"BPE","vocab":{"a":"x"},"merges":[]}})")).find("model.vocab"),
            std::string::npos);
  EXPECT_NE(error_of(load(tokenizer_json("[]", R"({"type":"Metaspace"})"))).find("pre_tokenizer.type"),
            std::string::npos);
  EXPECT_NE(error_of(load(tokenizer_json("[]", R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"},
                                                    {"type":"ByteLevel","use_regex":false}]})"))).find("regex"),
            std::string::npos);
  EXPECT_NE(error_of(load(tokenizer_json("[]"), "[1]")).find("tokenizer_config"), std::string::npos);
  EXPECT_NE(error_of(load(R"({"model":{"type":"BPE","vocab":{"a":99999999},"merges":[]},
                              "pre_tokenizer":{"type":"ByteLevel"}})")).find("model.vocab"),
            std::string::npos);
}

TEST(TokenizeHfDir, LoadsTokenizerJsonAndReportsMissingFiles) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("lookahead_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tokenizer_json(R"(["a b"])");
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template":")" << "<|im_start|>" << R"("})";
  auto tok = Tokenizer::from_hf_dir(dir.string());
  EXPECT_EQ(tok->encode("ab", false, false), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok->apply_chat_template({{"user", "x"}}, false), "<|im_start|>user\nx<|im_end|>\n");
  fs::remove(dir / "tokenizer.json");
  EXPECT_NE(error_of([&] { Tokenizer::from_hf_dir(dir.string()); }).find("no tokenizer"), std::string::npos);
  fs::remove_all(dir);
  EXPECT_THROW(Tokenizer::from_hf_dir(dir.string()), Error);
}

// Protobuf encoding helpers for a hand-made SentencePiece ModelProto.
std::string varint(uint64_t v) {
  std::string s;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    s += static_cast<char>(v ? b | 0x80 : b);
  } while (v);
  return s;
}
std::string field(uint32_t number, const std::string& bytes) { return varint(number << 3 | 2) + varint(bytes.size()) + bytes; }
std::string piece(const std::string& text, float score, int type) {
  std::string s = field(1, text);
  s += varint(2 << 3 | 5);
  s.append(reinterpret_cast<const char*>(&score), 4);
  s += varint(3 << 3 | 0) + varint(static_cast<uint64_t>(type));
  return s;
}

TEST(TokenizeSentencePieceModel, ReadsPiecesSpecialIdsAndDummyPrefix) {
  std::string model = field(1, piece("<unk>", 0, 2)) + field(1, piece("<s>", 0, 3)) + field(1, piece("</s>", 0, 3)) +
                      field(1, piece("\xE2\x96\x81hi", -1.5f, 1)) + field(1, piece("<0x41>", 0, 6));
  model += field(2, varint(41 << 3) + varint(1) + varint(42 << 3) + varint(2) + varint(40 << 3) + varint(0));
  model += field(3, varint(3 << 3) + varint(1));
  Vocabulary v = sentencepiece_model_vocabulary(model, "tokenizer.model");
  ASSERT_EQ(v.tokens.size(), 5u);
  EXPECT_EQ(v.tokens[3], "\xE2\x96\x81hi");
  EXPECT_FLOAT_EQ(v.scores[3], -1.5f);
  EXPECT_EQ(v.types[4], TokenType::BYTE);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_TRUE(v.add_space_prefix);
  // Truncations at every length are errors, never crashes.
  for (size_t n = 1; n < model.size(); ++n) {
    try {
      sentencepiece_model_vocabulary(model.substr(0, n), "tokenizer.model");
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos);
    }
  }
  EXPECT_THROW(sentencepiece_model_vocabulary("", "tokenizer.model"), Error);
  EXPECT_THROW(sentencepiece_model_vocabulary(field(1, piece("x", 0, 9)), "tokenizer.model"), Error);
}

}  // namespace
}  // namespace lookahead::moe
