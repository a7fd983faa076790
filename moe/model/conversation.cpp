#include "moe/model/conversation.h"

namespace lookahead::moe {

ChatPrompt fit_chat_prompt(const Tokenizer& tok, std::vector<ChatMessage>& messages, size_t first_turn,
                           int64_t reply_room, int64_t n_ctx) {
  ChatPrompt p;
  p.tokens = tok.encode(tok.apply_chat_template(messages, true), true, true);
  while (static_cast<int64_t>(p.tokens.size()) + reply_room > n_ctx && messages.size() > first_turn + 1) {
    // A turn is the oldest user message and everything up to the next user message.
    size_t end = first_turn + 1;
    while (end < messages.size() - 1 && messages[end].role != "user") ++end;
    messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first_turn),
                   messages.begin() + static_cast<std::ptrdiff_t>(end));
    ++p.dropped;
    p.tokens = tok.encode(tok.apply_chat_template(messages, true), true, true);
  }
  return p;
}

std::vector<int32_t> reuse_kv_prefix(LlamaContext& ctx, std::vector<int32_t>& cached, const std::vector<int32_t>& all) {
  size_t common = 0;
  while (common < cached.size() && common < all.size() && cached[common] == all[common]) ++common;
  if (common == all.size()) --common;  // always feed at least one token to get logits
  ctx.truncate(static_cast<int64_t>(common));
  cached.resize(common);
  std::vector<int32_t> fresh(all.begin() + static_cast<std::ptrdiff_t>(common), all.end());
  cached.insert(cached.end(), fresh.begin(), fresh.end());
  return fresh;
}

}  // namespace lookahead::moe
