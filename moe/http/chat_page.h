#pragma once
// The chat page served at `/`: one self-contained HTML document (inline CSS and JavaScript, no build
// step) that lists the served model, keeps a conversation, and streams each reply from
// POST /v1/chat/completions (stream: true) as it arrives. An API key typed into the page is sent as
// a Bearer token and kept in the browser's localStorage. `/?prompt=TEXT[&temperature=T][&max_tokens=N]`
// fills the form but never sends by itself. A failed request shows its error in the reply's place
// and leaves the conversation as it was; a conversation longer than the context loses its oldest
// messages until it fits.
#include <string_view>

namespace lookahead::moe::http {

std::string_view chat_page_html();

}  // namespace lookahead::moe::http
