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
#include "moe/format/model_source.h"
#include "moe/kernels/matmul.h"
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
  enum class Result { kLine, kEof, kInterrupt };
  Result next(std::string& line) {
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return Result::kLine;
      }
      if (eof_) {
        if (buf_.empty()) return Result::kEof;
        line.swap(buf_);
        buf_.clear();
        return Result::kLine;
      }
      if (g_interrupted.load()) return Result::kInterrupt;
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

void run_chat(const ChatOptions& o) {
  lookahead::cli::apply_threads(o.s.threads);
  require_valid_sampling_flags(o.s.params());
  lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), 0);
  LoadedModel loaded(o.m.model, o.m.route);
  const ModelSource* source = &loaded.source();
  const LlamaModel& model = loaded.llama();
  const Tokenizer& tok = source->tokenizer();
  ContextOptions copt;
  copt.n_ctx = lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), model.hparams().n_ctx_train);
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  Sampler sampler(o.s.params(), model.hparams().n_vocab);
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  const size_t first_turn = messages.size();  // turns before this index are never dropped
  // Room kept for a reply when the conversation is trimmed to fit.
  const int64_t reply_room = std::max<int64_t>(1, std::min<int64_t>(o.tokens, ctx.n_ctx() / 2));
  std::vector<int32_t> cached;  // tokens whose K/V are in the cache, in order
  const bool interactive = isatty(STDIN_FILENO) != 0;

  install_interrupt_handler();
  std::fprintf(stderr,
               "lookahead moe chat: %s%s, context %lld tokens, up to %lld tokens a reply\n"
               "Type a message and press Enter. Ctrl-C stops a reply; Ctrl-D (or Ctrl-C twice at the prompt) quits.\n",
               o.m.model.c_str(), loaded.route() == "dense" ? "" : (" (route " + loaded.route() + ")").c_str(),
               static_cast<long long>(ctx.n_ctx()), static_cast<long long>(o.tokens));
  std::fflush(stderr);

  LineReader reader;
  std::string line;
  bool interrupted_at_prompt = false;
  while (true) {
    if (interactive) std::fprintf(stderr, "> ");
    std::fflush(stderr);
    const LineReader::Result got = reader.next(line);
    if (got == LineReader::Result::kEof) {
      if (interactive) std::fputc('\n', stderr);  // Ctrl-D: leave the shell's prompt on a line of its own
      break;
    }
    if (got == LineReader::Result::kInterrupt) {
      take_interrupt();
      if (interrupted_at_prompt) {
        std::fputc('\n', stderr);
        break;
      }
      interrupted_at_prompt = true;
      std::fprintf(stderr, "\n(Ctrl-C again or Ctrl-D to quit)\n");
      continue;
    }
    interrupted_at_prompt = false;
    if (line.empty()) continue;
    messages.push_back({"user", line});
    std::vector<int32_t> all = tok.encode(tok.apply_chat_template(messages, true), true, true);
    // Drop the oldest turns until the conversation leaves room for a reply.
    size_t dropped = 0;
    while (static_cast<int64_t>(all.size()) + reply_room > ctx.n_ctx() && messages.size() > first_turn + 1) {
      // A turn is the oldest user message and everything up to the next user message.
      size_t end = first_turn + 1;
      while (end < messages.size() - 1 && messages[end].role != "user") ++end;
      messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first_turn),
                     messages.begin() + static_cast<std::ptrdiff_t>(end));
      ++dropped;
      all = tok.encode(tok.apply_chat_template(messages, true), true, true);
    }
    if (dropped > 0)
      std::fprintf(stderr, "lookahead: context of %lld tokens is full: dropped the oldest %zu turn%s\n",
                   static_cast<long long>(ctx.n_ctx()), dropped, dropped == 1 ? "" : "s");
    if (static_cast<int64_t>(all.size()) >= ctx.n_ctx()) {
      std::fprintf(stderr, "lookahead: this message (%zu tokens with the template) does not fit the context of %lld tokens; "
                   "send a shorter one or raise --ctx\n", all.size(), static_cast<long long>(ctx.n_ctx()));
      messages.pop_back();
      continue;
    }
    size_t common = 0;
    while (common < cached.size() && common < all.size() && cached[common] == all[common]) ++common;
    if (common == all.size()) --common;  // always feed at least one token to get logits
    ctx.truncate(static_cast<int64_t>(common));
    cached.resize(common);
    std::vector<int32_t> fresh(all.begin() + static_cast<std::ptrdiff_t>(common), all.end());
    cached.insert(cached.end(), fresh.begin(), fresh.end());
    take_interrupt();  // a Ctrl-C before the reply began is not meant for it
    std::string reply;
    auto on_token = [&](int32_t id) {
      if (g_interrupted.load()) return false;
      const std::string bytes = tok.token_bytes(id);
      reply += bytes;
      cached.push_back(id);
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    const GenerationStats s =
        generate(ctx, sampler, fresh, o.tokens, [&tok](int32_t id) { return tok.is_end_of_generation(id); }, on_token);
    // The last sampled token was not fed back; keep `cached` equal to what the cache holds.
    if (static_cast<int64_t>(cached.size()) > ctx.n_past()) cached.resize(static_cast<size_t>(ctx.n_past()));
    std::fputc('\n', stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", reply});
    if (take_interrupt()) std::fprintf(stderr, "lookahead: reply stopped (Ctrl-C)\n");
    if (s.hit_context_limit)
      std::fprintf(stderr, "lookahead: context of %lld tokens is full; the oldest turns will be dropped\n",
                   static_cast<long long>(ctx.n_ctx()));
  }
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
