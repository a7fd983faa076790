#pragma once
// The two-tier expert store of the Read-ME serving system: an
// ExpertWeights over a ReadMeModel that keeps (layer, expert) weight slabs in a RAM budget (the
// fast tier) and reads the rest from the model's safetensors file (the slow tier) with O_DIRECT,
// so the page cache does not hide the cost.
//
// Contract:
//   - expert(l, e) blocks until slab (l, e) is resident and returns matrices byte-identical to
//     ReadMeModel::expert(l, e), pointing into the store's own buffers. They stay valid until the
//     next expert() call: the last returned slab is pinned until then, and may be evicted after.
//     Thread-safe (one mutex), but the pin assumes one caller (the forward pass).
//   - set_plan(upcoming) gives the slabs the next forward pass(es) will ask for, in order
//     (replacing the previous plan). Each expert() call consumes the plan: the cursor moves past
//     the first occurrence of the key at or after it (entries skipped over are dropped); a key not
//     found from the cursor on is an off-plan access (served, counted, next use unknown).
//   - Eviction: the policy of expert_cache.h (one implementation, ExpertCache's victim()). belady:
//     the resident whose next use in the plan is furthest (not in the plan = never). lru, random:
//     as there. none: nothing is kept beyond the pinned slab, and nothing is prefetched. A slab
//     larger than the byte budget is read for its access and not kept (like ExpertCache).
//     Slabs in flight and the pinned slab are never evicted.
//   - Prefetch (options.prefetch, not under none): after set_plan and after each expert() call,
//     loads start (on the reader threads) for the next plan entries that are not resident, in plan
//     order, while the budget allows without evicting a slab whose next use comes at or before the
//     prefetched slab's use (and never the pinned or an in-flight one); the first entry that cannot
//     get room ends the walk. With prefetch off, loads happen only on demand, inside expert().
//     The walk trades slow-tier bytes for overlap: a slab evicted to make room ahead is read again
//     at its own next use. conservative_prefetch (belady) evicts only the slab demand Belady would
//     evict at the prefetched slab's use, and waits when that slab is still needed before it, so
//     loads equal prefetch off's and only their timing changes.
//   - Demand loads are read by the calling thread; prefetches by `readers` threads with pread.
//   - O_DIRECT: each slab's read covers the aligned (kDirectIoAlign) range enclosing its bytes,
//     into an aligned buffer. Where open(O_DIRECT) or an O_DIRECT read fails with EINVAL (tmpfs,
//     overlayfs), the store falls back to buffered reads followed by posix_fadvise(DONTNEED) on the
//     range; direct_io() says which is in use.
//   - Buffers: a slot's buffer returns to a free list when its slab is evicted and is reused by the
//     next load that fits in it, so in steady state with equal-size slabs nothing is allocated.
//   - Stats: every access is exactly one of a hit (the slab was resident and loaded when asked),
//     an in-flight use (a prefetch had started its load but not finished it: expert() waited for
//     it, a stall, never counted as a hit) or a miss (not resident: read on demand). Of the hits,
//     prefetched_hits are first uses of a slab a prefetch loaded (in time), the rest found the
//     slab kept since an earlier use. bytes_read sums the slab sizes loaded from the slow tier (ReadMeModel::slab(l, e).bytes, as
//     expert_cache.h's bytes_loaded; the aligned reads add at most 2 * kDirectIoAlign per load);
//     stall_seconds is the time expert() waited for a load (demand reads included); read_seconds
//     is the summed time spent inside reads (demand and prefetch).
//   - Bad options (readers outside 1..64, negative slab count, no capacity unless policy none), an
//     unreadable model file and a (layer, expert) outside the model throw lookahead::Error naming
//     what was wrong. A failed read (I/O error, short file) throws from expert() with the file
//     and offset.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "moe/model/experts.h"
#include "moe/model/readme_model.h"
#include "moe/serving/expert_cache.h"

namespace lookahead::moe::serving {

constexpr uint64_t kDirectIoAlign = 4096;

struct TierOptions {
  CachePolicy policy = CachePolicy::BELADY;
  CacheCapacity capacity;  // k slabs and/or bytes
  bool prefetch = true;
  int readers = 2;          // prefetch reader threads
  bool direct_io = true;    // O_DIRECT; false = buffered pread (tests, filesystems without O_DIRECT)
  uint64_t seed = 0;        // the random policy's generator
  // belady only: prefetch a slab only by evicting the slab demand Belady would evict at its use
  // (Cao et al.'s conservative integrated prefetching): as many slow-tier loads as prefetch off,
  // started earlier where the budget allows. Default (false): the aggressive walk above.
  bool conservative_prefetch = false;
  // Tests only: called on a reader thread just before it reads a prefetched slab (unlocked), so a
  // test can hold a load in flight without depending on timing. Empty in production.
  std::function<void(const SlabKey&)> before_prefetch_read;
};

struct TierStats {
  // accesses = hits + in_flight_uses + misses
  uint64_t accesses = 0;
  uint64_t hits = 0;                             // resident and loaded when asked: no wait
  uint64_t in_flight_uses = 0;                   // prefetched but still loading when asked: expert() waited (a stall)
  uint64_t misses = 0;                           // not resident: read on demand
  uint64_t prefetched_hits = 0;                  // of the hits, first uses of a slab a prefetch loaded in time
  uint64_t prefetches = 0;                       // loads started ahead of use
  uint64_t bytes_read = 0;                       // slow-tier bytes (slab sizes), prefetched and on demand
  uint64_t prefetch_bytes = 0;                   // of those, read ahead of use (a hit need not mean no read)
  double stall_seconds = 0;                      // time expert() waited for a load
  double stall_cpu_seconds = 0;                  // CPU time of the caller's thread inside those waits (demand reads' syscalls)
  double read_seconds = 0;                       // summed time inside reads (all threads)
  double hit_ratio() const { return accesses ? static_cast<double>(hits) / static_cast<double>(accesses) : 0.0; }
  double in_flight_ratio() const {
    return accesses ? static_cast<double>(in_flight_uses) / static_cast<double>(accesses) : 0.0;
  }
};

class TieredExperts : public ExpertWeights {
 public:
  TieredExperts(const ReadMeModel& model, const TierOptions& options);
  ~TieredExperts() override;
  TieredExperts(const TieredExperts&) = delete;
  TieredExperts& operator=(const TieredExperts&) = delete;

  int32_t n_expert() const override;
  const ExpertFfn& expert(int layer, int32_t e) const override;
  void set_plan(std::vector<SlabKey> upcoming);
  TierStats stats() const;
  void reset_stats();

  // True when reads bypass the page cache (O_DIRECT); false when buffered (requested, or the
  // file system refused O_DIRECT).
  bool direct_io() const { return direct_; }
  // Slabs resident or in flight, in (layer, expert) order (for tests and reports).
  std::vector<SlabKey> residents() const;

 private:
  struct AlignedBuffer {
    uint8_t* data = nullptr;
    uint64_t capacity = 0;
  };
  struct SlabInfo {  // where one (layer, expert) lives in the file
    int file = 0;
    uint64_t offset = 0, bytes = 0;          // the slab
    uint64_t read_offset = 0, read_bytes = 0;  // the aligned range enclosing it
    ExpertFfn layout;                        // types and shapes (data pointers unused)
    uint64_t gate_at = 0, up_at = 0, down_at = 0;  // matrix offsets from read_offset
  };
  struct Slot {
    SlabKey key;
    AlignedBuffer buffer;
    ExpertFfn ffn;
    bool loaded = false;
    bool prefetched_unused = false;  // loaded (or loading) by a prefetch and not used since
  };
  struct ReadJob {
    Slot* slot;
  };

  const SlabInfo& info(const SlabKey& key) const;
  void check_key(int layer, int32_t e) const;
  AlignedBuffer take_buffer(uint64_t bytes) const;            // mutex held
  void release_buffer(AlignedBuffer buffer) const;            // mutex held
  Slot* new_slot(const SlabKey& key) const;                   // mutex held
  void evict(const SlabKey& key) const;                       // mutex held
  void read_slab(Slot& slot) const;                           // mutex NOT held
  void refresh_next_uses() const;                             // mutex held
  uint64_t plan_next(const SlabKey& key, uint64_t from) const;  // first plan position >= from, or kNever
  void prefetch_walk(std::unique_lock<std::mutex>& lock) const;  // mutex held
  void reader_loop();

  const ReadMeModel& model_;
  TierOptions options_;
  bool direct_ = false;
  std::vector<int> fds_;
  std::vector<std::string> files_;
  std::vector<std::vector<SlabInfo>> slabs_;  // [layer][expert]

  mutable std::mutex mutex_;
  mutable std::condition_variable loaded_cv_;  // a load finished (or failed)
  mutable std::condition_variable jobs_cv_;    // a read job was queued, or stopping
  mutable ExpertCache cache_;                  // residency + policy (in-flight slabs included)
  mutable std::unordered_map<SlabKey, std::unique_ptr<Slot>, SlabKeyHash> slots_;
  mutable std::unique_ptr<Slot> unkept_;       // the pinned slab when it is not kept (none / oversize)
  mutable std::vector<AlignedBuffer> free_buffers_;
  mutable std::deque<ReadJob> jobs_;
  mutable int in_flight_ = 0;
  mutable std::string read_error_;             // first failed prefetch read, rethrown by expert()
  mutable bool have_pin_ = false;
  mutable SlabKey pinned_;
  mutable std::vector<SlabKey> plan_;
  mutable std::unordered_map<SlabKey, std::vector<uint64_t>, SlabKeyHash> plan_positions_;
  mutable uint64_t cursor_ = 0;
  mutable uint64_t now_ = 0;
  mutable TierStats stats_;
  bool stopping_ = false;
  std::vector<std::thread> readers_;
};

}  // namespace lookahead::moe::serving
