// `lookahead moe serve`: an OpenAI-compatible HTTP server (moe/http/http_server.h) on the Read-ME
// serving engine (moe/serving/threaded_engine.h): concurrent requests are batched by the selected
// scheduler, every token is routed before the backbone runs, and with --cache the experts live in a
// RAM budget in front of the model file (moe/serving/tiered_experts.h).
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_model_flags.h"
#include "cli/moe_tier_flags.h"
#include "common/error.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"
#include "moe/http/http_server.h"
#include "moe/serving/scheduler.h"
#include "moe/serving/threaded_engine.h"
#include "moe/serving/tiered_experts.h"

namespace {

using namespace lookahead::moe;
using namespace lookahead::moe::serving;
using namespace lookahead::moe::http;

struct ServeOptions {
  lookahead::cli::ModelFlags model;
  lookahead::cli::ExpertTierFlags tier = lookahead::cli::tier_flags_with_cache("resident");
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string scheduler = "expert-aware";
  std::string queue_length = "tokens";
  std::string prefill_order = "queue";
  std::string partial_queue = "stop";
  int64_t token_budget = 0;
  std::string prefix_cache = "on";
  int64_t prefill_chunk = 0;
  int64_t max_queue = 32;
  int64_t max_running = 4;
  int64_t ctx = 2048;
  CLI::Option* ctx_option = nullptr;
  std::string memory_limit = "auto";
  std::string api_key;
  bool api_key_given = false;  // --api-key given (possibly empty), or taken from $LOOKAHEAD_API_KEY
  std::string model_name;
  size_t max_body = 1 << 20;
  int64_t max_connections = 256;
  double request_timeout = 10;
  double drain_timeout = 10;
  int threads = 0;
  bool ctx_given() const { return ctx_option && ctx_option->count() > 0; }
};

// SIGTERM / SIGINT: the handler only writes the signal number to a pipe; a waiter thread reads it
// and runs the graceful shutdown. (Blocking the signals and sigwait()ing is not enough: libraries
// such as OpenBLAS start threads before main() that would still take them.)
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_shutdown_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &b, 1);
}

class SignalWaiter {
 public:
  explicit SignalWaiter(std::function<void(int)> on_signal) : on_signal_(std::move(on_signal)) {
    if (pipe(g_signal_pipe) != 0) lookahead::fail("cannot create the signal pipe");
    struct sigaction sa {};
    sa.sa_handler = on_shutdown_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    thread_ = std::thread([this] {
      pollfd pfd{g_signal_pipe[0], POLLIN, 0};
      while (!stop_) {
        if (poll(&pfd, 1, 100) <= 0) continue;
        unsigned char sig = 0;
        if (read(g_signal_pipe[0], &sig, 1) == 1) {
          on_signal_(sig);
          return;
        }
      }
    });
  }
  ~SignalWaiter() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::function<void(int)> on_signal_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What the flags ask for, checked before the model loads.
struct ServeChoice {
  serving::SchedulerKind scheduler;
  serving::QueueLength queue_length;
  serving::PrefillOrder prefill_order;
  serving::PartialQueue partial_queue;
  lookahead::cli::ExpertTierChoice tier;
};

void check_server_flags(const ServeOptions& o) {
  if (o.max_body < 1024) lookahead::fail("--max-body must be >= 1024 bytes (got {})", o.max_body);
  // Sockets above 1023 are beyond cpp-httplib's select(): keep the cap well below.
  if (o.max_connections < 1 || o.max_connections > 900)
    lookahead::fail("--max-connections must be in 1..900 (got {})", o.max_connections);
  if (!(o.request_timeout > 0) || o.request_timeout > 3600)
    lookahead::fail("--request-timeout must be in (0, 3600] seconds (got {})", o.request_timeout);
  // An empty key must not silently mean "no authentication".
  const char* env_key = std::getenv("LOOKAHEAD_API_KEY");
  if (o.api_key.empty() && (o.api_key_given || env_key))
    lookahead::fail("{} is empty: give a key, or leave out --api-key and unset LOOKAHEAD_API_KEY to serve without "
                    "authentication",
                    o.api_key_given ? "--api-key" : "LOOKAHEAD_API_KEY");
  if (o.drain_timeout < 0) lookahead::fail("--drain-timeout must be >= 0 seconds (got {})", o.drain_timeout);
}

ServeChoice check_flags(const ServeOptions& o) {
  ServeChoice c;
  c.scheduler = serving::parse_scheduler(o.scheduler, "--scheduler");
  c.queue_length = serving::parse_queue_length(o.queue_length, "--queue-length");
  c.prefill_order = serving::parse_prefill_order(o.prefill_order, "--prefill-order");
  c.partial_queue = serving::parse_partial_queue(o.partial_queue, "--partial-queue");
  c.tier = lookahead::cli::parse_expert_cache_flags(o.tier);
  if (o.token_budget < 0) lookahead::fail("--token-budget must be >= 0 (got {})", o.token_budget);
  if (o.prefill_chunk < 0) lookahead::fail("--prefill-chunk must be >= 0 (got {})", o.prefill_chunk);
  if (o.token_budget > 0 && o.prefill_chunk > o.token_budget)
    lookahead::fail("--prefill-chunk {} exceeds --token-budget {} (a chunk must fit one batch)", o.prefill_chunk,
                    o.token_budget);
  if (o.port < 0 || o.port > 65535) lookahead::fail("--port: {} is not a TCP port (0..65535; 0 = any free port)", o.port);
  if (o.max_queue < 0) lookahead::fail("--max-queue must be >= 0 (got {})", o.max_queue);
  if (o.max_running < 1) lookahead::fail("--max-running must be >= 1 (got {})", o.max_running);
  lookahead::cli::resolve_ctx(o.ctx, o.ctx_given(), 0, 16);
  check_server_flags(o);
  lookahead::cli::apply_threads(o.threads);
  lookahead::cli::apply_memory_limit(o.memory_limit);
  return c;
}

ThreadedEngineOptions engine_options(const ServeOptions& o, const ServeChoice& c, const LoadedModel& loaded) {
  const LlamaHparams& hp = loaded.llama().hparams();
  ThreadedEngineOptions eopt;
  eopt.core.scheduler = c.scheduler;
  eopt.core.n_ctx = lookahead::cli::resolve_ctx(o.ctx, o.ctx_given(), hp.n_ctx_train, 16);
  // Reserved up front per running sequence: refused before anything is allocated.
  const double per_sequence = serving::sequence_memory_bytes(hp, eopt.core.n_ctx);
  lookahead::require_memory(per_sequence * o.max_running,
                            fmt::format("--max-running {} at --ctx {} (logits and KV caches of {} per sequence)",
                                        o.max_running, eopt.core.n_ctx, lookahead::format_bytes(per_sequence)));
  eopt.core.limits.max_running = o.max_running;
  eopt.core.limits.queue_length = c.queue_length;
  eopt.core.limits.prefill_order = c.prefill_order;
  eopt.core.limits.partial_queue = c.partial_queue;
  eopt.core.limits.token_budget = o.token_budget > 0 ? o.token_budget : eopt.core.n_ctx;
  eopt.core.route = serving::serving_route(loaded.readme(), o.model.route);
  eopt.core.prefix_cache = o.prefix_cache == "on";
  eopt.core.prefill_chunk = std::min(o.prefill_chunk, eopt.core.limits.token_budget);
  eopt.max_queue = o.max_queue;
  return eopt;
}

HttpServerOptions server_options(const ServeOptions& o) {
  HttpServerOptions sopt;
  sopt.host = o.host;
  sopt.port = o.port;
  sopt.api_key = o.api_key;
  sopt.model_id = o.model_name.empty() ? default_model_id(o.model.model) : o.model_name;
  sopt.max_body_bytes = o.max_body;
  sopt.max_connections = o.max_connections;
  sopt.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.request_timeout * 1000));
  sopt.drain_grace = std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout * 1000));
  return sopt;
}

void print_banner(const ServeOptions& o, const HttpServerOptions& sopt, int port, const ThreadedEngine& engine,
                  bool tiered) {
  const auto& lim = engine.limits();
  std::fprintf(stderr,
               "lookahead: serving %s as '%s' on http://%s:%d (scheduler %s, experts %s; %lld sequences x %lld tokens, "
               "KV cache %.1f MiB; queue %lld)\n",
               o.model.model.c_str(), sopt.model_id.c_str(), o.host.c_str(), port, o.scheduler.c_str(),
               tiered ? (o.tier.cache + " " + o.tier.budget).c_str() : "resident",
               static_cast<long long>(lim.max_running), static_cast<long long>(lim.n_ctx),
               static_cast<double>(engine.metrics().kv_cache_bytes) / (1 << 20), static_cast<long long>(lim.max_queue));
  std::fflush(stderr);
}

void run_serve(const ServeOptions& o) {
  const ServeChoice choice = check_flags(o);  // everything before loading the model
  // A client that vanishes must not kill the server with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);

  LoadedModel loaded(o.model.model, o.model.route);
  const ReadMeModel* readme = loaded.readme();
  if (choice.tier.tiered && !readme)
    lookahead::fail("--cache {}: a dense model has no experts to cache (serve a Read-ME model directory)", o.tier.cache);
  std::unique_ptr<serving::TieredExperts> tiers;
  if (choice.tier.tiered) {
    lookahead::cli::ExpertTierChoice tier = choice.tier;
    lookahead::cli::apply_tier_io_flags(o.tier, tier);
    tiers = std::make_unique<serving::TieredExperts>(*readme, tier.options(readme->backbone().hparams().n_layer));
  }
  const ThreadedEngineOptions eopt = engine_options(o, choice, loaded);
  const ExpertWeights* experts = tiers ? static_cast<const ExpertWeights*>(tiers.get()) : readme;
  if (readme && eopt.core.route == "dense") {
    readme = nullptr;  // the backbone's dense FFN, as for a dense model
    experts = nullptr;
  }
  const Tokenizer& tok = loaded.source().tokenizer();
  ThreadedEngine engine(loaded.llama(), readme, experts, tiers.get(), tok, eopt);

  const HttpServerOptions sopt = server_options(o);
  HttpServer server(engine, tok, sopt);
  const int port = server.bind();
  SignalWaiter waiter([&server](int sig) {
    std::fprintf(stderr, "lookahead: %s: draining in-flight requests, then exiting\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.shutdown();
  });
  print_banner(o, sopt, port, engine, tiers != nullptr);
  server.serve();
  engine.shutdown();
  std::fprintf(stderr, "lookahead: server stopped\n");
}

void add_engine_flags(CLI::App& cmd, ServeOptions& o) {
  cmd.add_option("--scheduler", o.scheduler, "expert-aware | decode-first | prefill-first")->capture_default_str();
  cmd.add_option("--queue-length", o.queue_length, "expert-aware: longest queue counts tokens | requests")
      ->capture_default_str();
  cmd.add_option("--prefill-order", o.prefill_order, "expert-aware: prompts join with their expert's queue | fcfs")
      ->capture_default_str();
  cmd.add_option("--partial-queue", o.partial_queue, "expert-aware: longest queue does not fit: stop | continue")
      ->capture_default_str();
  lookahead::cli::add_cache_flag(cmd, o.tier, "experts: resident (memory-mapped) | belady-online (Belady on the known batch + predicted ones; alias belady) | lru | random | none (Read-ME models)");
  lookahead::cli::add_budget_flag(cmd, o.tier, "expert cache RAM budget: bytes (512MiB) or experts (3experts)");
  lookahead::cli::add_prefetch_flag(cmd, o.tier, "on | off | conservative (belady: prefetch only what demand Belady loads)");
  cmd.add_option("--token-budget", o.token_budget, "tokens per batch (0 = the context size)")->capture_default_str();
  cmd.add_option("--prefill-chunk", o.prefill_chunk,
                 "prefill prompts this many tokens per batch, so long prompts do not stall running decodes and "
                 "may exceed --token-budget (0 = whole prompts)")
      ->capture_default_str();
  cmd.add_option("--prefix-cache", o.prefix_cache,
                 "keep finished requests' KV caches within the KV limit and reuse them for prompts that "
                 "start with the same tokens: on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd.add_option("--max-queue", o.max_queue, "requests waiting beyond the running ones; more get 429")
      ->capture_default_str();
  cmd.add_option("--max-running", o.max_running, "sequences generating at once (each holds a KV cache)")
      ->capture_default_str();
  lookahead::cli::add_memory_limit_flag(cmd, o.memory_limit);
  o.ctx_option = cmd.add_option("--ctx,-c", o.ctx,
                                "context per sequence in tokens, 16 to the model's training context "
                                "(KV cache limit = ctx x max-running)")
                     ->capture_default_str();
}

CLI::Option* add_server_flags(CLI::App& cmd, ServeOptions& o) {
  CLI::Option* api_key = cmd.add_option("--api-key", o.api_key,
                                        "require 'Authorization: Bearer KEY' (also $LOOKAHEAD_API_KEY; not empty)")
                             ->envname("LOOKAHEAD_API_KEY");
  cmd.add_option("--model-name", o.model_name, "model id reported by /v1/models (default: the file name)");
  cmd.add_option("--max-body", o.max_body, "largest request body in bytes (larger: 413)")->capture_default_str();
  cmd.add_option("--max-connections", o.max_connections,
                 "open HTTP connections at once, each with its own thread (more: 503 at once)")
      ->capture_default_str();
  cmd.add_option("--request-timeout", o.request_timeout,
                 "seconds a client has to send a whole request, headers and body (slower: 408, closed)")
      ->capture_default_str();
  cmd.add_option("--drain-timeout", o.drain_timeout, "seconds in-flight requests may finish after SIGTERM")
      ->capture_default_str();
  return api_key;
}

const bool registered = lookahead::cli::register_command(
    {"moe", "serve", "Serve a model over an OpenAI-compatible HTTP API (completions, chat, streaming)",
     [](CLI::App& cmd) {
       auto o = std::make_shared<ServeOptions>();
       cmd.footer(
           "Endpoints: POST /v1/completions, POST /v1/chat/completions (stream: true -> server-sent events), "
           "GET /v1/models, /health, /metrics (Prometheus), / (a chat page).\n"
           "Engine: continuous batching of up to --max-running sequences (--token-budget tokens per batch) with "
           "--scheduler expert-aware|decode-first|prefill-first; Read-ME models route every token before the "
           "backbone runs, and --cache belady-online|lru|random|none --budget B keeps experts in a RAM budget in front "
           "of the model file (O_DIRECT reads, --prefetch on|off).\nSIGTERM/SIGINT: stop accepting, finish in-flight requests (cancel them after "
           "--drain-timeout), exit 0.\n");
       lookahead::cli::add_model_flags(cmd, o->model);
       cmd.add_option("--host", o->host, "address to listen on")->capture_default_str();
       cmd.add_option("--port", o->port, "TCP port (0 = any free port; the address is printed)")->capture_default_str();
       add_engine_flags(cmd, *o);
       CLI::Option* api_key = add_server_flags(cmd, *o);
       cmd.add_option("--threads,-t", o->threads, "CPU threads for the model (0 = all cores)")->capture_default_str();
       cmd.callback([o, api_key] {
         o->api_key_given = api_key->count() > 0;  // the flag, or a non-empty $LOOKAHEAD_API_KEY
         run_serve(*o);
       });
     }});

}  // namespace
