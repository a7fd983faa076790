#include "moe/serving/scheduler.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"

namespace lookahead::moe::serving {

SchedulerKind parse_scheduler(std::string_view name, std::string_view what) {
  if (name == "expert-aware") return SchedulerKind::EXPERT_AWARE;
  if (name == "decode-first") return SchedulerKind::DECODE_FIRST;
  if (name == "prefill-first") return SchedulerKind::PREFILL_FIRST;
  fail("{}: unknown '{}' (expected expert-aware, decode-first or prefill-first)", what, name);
}

const char* scheduler_name(SchedulerKind kind) {
  switch (kind) {
    case SchedulerKind::EXPERT_AWARE: return "expert-aware";
    case SchedulerKind::DECODE_FIRST: return "decode-first";
    case SchedulerKind::PREFILL_FIRST: return "prefill-first";
  }
  return "?";
}

QueueLength parse_queue_length(std::string_view name, std::string_view what) {
  if (name == "tokens") return QueueLength::TOKENS;
  if (name == "requests") return QueueLength::REQUESTS;
  fail("{}: unknown '{}' (expected tokens or requests)", what, name);
}

const char* queue_length_name(QueueLength q) { return q == QueueLength::TOKENS ? "tokens" : "requests"; }

PrefillOrder parse_prefill_order(std::string_view name, std::string_view what) {
  if (name == "queue") return PrefillOrder::QUEUE;
  if (name == "fcfs") return PrefillOrder::FCFS;
  fail("{}: unknown '{}' (expected queue or fcfs)", what, name);
}

const char* prefill_order_name(PrefillOrder p) { return p == PrefillOrder::QUEUE ? "queue" : "fcfs"; }

PartialQueue parse_partial_queue(std::string_view name, std::string_view what) {
  if (name == "stop") return PartialQueue::STOP;
  if (name == "continue") return PartialQueue::CONTINUE;
  fail("{}: unknown '{}' (expected stop or continue)", what, name);
}

const char* partial_queue_name(PartialQueue p) { return p == PartialQueue::STOP ? "stop" : "continue"; }

namespace {

int64_t tokens_of(const QueuedRequest& r) { return static_cast<int64_t>(r.experts.size()); }

void validate(const std::vector<QueuedRequest>& queue, const SchedulerLimits& limits) {
  if (limits.token_budget <= 0) fail("scheduler: token_budget must be > 0, got {}", limits.token_budget);
  if (limits.max_running <= 0) fail("scheduler: max_running must be > 0, got {}", limits.max_running);
  if (limits.starvation_limit < 0) fail("scheduler: starvation_limit must be >= 0, got {}", limits.starvation_limit);
  int64_t running = 0;
  for (const QueuedRequest& r : queue) {
    if (r.experts.empty()) fail("scheduler: request {}: no pending tokens (experts is empty)", r.id);
    if (r.running && r.admitted) fail("scheduler: request {}: both running and an admitted prefill", r.id);
    if (r.running || r.admitted) ++running;
    if (r.running) {
      if (r.experts.size() != 1) fail("scheduler: request {}: running but {} pending tokens (expected 1)", r.id, r.experts.size());
    } else if (tokens_of(r) > limits.token_budget) {
      fail("scheduler: request {}: prefill of {} tokens exceeds the token budget {} (the scheduler does not split "
           "steps)", r.id, tokens_of(r), limits.token_budget);
    }
  }
  if (running > limits.max_running)
    fail("scheduler: {} requests holding a KV cache exceed max_running {}", running, limits.max_running);
}

// Builds a batch while tracking the budget and free sequence slots.
struct Builder {
  const std::vector<QueuedRequest>& queue;
  int64_t budget_left;
  int64_t slots_left;
  Batch batch;
  std::set<int32_t> experts;

  bool fits(const QueuedRequest& r) const {
    return tokens_of(r) <= budget_left && (r.running || r.admitted || slots_left > 0);
  }
  void add(const QueuedRequest& r) {
    batch.steps.push_back(BatchStep{r.id, !r.running, tokens_of(r)});
    batch.tokens += tokens_of(r);
    budget_left -= tokens_of(r);
    if (!r.running && !r.admitted) --slots_left;
    experts.insert(r.experts.begin(), r.experts.end());
  }
  Batch finish() {
    batch.experts.assign(experts.begin(), experts.end());
    return std::move(batch);
  }
};

int64_t count_running(const std::vector<QueuedRequest>& queue) {
  return std::count_if(queue.begin(), queue.end(), [](const QueuedRequest& r) { return r.running || r.admitted; });
}

// The expert a whole prefill is queued under: its most frequent token expert, ties to the lowest.
int32_t queue_expert(const QueuedRequest& r) {
  std::map<int32_t, int64_t> counts;
  for (int32_t e : r.experts) ++counts[e];
  int32_t best = counts.begin()->first;
  int64_t best_count = 0;
  for (const auto& [e, c] : counts) {
    if (c > best_count) { best = e; best_count = c; }
  }
  return best;
}

Batch schedule_decode_first(const std::vector<QueuedRequest>& queue, Builder b) {
  for (const QueuedRequest& r : queue) {
    if (r.running && b.fits(r)) b.add(r);
  }
  for (const QueuedRequest& r : queue) {
    if (r.running) continue;
    if (!b.fits(r)) break;  // FCFS among prefills
    b.add(r);
  }
  return b.finish();
}

Batch schedule_prefill_first(const std::vector<QueuedRequest>& queue, Builder b) {
  for (const QueuedRequest& r : queue) {
    if (r.running) continue;
    if (!b.fits(r)) break;
    b.add(r);
  }
  for (const QueuedRequest& r : queue) {
    if (r.running && b.fits(r)) b.add(r);
  }
  return b.finish();
}

Batch schedule_expert_aware(const std::vector<QueuedRequest>& queue, const SchedulerLimits& limits, Builder b) {
  // Per-expert queues of request indices: decodes first, then prefills, each in arrival order.
  std::map<int32_t, std::vector<size_t>> queues;
  std::vector<size_t> prefills;  // waiting prefills in arrival order (FCFS admission)
  for (size_t i = 0; i < queue.size(); ++i) {
    if (queue[i].running) queues[queue[i].experts[0]].push_back(i);
  }
  for (size_t i = 0; i < queue.size(); ++i) {
    if (queue[i].running) continue;
    queues[queue_expert(queue[i])].push_back(i);
    prefills.push_back(i);
  }
  const bool fcfs = limits.prefill_order == PrefillOrder::FCFS;
  std::vector<bool> added(queue.size(), false);
  size_t prefill_head = 0;  // prefills[prefill_head] is the oldest prefill not yet in the batch
  auto add = [&](size_t i) {
    b.add(queue[i]);
    added[i] = true;
    while (prefill_head < prefills.size() && added[prefills[prefill_head]]) ++prefill_head;
  };
  auto starved = [&](const QueuedRequest& r) {
    return limits.starvation_limit > 0 && r.waited_steps >= limits.starvation_limit;
  };
  while (b.budget_left > 0) {
    // Eligible steps of each queue (a prefill needs a free slot and, with FCFS, every earlier
    // prefill ahead of it in the batch), their length and token count.
    int32_t chosen = -1;
    int64_t chosen_len = -1, chosen_tokens = 0;
    int64_t chosen_wait = -1;  // oldest starved wait in the queue, -1 when none is starved
    std::vector<size_t> chosen_items;
    for (const auto& [e, items] : queues) {
      std::vector<size_t> el;
      int64_t slots = b.slots_left, tokens = 0, wait = -1;
      size_t head = prefill_head;
      for (size_t i : items) {
        const QueuedRequest& r = queue[i];
        if (!r.running) {
          if (!r.admitted && slots <= 0) continue;
          if (fcfs) {
            // Items are in arrival order and earlier prefills are in the batch or in other queues:
            // once one prefill is not next in line, none after it in this queue is either.
            if (head >= prefills.size() || prefills[head] != i) break;
            ++head;
          }
          if (!r.admitted) --slots;
        }
        el.push_back(i);
        tokens += tokens_of(r);
        if (starved(r)) wait = std::max(wait, r.waited_steps);
      }
      if (el.empty()) continue;
      const int64_t len = limits.queue_length == QueueLength::TOKENS ? tokens : static_cast<int64_t>(el.size());
      // Starved queues first (oldest wait), then the longest queue; ties keep the lowest expert.
      if (wait > chosen_wait || (wait == chosen_wait && len > chosen_len)) {
        chosen = e;
        chosen_len = len;
        chosen_tokens = tokens;
        chosen_wait = wait;
        chosen_items = std::move(el);
      }
    }
    if (chosen < 0) break;
    if (chosen_tokens <= b.budget_left) {
      for (size_t i : chosen_items) add(i);
      // Steps that were not eligible (FCFS prefills not yet next in line) stay queued.
      std::vector<size_t>& rest = queues[chosen];
      std::erase_if(rest, [&](size_t i) { return added[i]; });
      if (rest.empty()) queues.erase(chosen);
      continue;
    }
    if (chosen_wait >= 0) {
      // Chosen because of starvation: its starved requests go first, oldest first.
      std::stable_sort(chosen_items.begin(), chosen_items.end(), [&](size_t x, size_t y) {
        return queue[x].waited_steps > queue[y].waited_steps;
      });
    }
    if (limits.partial_queue == PartialQueue::STOP) {
      for (size_t i : chosen_items) {
        if (!b.fits(queue[i])) break;
        add(i);
      }
      break;
    }
    // CONTINUE: skip what does not fit (with FCFS a prefill that does not fit ends this queue's
    // prefills: the later ones may not overtake it), drop the queue for this batch, go on.
    for (size_t i : chosen_items) {
      if (b.fits(queue[i])) {
        add(i);
      } else if (fcfs && !queue[i].running) {
        break;
      }
    }
    queues.erase(chosen);
  }
  return b.finish();
}

}  // namespace

Batch schedule(SchedulerKind kind, const std::vector<QueuedRequest>& queue, const SchedulerLimits& limits) {
  validate(queue, limits);
  Builder b{queue, limits.token_budget, limits.max_running - count_running(queue), {}, {}};
  switch (kind) {
    case SchedulerKind::DECODE_FIRST: return schedule_decode_first(queue, std::move(b));
    case SchedulerKind::PREFILL_FIRST: return schedule_prefill_first(queue, std::move(b));
    case SchedulerKind::EXPERT_AWARE: return schedule_expert_aware(queue, limits, std::move(b));
  }
  return {};
}

}  // namespace lookahead::moe::serving
