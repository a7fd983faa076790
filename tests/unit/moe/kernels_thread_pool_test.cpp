// KernelPool: every share of a region runs exactly once and run() returns after all of them, inside
// and outside a forward pass; a region started inside a region, or while another thread runs one,
// runs on its caller; an exception on the caller's share waits for the workers and is rethrown.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "moe/kernels/thread_pool.h"

using namespace lookahead::moe;

namespace {

// n regions of 4 threads each: every (region, share) runs once, and a region's shares are all done
// when run() returns (the counter of the region before is complete when the next starts).
void regions_cover_every_share(int n_regions) {
  KernelPool& pool = KernelPool::instance();
  const int threads = 4;
  std::vector<std::atomic<int>> hits(threads);
  for (int r = 0; r < n_regions; ++r) {
    for (auto& h : hits) h.store(0);
    int used = 0;
    pool.run(threads, [&](int t, int n) {
      if (t == 0) used = n;
      hits[static_cast<size_t>(t)].fetch_add(1);
    });
    ASSERT_GE(used, 1);
    for (int t = 0; t < threads; ++t) ASSERT_EQ(hits[static_cast<size_t>(t)].load(), t < used ? 1 : 0) << "region " << r;
  }
}

}  // namespace

TEST(KernelPool, EveryShareRunsOnceInsideAndOutsideAForwardPass) {
  KernelPool::instance().set_threads(4);
  regions_cover_every_share(2000);
  {
    KernelPool::ForwardScope hot;
    regions_cover_every_share(2000);
  }
  regions_cover_every_share(200);
}

TEST(KernelPool, ParallelForCoversTheRangeExactlyOnce) {
  KernelPool::instance().set_threads(3);
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    parallel_for(n, 3, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)].load(), 1) << n << " " << i;
  }
}

TEST(KernelPool, ARegionInsideARegionRunsOnItsCaller) {
  KernelPool::instance().set_threads(2);
  std::atomic<int> inner{0};
  KernelPool::instance().run(2, [&](int, int) {
    KernelPool::instance().run(2, [&](int t, int n) {
      EXPECT_EQ(t, 0);
      EXPECT_EQ(n, 1);
      inner.fetch_add(1);
    });
  });
  EXPECT_EQ(inner.load(), 2);  // one inner region per outer share, each all on its caller
}

TEST(KernelPool, TwoThreadsRunningRegionsAtOnceBothFinishEverything) {
  KernelPool::instance().set_threads(2);
  auto work = [](std::atomic<int64_t>& sum) {
    for (int r = 0; r < 500; ++r)
      parallel_for(100, 2, [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) sum.fetch_add(i);
      });
  };
  std::atomic<int64_t> a{0}, b{0};
  std::thread other([&] { work(b); });
  work(a);
  other.join();
  EXPECT_EQ(a.load(), 500 * 4950);
  EXPECT_EQ(b.load(), 500 * 4950);
}

TEST(KernelPool, AnExceptionOnTheCallersShareWaitsForTheWorkers) {
  KernelPool::instance().set_threads(2);
  std::atomic<bool> worker_done{false};
  EXPECT_THROW(KernelPool::instance().run(2,
                                          [&](int t, int) {
                                            if (t == 0) throw std::runtime_error("caller's share failed");
                                            std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                            worker_done.store(true);
                                          }),
               std::runtime_error);
  EXPECT_TRUE(worker_done.load()) << "run() returned before its worker finished";
  regions_cover_every_share(10);  // and the pool still works
}
