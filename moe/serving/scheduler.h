#pragma once
// Batch schedulers of the Read-ME serving system (paper section 4, Algorithm 1).
//
// Input: the queue, in arrival order. Each request is either
//   - waiting (no KV cache yet): its next step is a prefill of all its prompt tokens, or
//   - running (holds a KV cache): its next step decodes one token.
// Read-ME's router runs before the backbone (top-1, one expert for every layer), so every pending
// token's expert is known: `experts` holds one expert per pending token (prompt length for a
// prefill, 1 for a decode).
//
// A prompt may also be prefilled in chunks (the serving engine's chunked prefill): then each chunk
// is a prefill step of its own, and the chunks after the first come from a request that already
// holds a KV cache (`admitted`), so they take no new sequence slot.
//
// Output: the next batch, a list of whole steps (the scheduler never splits a step), with
//   - total tokens <= token_budget (MaxTokenLen), and
//   - requests holding a KV cache + prefills newly admitted <= max_running.
// A prefill longer than token_budget can never be scheduled: lookahead::Error naming the request
// (the engine must refuse such prompts at submit).
//
// Schedulers:
//   - decode-first (DeepSpeed-style): every running request decodes (arrival order, while the
//     budget lasts), then waiting prefills join in arrival order while they fit; the first that does
//     not fit stops admission (FCFS, so a long prompt is not overtaken forever).
//   - prefill-first (vLLM-style): waiting prefills are admitted first (arrival order, stop at the
//     first that does not fit or when slots run out), then running requests decode with what is
//     left of the budget. Batches mix prefills and decodes (vLLM v0 would not; stated choice).
//   - expert-aware (Algorithm 1): per-expert queues; a decode joins the queue of its token's expert,
//     a prefill joins the queue of its most frequent expert (ties: lowest id) with its whole length
//     (it cannot be split across queues). Queue length = tokens. Repeatedly take the longest queue
//     (ties: lowest expert id); if it all fits the remaining budget, append it all and continue;
//     else append what fits, in queue order (decodes first, then prefills, each in arrival order),
//     stopping at the first step that does not fit, and stop. Prefills with no free sequence slot
//     are not eligible. Anti-starvation (not in the paper, whose Algorithm 1 can starve a rare
//     expert under load): a request with waited_steps >= starvation_limit puts its queue ahead of
//     all others (oldest first), so its wait is bounded; starvation_limit = 0 turns this off.
//     Two choices the paper leaves open are options (SchedulerLimits; defaults = the behaviour above):
//       queue_length: what "longest" counts: TOKENS (a waiting prefill counts its whole prompt, so
//         an expert with one waiting prompt usually has the longest queue) or REQUESTS (steps: a
//         prefill counts 1 like a decode, the length of Algorithm 1's per-expert request list).
//         The fit test against the budget always counts tokens.
//       prefill_order: QUEUE (a prefill goes in whenever its expert's queue is taken, overtaking
//         earlier prompts of other experts) or FCFS (a waiting prefill is eligible only once every
//         earlier waiting prefill is in the batch, as in the two baselines). A queue taken while
//         its prefill was not yet eligible keeps that prefill, and may be taken again in the same
//         batch once it is.
//       partial_queue: after the longest queue does not fit whole, STOP (Algorithm 1: append what
//         fits and stop) or CONTINUE (append what fits, drop that queue for this batch, and keep
//         taking the next longest queues' steps that fit). With single-token steps (decodes) the
//         two are the same batch, since "what fits" fills the budget; they differ only when a
//         prefill, which cannot be split, does not fit and would leave the rest of the budget
//         unused. With FCFS, a prefill that does not fit still blocks every later prefill.
#include <cstdint>
#include <string_view>
#include <vector>

namespace lookahead::moe::serving {

enum class SchedulerKind { EXPERT_AWARE, DECODE_FIRST, PREFILL_FIRST };
// "expert-aware", "decode-first", "prefill-first"; anything else throws naming `what`.
SchedulerKind parse_scheduler(std::string_view name, std::string_view what = "scheduler");
const char* scheduler_name(SchedulerKind kind);

// Expert-aware's options (header comment): "tokens" / "requests", "queue" / "fcfs" and "stop" / "continue".
enum class QueueLength { TOKENS, REQUESTS };
enum class PrefillOrder { QUEUE, FCFS };
enum class PartialQueue { STOP, CONTINUE };
QueueLength parse_queue_length(std::string_view name, std::string_view what = "queue length");
const char* queue_length_name(QueueLength q);
PrefillOrder parse_prefill_order(std::string_view name, std::string_view what = "prefill order");
const char* prefill_order_name(PrefillOrder p);
PartialQueue parse_partial_queue(std::string_view name, std::string_view what = "partial queue");
const char* partial_queue_name(PartialQueue p);

struct QueuedRequest {
  uint64_t id = 0;
  bool running = false;          // holds a KV cache: decodes one token; else prefills its prompt
  std::vector<int32_t> experts;  // pre-gated expert of each pending token (size 1 when running)
  int64_t waited_steps = 0;      // batches formed since this step became ready without it
  bool admitted = false;         // a prefill that already holds a KV cache (a later chunk of its prompt)
};

struct SchedulerLimits {
  int64_t token_budget = 256;     // MaxTokenLen: tokens per batch
  int64_t max_running = 64;       // sequences holding a KV cache at once
  int64_t starvation_limit = 32;  // expert-aware only; 0 = off
  // Expert-aware only: what a queue's length counts, and whether prefills keep arrival order.
  QueueLength queue_length = QueueLength::TOKENS;
  PrefillOrder prefill_order = PrefillOrder::QUEUE;
  PartialQueue partial_queue = PartialQueue::STOP;
};

struct BatchStep {
  uint64_t id = 0;
  bool prefill = false;
  int64_t tokens = 0;
};

struct Batch {
  std::vector<BatchStep> steps;  // in the order the scheduler picked them
  int64_t tokens = 0;
  std::vector<int32_t> experts;  // unique experts the batch's tokens use, sorted
  int64_t unique_experts() const { return static_cast<int64_t>(experts.size()); }
};

// Picks the next batch from `queue` (arrival order). Throws lookahead::Error on invalid input:
// empty `experts`, a running request with more than one pending token, a non-positive limit, a
// prefill longer than token_budget, more running requests than max_running.
Batch schedule(SchedulerKind kind, const std::vector<QueuedRequest>& queue, const SchedulerLimits& limits);

}  // namespace lookahead::moe::serving
