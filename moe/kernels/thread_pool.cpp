#include "moe/kernels/thread_pool.h"

#include <immintrin.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"

namespace lookahead::moe {

namespace {

constexpr int64_t kLongSpinNs = 200'000;  // inside a forward pass on an uncontended machine
constexpr int64_t kShortSpinNs = 2'000;   // outside one, or when the CPUs are contended
// The forward pass's thread spent more than this share of the pass waiting for a CPU (runnable, not
// running): other work wants the cores, so spinning would take them from it and from our own
// descheduled threads.
constexpr double kContendedShare = 0.10;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Nanoseconds this thread has spent runnable but waiting for a CPU (the second field of Linux's
// schedstat), or -1 where that is not available. The file stays open per thread (it names the
// thread that opened it), so a forward pass costs two preads, not two opens.
int64_t runqueue_wait_ns() {
  thread_local const int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  unsigned long long on_cpu = 0, waiting = 0;
  return std::sscanf(buf, "%llu %llu", &on_cpu, &waiting) == 2 ? static_cast<int64_t>(waiting) : -1;
}

}  // namespace

struct KernelPool::Impl {
  // One per worker: the generation of the last region it was given and whether it sleeps on it.
  struct alignas(64) Slot {
    std::atomic<uint32_t> generation{0};
    std::atomic<int> sleeping{0};
  };

  std::mutex region;                    // held by the thread running a region
  std::vector<std::unique_ptr<Slot>> slots;  // slot k: worker thread k + 1
  std::vector<std::thread> workers;
  const std::function<void(int, int)>* job = nullptr;
  int job_threads = 0;
  alignas(64) std::atomic<uint32_t> pending{0};  // workers of the current region still running
  std::atomic<int> caller_sleeping{0};
  alignas(64) std::atomic<int> forward_depth{0};
  std::atomic<int64_t> hot_spin_ns{kLongSpinNs};  // the spin inside a forward pass, from the last passes
  std::atomic<double> contention{0};              // smoothed share of a pass spent waiting for a CPU
  std::atomic<bool> stop{false};
  int max_threads = 0;  // 0: no cap

  bool hot() const { return forward_depth.load(std::memory_order_relaxed) > 0; }

  // Waits until done(word) holds: spins (long inside an uncontended forward pass, else briefly),
  // then sleeps on the word (std::atomic::wait: a futex). The notifier changes the word and then
  // wakes the waiter if `sleeping` says it may be asleep; both sides use sequentially consistent
  // operations, so one of them sees the other.
  template <class Done>
  void wait(std::atomic<uint32_t>& word, std::atomic<int>& sleeping, const Done& done) {
    const int64_t start = now_ns();
    int64_t limit = hot() ? hot_spin_ns.load(std::memory_order_relaxed) : kShortSpinNs;
    for (int i = 1;; ++i) {
      if (done(word.load(std::memory_order_acquire))) return;
      _mm_pause();
      if ((i & 63) == 0) {
        if (!hot()) limit = kShortSpinNs;  // the forward pass ended: stop spinning soon
        if (now_ns() - start > limit) break;
      }
    }
    sleeping.fetch_add(1);
    for (uint32_t v = word.load(); !done(v); v = word.load()) word.wait(v);
    sleeping.fetch_sub(1);
  }

  // `slot` is passed in, not read from `slots`, which the caller may be growing meanwhile.
  void worker_main(int index, Slot& slot) {
    uint32_t seen = 0;  // a new slot's generation: the caller may bump it before this thread runs
    for (;;) {
      wait(slot.generation, slot.sleeping, [&](uint32_t g) { return g != seen; });
      seen = slot.generation.load(std::memory_order_acquire);
      if (stop.load()) return;
      (*job)(index, job_threads);
      if (pending.fetch_sub(1) == 1 && caller_sleeping.load() > 0) pending.notify_all();
    }
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers.size()) < n - 1) {
      slots.push_back(std::make_unique<Slot>());
      Slot* slot = slots.back().get();
      const int index = static_cast<int>(workers.size()) + 1;
      workers.emplace_back([this, index, slot] { worker_main(index, *slot); });
    }
  }

  void shutdown() {
    stop.store(true);
    for (auto& s : slots) {
      s->generation.fetch_add(1);
      s->generation.notify_all();
    }
    for (auto& w : workers) w.join();
    workers.clear();
    slots.clear();
    stop.store(false);
  }
};

KernelPool& KernelPool::instance() {
  // Never destroyed: workers sleeping in a futex at exit need no join, and no static destructor
  // can run a region on a destroyed pool.
  static KernelPool* pool = new KernelPool();
  return *pool;
}

KernelPool::KernelPool() : impl_(new Impl) {}

KernelPool::~KernelPool() {
  impl_->shutdown();
  delete impl_;
}

void KernelPool::set_threads(int n) {
  LOOKAHEAD_CHECK(n >= 1);
  std::lock_guard<std::mutex> lock(impl_->region);
  impl_->max_threads = n;
  if (static_cast<int>(impl_->workers.size()) > n - 1) impl_->shutdown();  // fewer from now on
}

int KernelPool::threads() const {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return impl_->max_threads > 0 ? impl_->max_threads : hw;
}

void KernelPool::run(int n_threads, const std::function<void(int, int)>& fn) {
  Impl& p = *impl_;
  int n = std::clamp(n_threads, 1, threads());
  std::unique_lock<std::mutex> lock(p.region, std::defer_lock);
  if (n == 1 || !lock.try_lock()) {  // a region already runs (another thread, or inside this one)
    fn(0, 1);
    return;
  }
  p.ensure_workers(n);
  p.job = &fn;
  p.job_threads = n;
  p.pending.store(static_cast<uint32_t>(n - 1));
  for (int k = 0; k < n - 1; ++k) {
    Impl::Slot& s = *p.slots[static_cast<size_t>(k)];
    s.generation.fetch_add(1);  // publishes job and job_threads (sequentially consistent)
    if (s.sleeping.load() > 0) s.generation.notify_all();
  }
  std::exception_ptr error;
  try {
    fn(0, n);
  } catch (...) {  // the workers still run fn: wait for them before it goes out of scope
    error = std::current_exception();
  }
  p.wait(p.pending, p.caller_sleeping, [](uint32_t left) { return left == 0; });
  p.job = nullptr;
  if (error) std::rethrow_exception(error);
}

namespace {
thread_local int64_t t_pass_start_ns = 0, t_pass_start_wait_ns = -1;
}

KernelPool::ForwardScope::ForwardScope() {
  if (KernelPool::instance().impl_->forward_depth.fetch_add(1) != 0) return;
  t_pass_start_ns = now_ns();
  t_pass_start_wait_ns = runqueue_wait_ns();
}

// The outermost scope ends: how much of the pass this thread waited for a CPU decides the spin of
// the next passes (smoothed over a few, so one preemption does not flip it).
KernelPool::ForwardScope::~ForwardScope() {
  Impl& p = *KernelPool::instance().impl_;
  if (p.forward_depth.fetch_sub(1) != 1 || t_pass_start_wait_ns < 0) return;
  const int64_t wall = now_ns() - t_pass_start_ns, waited = runqueue_wait_ns() - t_pass_start_wait_ns;
  if (wall <= 0 || waited < 0) return;
  const double share = 0.7 * p.contention.load(std::memory_order_relaxed) +
                       0.3 * (static_cast<double>(waited) / static_cast<double>(wall));
  p.contention.store(share, std::memory_order_relaxed);
  p.hot_spin_ns.store(share > kContendedShare ? kShortSpinNs : kLongSpinNs, std::memory_order_relaxed);
}

}  // namespace lookahead::moe
