#pragma once
// The kernels' worker threads: one parallel region (run) per matrix product or attention call, and
// a forward pass runs a few hundred of them per decode step.
//
// Why not OpenMP: between two regions a libgomp worker spins GOMP_SPINCOUNT times and then sleeps
// on a futex, and one count cannot serve both machines a server meets. Spinning ~100 us keeps the
// workers awake across a step's serial gaps (a quiet machine: 1-client inter-token latency 12.5 ms
// with 10 us of spin, 10 ms with 100 us) but burns the cores a busy machine needs (decode beside a
// busy loop: 37 tokens/s with 10 us, 24 with 100 us). This pool decides per wait instead:
// - Inside a forward pass (a ForwardScope is alive) a waiting thread spins up to 200 us, then
//   sleeps, unless the machine is contended: when the thread running the passes spent more than
//   10% of the recent passes runnable but not running (Linux schedstat, smoothed over passes), the
//   spin drops to 2 us, like a short-spinning OpenMP worker. (Adapting each thread's spin to how
//   its own waits ended was tried and is unstable: one sleeper makes the other side's waits long,
//   and both spins collapse on a quiet machine.)
// - Outside a forward pass (between decode steps, while the server waits for requests) workers
//   spin 2 us, then sleep.
//
// Contract:
// - run(n, fn) calls fn(t, n) once for each t in [0, n) (t = 0 on the calling thread) and returns
//   when every call has returned. n is clamped to [1, threads()]. fn must not throw on a worker
//   (t > 0); an exception on the caller's share is rethrown after the workers are done.
// - One region at a time: a run() from another thread while one is in progress, or from inside a
//   region, runs all of fn on the caller (fn(0, 1)), so results never depend on the pool's state
//   as long as fn splits its work by (t, n).
// - set_threads(n) (n >= 1) may only be called while no region runs; workers start lazily.
// - parallel_for(n_items, n_threads, body) splits [0, n_items) into n contiguous ranges (static
//   schedule) and calls body(begin, end, t) for each.
#include <cstdint>
#include <functional>

namespace lookahead::moe {

class KernelPool {
 public:
  static KernelPool& instance();
  void set_threads(int n);
  int threads() const;
  void run(int n_threads, const std::function<void(int thread, int n_threads)>& fn);

  // Marks a forward pass: waits inside it may spin, see above. Nests.
  class ForwardScope {
   public:
    ForwardScope();
    ~ForwardScope();
    ForwardScope(const ForwardScope&) = delete;
    ForwardScope& operator=(const ForwardScope&) = delete;
  };

  KernelPool(const KernelPool&) = delete;
  KernelPool& operator=(const KernelPool&) = delete;
  ~KernelPool();

 private:
  KernelPool();
  struct Impl;
  Impl* impl_;
};

template <class Body>
void parallel_for(int64_t n_items, int n_threads, const Body& body) {
  KernelPool::instance().run(n_threads, [&](int t, int n) {
    const int64_t begin = n_items * t / n, end = n_items * (t + 1) / n;
    if (end > begin) body(begin, end, t);
  });
}

}  // namespace lookahead::moe
