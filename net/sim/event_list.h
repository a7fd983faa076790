#pragma once
// The event list: a 4-ary min-heap of timed events in integer picoseconds.
//
// Contract: pop() returns events in (time, insertion sequence) order, so two events at the same
// picosecond run in the order they were scheduled; runs are therefore deterministic. An event is a
// small POD (kind, target, arg) that the simulator dispatches with a switch: no virtual call and
// no allocation per event once the heap has grown to its working size.
#include <cstdint>
#include <vector>

namespace lookahead::net {

using SimTime = uint64_t;  // picoseconds

struct Event {
  SimTime time = 0;
  uint64_t seq = 0;
  uint32_t target = 0;  // element id (port, link, flow) the event wakes
  uint32_t arg = 0;     // packet id or a flag
  uint8_t kind = 0;
};

class EventList {
 public:
  void schedule(SimTime time, uint8_t kind, uint32_t target, uint32_t arg = 0) {
    heap_.push_back(Event{time, next_seq_++, target, arg, kind});
    sift_up(heap_.size() - 1);
  }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  const Event& top() const { return heap_.front(); }
  Event pop() {
    Event out = heap_.front();
    Event last = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(last);
    return out;
  }
  uint64_t scheduled() const { return next_seq_; }
  // Visits pending events in no particular order (end-of-run accounting).
  template <typename F>
  void for_each(F&& visit) const {
    for (const Event& e : heap_) visit(e);
  }

 private:
  static bool before(const Event& a, const Event& b) { return a.time < b.time || (a.time == b.time && a.seq < b.seq); }
  void sift_up(size_t i) {
    Event e = heap_[i];
    while (i > 0) {
      size_t parent = (i - 1) / 4;
      if (!before(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  // Places `e` (the former last element) starting from the root.
  void sift_down(const Event& e) {
    size_t n = heap_.size(), i = 0;
    while (true) {
      size_t first = 4 * i + 1;
      if (first >= n) break;
      size_t best = first;
      size_t end = first + 4 < n ? first + 4 : n;
      for (size_t c = first + 1; c < end; ++c)
        if (before(heap_[c], heap_[best])) best = c;
      if (!before(heap_[best], e)) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = e;
  }
  std::vector<Event> heap_;
  uint64_t next_seq_ = 0;
};

}  // namespace lookahead::net
