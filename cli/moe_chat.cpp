// `lookahead moe chat`: an interactive conversation on stdin/stdout with the model's chat template.
// Each line of stdin is one user message; the reply streams to stdout. The KV cache keeps the
// conversation: each turn re-renders the template and only feeds tokens past the common prefix.
//
// A banner on stderr names the model and how to quit. Ctrl-C (SIGINT) during a reply stops that
// reply and returns to the prompt; at the prompt it prints how to quit, and a second Ctrl-C in a row
// (or end of input, Ctrl-D) ends the session with status 0. When the conversation no longer leaves
// room for a reply in the context, the oldest turns are dropped (the system message is kept), with a
// line on stderr saying so.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <memory>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_model_flags.h"
#include "common/error.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/conversation.h"
#include "moe/model/generate.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"

namespace {

using namespace lookahead::moe;

struct ChatOptions {
  lookahead::cli::ModelFlags m;
  lookahead::cli::SamplingFlags s{.temp = 0.7f, .ctx = 4096};  // cooler and longer than generate
  std::string system;
  int64_t tokens = 512;
};

// SIGINT: the handler sets a flag (checked between tokens of a reply) and writes a byte to a pipe
// (wakes the prompt's poll without a race).
std::atomic<bool> g_interrupted{false};
int g_interrupt_pipe[2] = {-1, -1};

extern "C" void on_chat_interrupt(int) {
  g_interrupted.store(true);
  const char c = 1;
  [[maybe_unused]] ssize_t n = ::write(g_interrupt_pipe[1], &c, 1);
}

void install_interrupt_handler() {
  if (::pipe(g_interrupt_pipe) != 0) lookahead::fail("cannot create a pipe for Ctrl-C handling");
  for (int fd : g_interrupt_pipe) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct sigaction sa {};
  sa.sa_handler = on_chat_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR
  ::sigaction(SIGINT, &sa, nullptr);
}

// Clears the Ctrl-C flag and the pipe; true when there was one.
bool take_interrupt() {
  char buf[64];
  while (::read(g_interrupt_pipe[0], buf, sizeof buf) > 0) {
  }
  return g_interrupted.exchange(false);
}

// Lines of stdin, read with poll() beside the Ctrl-C pipe.
class LineReader {
 public:
  enum class Result { LINE, END_OF_INPUT, INTERRUPT };
  Result next(std::string& line) {
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return Result::LINE;
      }
      if (eof_) {
        if (buf_.empty()) return Result::END_OF_INPUT;
        line.swap(buf_);
        buf_.clear();
        return Result::LINE;
      }
      if (g_interrupted.load()) return Result::INTERRUPT;
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {g_interrupt_pipe[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        lookahead::fail("reading stdin: {}", std::strerror(errno));
      }
      if (fds[1].revents & POLLIN) continue;  // the flag is set; reported above
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char chunk[4096];
        const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) eof_ = true;
        else buf_.append(chunk, static_cast<size_t>(n));
      }
    }
  }

 private:
  std::string buf_;
  bool eof_ = false;
};

// What each turn of the conversation needs.
struct ChatSession {
  const Tokenizer& tok;
  LlamaContext& ctx;
  Sampler& sampler;
  int64_t tokens;                      // most tokens per reply
  std::vector<ChatMessage> messages;
  size_t first_turn = 0;               // turns before this index are never dropped
  int64_t reply_room = 1;              // room kept for a reply when the conversation is trimmed to fit
  std::vector<int32_t> cached;         // tokens whose K/V are in the cache, in order
};

// Streams the reply to the last user message to stdout; returns the generation's stats.
GenerationStats stream_reply(ChatSession& s, const std::vector<int32_t>& fresh, std::string& reply) {
  auto on_token = [&](int32_t id) {
    if (g_interrupted.load()) return false;
    const std::string bytes = s.tok.token_bytes(id);
    reply += bytes;
    s.cached.push_back(id);
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  const Tokenizer& tok = s.tok;
  return generate(s.ctx, s.sampler, fresh, s.tokens, [&tok](int32_t id) { return tok.is_end_of_generation(id); },
                  on_token);
}

// One user message: fit the conversation into the context, then stream the reply.
void chat_turn(ChatSession& s, const std::string& line) {
  const long long n_ctx = static_cast<long long>(s.ctx.n_ctx());
  s.messages.push_back({"user", line});
  const ChatPrompt prompt = fit_chat_prompt(s.tok, s.messages, s.first_turn, s.reply_room, s.ctx.n_ctx());
  if (prompt.dropped > 0)
    std::fprintf(stderr, "lookahead: context of %lld tokens is full: dropped the oldest %zu turn%s\n", n_ctx,
                 prompt.dropped, prompt.dropped == 1 ? "" : "s");
  if (static_cast<int64_t>(prompt.tokens.size()) >= s.ctx.n_ctx()) {
    std::fprintf(stderr, "lookahead: this message (%zu tokens with the template) does not fit the context of %lld tokens; "
                 "send a shorter one or raise --ctx\n", prompt.tokens.size(), n_ctx);
    s.messages.pop_back();
    return;
  }
  const std::vector<int32_t> fresh = reuse_kv_prefix(s.ctx, s.cached, prompt.tokens);
  take_interrupt();  // a Ctrl-C before the reply began is not meant for it
  std::string reply;
  const GenerationStats stats = stream_reply(s, fresh, reply);
  // The last sampled token was not fed back; keep `cached` equal to what the cache holds.
  if (static_cast<int64_t>(s.cached.size()) > s.ctx.n_past()) s.cached.resize(static_cast<size_t>(s.ctx.n_past()));
  std::fputc('\n', stdout);
  std::fflush(stdout);
  s.messages.push_back({"assistant", reply});
  if (take_interrupt()) std::fprintf(stderr, "lookahead: reply stopped (Ctrl-C)\n");
  if (stats.hit_context_limit)
    std::fprintf(stderr, "lookahead: context of %lld tokens is full; the oldest turns will be dropped\n", n_ctx);
}

// Reads messages until end of input, or a second Ctrl-C in a row at the prompt.
void chat_loop(ChatSession& s, bool interactive) {
  LineReader reader;
  std::string line;
  bool interrupted_at_prompt = false;
  while (true) {
    if (interactive) std::fprintf(stderr, "> ");
    std::fflush(stderr);
    const LineReader::Result got = reader.next(line);
    if (got == LineReader::Result::END_OF_INPUT) {
      if (interactive) std::fputc('\n', stderr);  // Ctrl-D: leave the shell's prompt on a line of its own
      return;
    }
    if (got == LineReader::Result::INTERRUPT) {
      take_interrupt();
      if (interrupted_at_prompt) {
        std::fputc('\n', stderr);
        return;
      }
      interrupted_at_prompt = true;
      std::fprintf(stderr, "\n(Ctrl-C again or Ctrl-D to quit)\n");
      continue;
    }
    interrupted_at_prompt = false;
    if (!line.empty()) chat_turn(s, line);
  }
}

void run_chat(const ChatOptions& o) {
  lookahead::cli::apply_threads(o.s.threads);
  require_valid_sampling_flags(o.s.params());
  lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), 0);
  LoadedModel loaded(o.m.model, o.m.route);
  const LlamaModel& model = loaded.llama();
  ContextOptions copt;
  copt.n_ctx = lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), model.hparams().n_ctx_train);
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  Sampler sampler(o.s.params(), model.hparams().n_vocab);
  ChatSession s{loaded.source().tokenizer(), ctx, sampler, o.tokens, {}, 0, 1, {}};
  if (!o.system.empty()) s.messages.push_back({"system", o.system});
  s.first_turn = s.messages.size();
  s.reply_room = std::max<int64_t>(1, std::min<int64_t>(o.tokens, ctx.n_ctx() / 2));
  const bool interactive = isatty(STDIN_FILENO) != 0;

  install_interrupt_handler();
  std::fprintf(stderr,
               "lookahead moe chat: %s%s, context %lld tokens, up to %lld tokens a reply\n"
               "Type a message and press Enter. Ctrl-C stops a reply; Ctrl-D (or Ctrl-C twice at the prompt) quits.\n",
               o.m.model.c_str(), loaded.route() == "dense" ? "" : (" (route " + loaded.route() + ")").c_str(),
               static_cast<long long>(ctx.n_ctx()), static_cast<long long>(o.tokens));
  std::fflush(stderr);
  chat_loop(s, interactive);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "chat", "Chat with a model on stdin/stdout (chat template, streaming; Ctrl-C stops a reply)", [](CLI::App& cmd) {
       auto o = std::make_shared<ChatOptions>();
       lookahead::cli::add_model_flags(cmd, o->m);
       cmd.add_option("--system", o->system, "system message");
       cmd.add_option("--tokens,-n", o->tokens, "most tokens per reply")->capture_default_str();
       lookahead::cli::add_sampling_flags(cmd, o->s);
       cmd.callback([o] { run_chat(*o); });
     }});

}  // namespace
