#pragma once
// The event list: timed events in integer picoseconds.
//
// Contract: pop() returns events in (time, insertion sequence) order, so two events at the same
// picosecond run in the order they were scheduled; runs are therefore deterministic. Events may
// not be scheduled before the time of the last popped event. An event is a small POD (kind,
// target, arg) that the simulator dispatches with a switch: no virtual call and no allocation per
// event once the pools have grown to their working size.
//
// Implementation: a calendar queue (timing wheel) of 2^18 buckets of 2^10 ps (~262 us horizon)
// holding unsorted chunked lists; the current bucket is sorted when reached. Events beyond the horizon
// wait in a 4-ary heap. Packet-level simulations schedule almost everything within a microsecond,
// so this beats a plain heap, whose working set no longer fits in cache at fabric scale.
// Events scheduled at the current time (the last popped event's) go to a FIFO merged with the
// current bucket on (time, seq), so starting thousands of QPs at one instant stays linear.
// Before the first pop (setup), events for the first bucket are appended and sorted once.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "net/core/time.h"

namespace lookahead::net {

struct Event {
  SimTime time = 0;
  uint64_t seq = 0;
  uint32_t target = 0;  // element id (port, link, flow) the event wakes
  uint32_t arg = 0;     // packet id or a flag
  uint8_t kind = 0;
};

// 4-ary min-heap on (time, seq): the overflow store of the calendar queue.
class EventHeap {
 public:
  static bool before(const Event& a, const Event& b) { return a.time < b.time || (a.time == b.time && a.seq < b.seq); }
  void push(const Event& e) {
    heap_.push_back(e);
    size_t i = heap_.size() - 1;
    while (i > 0) {
      size_t parent = (i - 1) / 4;
      if (!before(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  bool empty() const { return heap_.empty(); }
  const Event& top() const { return heap_.front(); }
  Event pop() {
    Event out = heap_.front();
    Event last = heap_.back();
    heap_.pop_back();
    size_t n = heap_.size(), i = 0;
    if (n == 0) return out;
    while (true) {
      size_t first = 4 * i + 1;
      if (first >= n) break;
      size_t best = first;
      size_t end = first + 4 < n ? first + 4 : n;
      for (size_t c = first + 1; c < end; ++c)
        if (before(heap_[c], heap_[best])) best = c;
      if (!before(heap_[best], last)) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = last;
    return out;
  }
  const std::vector<Event>& items() const { return heap_; }

 private:
  std::vector<Event> heap_;
};

class EventList {
 public:
  static constexpr int kShift = 10;
  static constexpr uint64_t kBuckets = uint64_t{1} << 18;

  EventList() : head_(kBuckets, kNil), occupied_(kBuckets / 64, 0) {}

  void schedule(SimTime time, uint8_t kind, uint32_t target, uint32_t arg = 0) {
    Event e{time, next_seq_++, target, arg, kind};
    ++count_;
    uint64_t b = time >> kShift;
    if (time == last_time_ && popped_) {
      // At the current time: after every event already queued for it (larger seq), before any
      // later one. A FIFO keeps this O(1); a sorted insert into cur_ moved every event at this time,
      // quadratic when thousands of QPs start at once (a split collective step).
      now_.push_back(e);
    } else if (b <= cur_bucket_ && !popped_) {
      // Before the first pop (a run's setup: every flow that starts at time 0 lands here) append
      // and sort once when the first event is taken; a sorted insert of N flows in seq order moved
      // the whole bucket each time (N^2 / 2 event copies: 80% of a 512-host direct all-reduce).
      cur_.push_back(e);
      cur_unsorted_ = true;
    } else if (b <= cur_bucket_) {
      // The current bucket (sorted descending, smallest at the back): insert in place.
      auto pos = std::upper_bound(cur_.begin(), cur_.end(), e, [](const Event& x, const Event& y) { return EventHeap::before(y, x); });
      cur_.insert(pos, e);
    } else if (b < cur_bucket_ + kBuckets) {
      uint64_t slot = b & (kBuckets - 1);
      uint32_t id = head_[slot];
      if (id == kNil || chunks_[id].count == kChunkEvents) {
        uint32_t fresh;
        if (free_chunk_ == kNil) {
          fresh = static_cast<uint32_t>(chunks_.size());
          chunks_.emplace_back();
        } else {
          fresh = free_chunk_;
          free_chunk_ = chunks_[fresh].next;
        }
        chunks_[fresh].count = 0;
        chunks_[fresh].next = id;
        head_[slot] = id = fresh;
      }
      Chunk& c = chunks_[id];
      c.events[c.count++] = e;
      occupied_[slot >> 6] |= uint64_t{1} << (slot & 63);
      ++wheel_count_;
    } else {
      overflow_.push(e);
    }
  }
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  // Requires !empty().
  const Event& top() {
    if (now_first()) return now_[now_head_];
    return cur_.back();
  }
  Event pop() {
    Event e;
    if (now_first()) {
      e = now_[now_head_++];
      if (now_head_ == now_.size()) now_.clear(), now_head_ = 0;
    } else {
      e = cur_.back();
      cur_.pop_back();
    }
    --count_;
    last_time_ = e.time;
    popped_ = true;
    return e;
  }
  uint64_t scheduled() const { return next_seq_; }
  // Visits pending events in no particular order (end-of-run accounting).
  template <typename F>
  void for_each(F&& visit) const {
    for (size_t i = now_head_; i < now_.size(); ++i) visit(now_[i]);
    for (const Event& e : cur_) visit(e);
    for (uint64_t b = 0; b < kBuckets; ++b)
      for (uint32_t id = head_[b]; id != kNil; id = chunks_[id].next)
        for (uint32_t i = 0; i < chunks_[id].count; ++i) visit(chunks_[id].events[i]);
    for (const Event& e : overflow_.items()) visit(e);
  }

 private:
  static constexpr uint32_t kNil = 0xffffffffu;
  // A wheel slot is a list of chunks of events (the newest chunk first, filled in scheduling order):
  // reaching a bucket reads its events a chunk at a time instead of chasing one node per event,
  // which cost a cache miss per event (a third of a 512-host run's CPU).
  static constexpr uint32_t kChunkEvents = 8;
  struct Chunk {
    Event events[kChunkEvents];
    uint32_t count = 0;
    uint32_t next = kNil;
  };

  // Makes cur_ hold the earliest pending bucket.
  // Whether the next event is the oldest one scheduled at the current time (now_ holds events at
  // last_time_ in seq order; cur_ may still hold earlier-scheduled ones at that time).
  bool now_first() {
    if (cur_unsorted_) {
      sort_descending(cur_);
      cur_unsorted_ = false;
    }
    if (now_head_ == now_.size()) {
      load();
      return false;
    }
    if (cur_.empty()) return true;  // nothing in cur_ is due before the current time
    return EventHeap::before(now_[now_head_], cur_.back());
  }

  void load() {
    while (cur_.empty()) {
      if (wheel_count_ == 0) {
        if (overflow_.empty()) return;
        cur_bucket_ = overflow_.top().time >> kShift;
      } else {
        uint64_t next = next_occupied(cur_bucket_ + 1);
        if (!overflow_.empty()) next = std::min(next, overflow_.top().time >> kShift);
        cur_bucket_ = next;
      }
      uint64_t slot = cur_bucket_ & (kBuckets - 1);
      occupied_[slot >> 6] &= ~(uint64_t{1} << (slot & 63));
      uint32_t& head = head_[slot];
      for (uint32_t id = head; id != kNil;) {
        Chunk& c = chunks_[id];
        cur_.insert(cur_.end(), c.events, c.events + c.count);
        wheel_count_ -= c.count;
        uint32_t next = c.next;
        c.next = free_chunk_;
        free_chunk_ = id;
        id = next;
      }
      head = kNil;
      while (!overflow_.empty() && (overflow_.top().time >> kShift) == cur_bucket_) cur_.push_back(overflow_.pop());
      sort_descending(cur_);
    }
  }

  static void sort_descending(std::vector<Event>& events) {
    std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) { return EventHeap::before(y, x); });
  }

  // First bucket >= from whose wheel slot holds events (requires wheel_count_ > 0): skips empty
  // stretches 64 buckets at a time, so sparse phases (only timers left) stay cheap.
  uint64_t next_occupied(uint64_t from) const {
    uint64_t b = from;
    while (true) {
      uint64_t slot = b & (kBuckets - 1);
      uint64_t bits = occupied_[slot >> 6] >> (slot & 63);
      if (bits) return b + static_cast<uint64_t>(__builtin_ctzll(bits));
      b += 64 - (slot & 63);
    }
  }

  std::vector<uint32_t> head_;
  std::vector<uint64_t> occupied_;  // one bit per wheel slot
  std::vector<Chunk> chunks_;
  uint32_t free_chunk_ = kNil;  // chunks no slot uses, linked by `next`
  std::vector<Event> cur_;
  EventHeap overflow_;
  uint64_t cur_bucket_ = 0;
  size_t wheel_count_ = 0;
  size_t count_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<Event> now_;  // scheduled at last_time_ after it was reached, in seq order, from now_head_
  size_t now_head_ = 0;
  SimTime last_time_ = 0;   // time of the last popped event
  bool popped_ = false;
  bool cur_unsorted_ = false;  // cur_ was appended to before the first pop; sorted by the first top()/pop()
};

}  // namespace lookahead::net
