#include "moe/http/chat_page.h"

namespace lookahead::moe::http {

namespace {

constexpr std::string_view kChatPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lookahead chat</title>
<style>
  :root { --bg: #f6f7f9; --fg: #1d2330; --muted: #6b7385; --user: #dbe9ff; --bot: #ffffff; --accent: #2f6fed; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg);
         display: flex; flex-direction: column; height: 100vh; }
  header { padding: 10px 16px; border-bottom: 1px solid #dde1e8; background: #fff; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 16px; margin: 0; }
  header .model { color: var(--muted); font-family: ui-monospace, monospace; font-size: 13px; }
  header label { color: var(--muted); font-size: 13px; }
  header input { font: inherit; font-size: 13px; padding: 3px 6px; border: 1px solid #ccd2dc; border-radius: 4px; }
  header input[type=number] { width: 70px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
  .msg { max-width: 760px; padding: 9px 13px; border-radius: 10px; white-space: pre-wrap; word-wrap: break-word;
         box-shadow: 0 1px 2px rgba(0,0,0,.06); }
  .user { align-self: flex-end; background: var(--user); }
  .assistant { align-self: flex-start; background: var(--bot); }
  .system { align-self: center; color: var(--muted); font-size: 13px; background: none; box-shadow: none; }
  .error { align-self: center; color: #b3261e; font-size: 13px; }
  .meta { display: block; color: var(--muted); font-size: 12px; margin-top: 4px; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid #dde1e8; background: #fff; }
  textarea { flex: 1; font: inherit; padding: 8px 10px; border: 1px solid #ccd2dc; border-radius: 6px; resize: none; height: 64px; }
  button { font: inherit; padding: 0 18px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
  button.secondary { background: #e6e9ef; color: var(--fg); }
  button:disabled { opacity: .5; cursor: default; }
</style>
</head>
<body>
<header>
  <h1>lookahead chat</h1><span class="model" id="model">connecting…</span>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>max tokens <input id="max_tokens" type="number" min="1" step="1" placeholder="(rest)" title="empty: the rest of the context"></label>
  <label>API key <input id="apikey" type="password" placeholder="(none)" size="12"></label>
</header>
<div id="log"><div class="msg system">Type a message and press Enter. Replies stream from POST /v1/chat/completions.</div></div>
<form id="form">
  <textarea id="input" placeholder="Message" autofocus></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" class="secondary" type="button" disabled>Stop</button>
  <button id="clear" class="secondary" type="button">Clear</button>
</form>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const log = $("log"), input = $("input");
let model = null, history = [], controller = null;
$("apikey").value = localStorage.getItem("lookahead_api_key") || "";
$("apikey").addEventListener("change", () => { localStorage.setItem("lookahead_api_key", $("apikey").value); loadModel(); });

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
function add(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}
async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    model = j.data[0].id;
    $("model").textContent = model;
  } catch (e) {
    $("model").textContent = "(" + e.message + ")";
  }
}
// One exchange. The conversation (`history`) gains the user's message and the reply only when a
// reply came (or was stopped part-way): a failed request shows its error in the reply's place and
// puts the message back in the input box. When the conversation no longer fits the model's context
// (400 context_length_exceeded), its oldest messages are dropped until it does.
async function send(text) {
  const turn = { role: "user", content: text };
  const userBubble = add("user", text);
  const bubble = add("assistant", "");
  const meta = document.createElement("span");
  meta.className = "meta";
  let reply = "", tokens = 0, t0 = performance.now(), tFirst = null, failed = null, stopped = false;
  let messages = history.concat([turn]);
  controller = new AbortController();
  $("send").disabled = true; $("stop").disabled = false;
  try {
    const maxTokens = parseInt($("max_tokens").value, 10);  // empty: the rest of the context
    let r, dropped = 0;
    while (true) {
      const body = { model: model || undefined, messages: messages, stream: true,
                     stream_options: { include_usage: true }, temperature: parseFloat($("temperature").value) };
      if (maxTokens > 0) body.max_tokens = maxTokens;
      r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body),
                                                signal: controller.signal });
      if (r.ok) break;
      const j = await r.json().catch(() => ({}));
      const err = j.error || {};
      if (err.code === "context_length_exceeded" && messages.length > 1) {
        const cut = Math.min(2, messages.length - 1);  // a user message and its reply
        messages = messages.slice(cut);
        dropped += cut;
        continue;
      }
      throw new Error(err.message || (r.status + " " + r.statusText));
    }
    if (dropped > 0) {
      const note = document.createElement("div");
      note.className = "msg system";
      note.textContent = "Left out the " + dropped + " oldest message" + (dropped > 1 ? "s" : "") +
                         " to fit the model's context.";
      log.insertBefore(note, userBubble);
    }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buf = "", done = false;
    while (!done) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut); buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") { done = true; break; }
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) tokens = j.usage.completion_tokens;
          const c = j.choices && j.choices[0];
          if (c && c.delta && c.delta.content) {
            if (tFirst === null) tFirst = performance.now();
            reply += c.delta.content;
            bubble.textContent = reply;
            log.scrollTop = log.scrollHeight;
          }
        }
      }
    }
    if (!done) throw new Error("the reply ended early (the connection closed before [DONE])");
    const secs = (performance.now() - t0) / 1000;
    meta.textContent = tokens + " tokens, " + secs.toFixed(1) + " s" +
        (tFirst !== null ? ", first token after " + ((tFirst - t0) / 1000).toFixed(2) + " s" : "");
  } catch (e) {
    if (e.name === "AbortError") stopped = true;
    else failed = e.message;
  } finally {
    if (failed !== null) {
      bubble.className = "msg error";
      bubble.textContent = (reply ? reply + "\n" : "") + "error: " + failed;
      if (!input.value) input.value = text;  // to send again
    } else if (stopped && !reply) {
      bubble.className = "msg system";
      bubble.textContent = "stopped before a reply";
      if (!input.value) input.value = text;
    } else {
      if (stopped) meta.textContent = "stopped";
      bubble.appendChild(meta);
      history = messages.slice(0, -1).concat([turn, { role: "assistant", content: reply }]);
    }
    controller = null;
    $("send").disabled = false; $("stop").disabled = true;
    input.focus();
  }
}
$("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  send(text);
});
input.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("clear").addEventListener("click", () => {
  history = [];
  log.innerHTML = "";
  add("system", "Conversation cleared.");
});
// ?prompt=...&temperature=...&max_tokens=... fill the form on load; the message is sent only when
// the user sends it (a link from any site must not run generations with the stored API key).
const params = new URLSearchParams(location.search);
for (const k of ["temperature", "max_tokens"]) if (params.has(k)) $(k).value = params.get(k);
if (params.get("prompt")) input.value = params.get("prompt");
loadModel();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view chat_page_html() { return kChatPage; }

}  // namespace lookahead::moe::http
