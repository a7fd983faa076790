#pragma once
// A chat conversation kept in one KV cache (`lookahead moe chat`): each turn re-renders the chat
// template over all messages and feeds only the tokens past what the cache already holds.
//
// Contract:
//   - fit_chat_prompt renders `messages` (the last one is the new user message) with the generation
//     prompt and, while that leaves fewer than reply_room tokens of n_ctx, drops the oldest turn (the
//     oldest user message from first_turn on and everything up to the next user message); messages
//     before first_turn (a system message) and the new message are never dropped. The result may
//     still not fit; the caller decides.
//   - reuse_kv_prefix keeps the longest prefix `cached` (the tokens whose K/V the cache holds, in
//     order) shares with `all`, always leaving at least one token to feed so there are logits;
//     truncates the cache and `cached` to it, appends the rest to `cached`, and returns the rest.
#include <cstdint>
#include <vector>

#include "moe/model/llama.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe {

struct ChatPrompt {
  std::vector<int32_t> tokens;  // the whole conversation, templated, BOS included
  size_t dropped = 0;           // oldest turns dropped to leave room for a reply
};

ChatPrompt fit_chat_prompt(const Tokenizer& tok, std::vector<ChatMessage>& messages, size_t first_turn,
                           int64_t reply_room, int64_t n_ctx);

std::vector<int32_t> reuse_kv_prefix(LlamaContext& ctx, std::vector<int32_t>& cached, const std::vector<int32_t>& all);

}  // namespace lookahead::moe
