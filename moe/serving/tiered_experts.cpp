#include "moe/serving/tiered_experts.h"


#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/cpu_time.h"
#include "common/error.h"

namespace lookahead::moe::serving {



namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t align_down(uint64_t x) { return x & ~(kDirectIoAlign - 1); }
uint64_t align_up(uint64_t x) { return align_down(x + kDirectIoAlign - 1); }

// Reads [offset, offset + bytes) or up to end of file; returns the bytes read.
uint64_t pread_all(int fd, uint8_t* dst, uint64_t offset, uint64_t bytes, const std::string& file) {
  constexpr uint64_t kChunk = uint64_t{64} << 20;  // keeps each request well under the 2 GiB read limit
  uint64_t done = 0;
  while (done < bytes) {
    const size_t want = static_cast<size_t>(std::min(kChunk, bytes - done));
    const ssize_t n = ::pread(fd, dst + done, want, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{}: read of {} bytes at offset {} failed: {}", file, want, offset + done, std::strerror(errno));
    }
    if (n == 0) break;  // end of file
    done += static_cast<uint64_t>(n);
  }
  return done;
}

}  // namespace

TieredExperts::TieredExperts(const ReadMeModel& model, const TierOptions& options)
    : model_(model), options_(options), cache_(options.policy, options.capacity, options.seed) {
  if (options.readers < 1 || options.readers > 64)
    fail("tiered experts: readers must be in 1..64, got {}", options.readers);
  const int n_layer = model.backbone().hparams().n_layer;
  const int32_t N = model.n_expert();
  std::map<std::string, int> file_index;
  slabs_.assign(static_cast<size_t>(n_layer), std::vector<SlabInfo>(static_cast<size_t>(N)));
  for (int l = 0; l < n_layer; ++l) {
    for (int32_t e = 0; e < N; ++e) {
      const ReadMeModel::Slab slab = model.slab(l, e);
      auto [it, added] = file_index.emplace(slab.file, static_cast<int>(files_.size()));
      if (added) files_.push_back(slab.file);
      SlabInfo& si = slabs_[static_cast<size_t>(l)][static_cast<size_t>(e)];
      si.file = it->second;
      si.offset = slab.offset;
      si.bytes = slab.bytes;
      si.read_offset = align_down(slab.offset);
      si.read_bytes = align_up(slab.offset + slab.bytes) - si.read_offset;
      si.layout = model.expert(l, e);
      auto at = [&](const char* proj) {
        const TensorView* t = model.source().raw_tensor(expert_tensor_name(l, proj, e));
        LOOKAHEAD_CHECK(t != nullptr && t->file_offset >= slab.offset && t->file_offset + t->bytes <= slab.offset + slab.bytes);
        return t->file_offset - si.read_offset;
      };
      si.gate_at = at("gate");
      si.up_at = at("up");
      si.down_at = at("down");
    }
  }

  // O_DIRECT where the file system allows it: probe with one aligned read, since some file
  // systems accept the open and refuse the read.
  direct_ = options.direct_io;
  for (const std::string& file : files_) {
    int fd = -1;
    if (direct_) {
      fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
      if (fd < 0 && errno != EINVAL) fail("{}: cannot open: {}", file, std::strerror(errno));
      if (fd >= 0) {
        void* probe = std::aligned_alloc(kDirectIoAlign, kDirectIoAlign);
        const ssize_t n = ::pread(fd, probe, kDirectIoAlign, 0);
        const int err = errno;
        std::free(probe);
        if (n < 0 && err != EINVAL) {
          ::close(fd);
          fail("{}: cannot read: {}", file, std::strerror(err));
        }
        if (n < 0) ::close(fd), fd = -1;
      }
      if (fd < 0) direct_ = false;  // EINVAL: this file system has no O_DIRECT
    }
    fds_.push_back(fd);
  }
  if (!direct_) {
    for (size_t i = 0; i < files_.size(); ++i) {
      if (fds_[i] >= 0) ::close(fds_[i]);
      fds_[i] = ::open(files_[i].c_str(), O_RDONLY | O_CLOEXEC);
      if (fds_[i] < 0) fail("{}: cannot open: {}", files_[i], std::strerror(errno));
    }
  }
  for (int i = 0; i < options.readers; ++i) readers_.emplace_back([this] { reader_loop(); });
}

TieredExperts::~TieredExperts() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  jobs_cv_.notify_all();
  for (std::thread& t : readers_) t.join();
  for (auto& [key, slot] : slots_) std::free(slot->buffer.data);
  if (unkept_) std::free(unkept_->buffer.data);
  for (const AlignedBuffer& b : free_buffers_) std::free(b.data);
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

int32_t TieredExperts::n_expert() const { return model_.n_expert(); }

void TieredExperts::check_key(int layer, int32_t e) const {
  if (layer < 0 || layer >= static_cast<int>(slabs_.size()) || e < 0 || e >= model_.n_expert())
    fail("tiered experts: no slab (layer {}, expert {}) (model has {} layers, {} experts)", layer, e, slabs_.size(),
         model_.n_expert());
}

const TieredExperts::SlabInfo& TieredExperts::info(const SlabKey& key) const {
  return slabs_[static_cast<size_t>(key.layer)][static_cast<size_t>(key.expert)];
}

TieredExperts::AlignedBuffer TieredExperts::take_buffer(uint64_t bytes) const {
  // Smallest free buffer that holds the slab.
  auto best = free_buffers_.end();
  for (auto it = free_buffers_.begin(); it != free_buffers_.end(); ++it)
    if (it->capacity >= bytes && (best == free_buffers_.end() || it->capacity < best->capacity)) best = it;
  if (best != free_buffers_.end()) {
    AlignedBuffer b = *best;
    free_buffers_.erase(best);
    return b;
  }
  // None fits: drop the smaller ones (with unequal slabs they would pile up) and allocate.
  std::erase_if(free_buffers_, [bytes](const AlignedBuffer& b) {
    if (b.capacity < bytes) std::free(b.data);
    return b.capacity < bytes;
  });
  const uint64_t capacity = align_up(bytes);
  auto* data = static_cast<uint8_t*>(std::aligned_alloc(kDirectIoAlign, static_cast<size_t>(capacity)));
  if (!data) fail("tiered experts: cannot allocate a {}-byte slab buffer", capacity);
  return {data, capacity};
}

void TieredExperts::release_buffer(AlignedBuffer buffer) const {
  if (buffer.data) free_buffers_.push_back(buffer);
}

TieredExperts::Slot* TieredExperts::new_slot(const SlabKey& key) const {
  auto slot = std::make_unique<Slot>();
  const SlabInfo& si = info(key);
  slot->key = key;
  slot->buffer = take_buffer(si.read_bytes);
  slot->ffn = si.layout;
  slot->ffn.gate.data = slot->buffer.data + si.gate_at;
  slot->ffn.up.data = slot->buffer.data + si.up_at;
  slot->ffn.down.data = slot->buffer.data + si.down_at;
  Slot* raw = slot.get();
  slots_[key] = std::move(slot);
  return raw;
}

void TieredExperts::evict(const SlabKey& key) const {
  cache_.erase(key);
  auto it = slots_.find(key);
  LOOKAHEAD_CHECK(it != slots_.end() && it->second->loaded);
  release_buffer(it->second->buffer);
  slots_.erase(it);
}

void TieredExperts::read_slab(Slot& slot) const {
  const SlabInfo& si = info(slot.key);
  const std::string& file = files_[static_cast<size_t>(si.file)];
  const int fd = fds_[static_cast<size_t>(si.file)];
  const uint64_t got = pread_all(fd, slot.buffer.data, si.read_offset, si.read_bytes, file);
  // O_DIRECT may stop at end of file inside the last aligned block; the slab itself must be whole.
  if (got < si.offset + si.bytes - si.read_offset)
    fail("{}: short read at offset {}: {} of {} bytes (file truncated?)", file, si.read_offset, got,
         si.offset + si.bytes - si.read_offset);
  if (!direct_) ::posix_fadvise(fd, static_cast<off_t>(si.read_offset), static_cast<off_t>(si.read_bytes), POSIX_FADV_DONTNEED);
}

uint64_t TieredExperts::plan_next(const SlabKey& key, uint64_t from) const {
  auto it = plan_positions_.find(key);
  if (it == plan_positions_.end()) return ExpertCache::kNever;
  auto pos = std::lower_bound(it->second.begin(), it->second.end(), from);
  return pos == it->second.end() ? ExpertCache::kNever : *pos;
}

void TieredExperts::refresh_next_uses() const {
  for (const auto& [key, slot] : slots_) cache_.set_next_use(key, plan_next(key, cursor_));
}

void TieredExperts::set_plan(std::vector<SlabKey> upcoming) {
  for (const SlabKey& k : upcoming) check_key(k.layer, k.expert);
  std::unique_lock<std::mutex> lock(mutex_);
  plan_ = std::move(upcoming);
  plan_positions_.clear();
  for (uint64_t i = 0; i < plan_.size(); ++i) plan_positions_[plan_[i]].push_back(i);
  cursor_ = 0;
  refresh_next_uses();
  prefetch_walk(lock);
}

void TieredExperts::prefetch_walk(std::unique_lock<std::mutex>&) const {
  if (!options_.prefetch || options_.policy == CachePolicy::NONE) return;
  for (uint64_t p = cursor_; p < plan_.size(); ++p) {
    const SlabKey key = plan_[p];
    if (slots_.count(key)) continue;  // resident or in flight
    const SlabInfo& si = info(key);
    if (cache_.never_fits(si.bytes)) continue;  // read on demand, never kept
    while (!cache_.fits(si.bytes)) {
      // Only slabs not needed before this one's use (p), loaded, and not pinned.
      auto evictable_now = [&](const SlabKey& k, uint64_t next_use) {
        return next_use > p && slots_.at(k)->loaded && !(have_pin_ && k == pinned_);
      };
      std::optional<SlabKey> victim;
      if (options_.conservative_prefetch && options_.policy == CachePolicy::BELADY) {
        // Belady's victim at p: the resident whose next use after p is furthest (ties: lowest key,
        // preferring one evictable now). If that slab cannot go yet, wait for a later walk.
        uint64_t furthest = 0;
        for (const auto& [k, slot] : slots_) furthest = std::max(furthest, plan_next(k, p + 1));
        for (const SlabKey& k : cache_.residents())
          if (plan_next(k, p + 1) == furthest && evictable_now(k, cache_.next_use(k))) {
            victim = k;
            break;
          }
      } else {
        victim = cache_.victim(evictable_now);
      }
      if (!victim) return;
      evict(*victim);
    }
    cache_.insert(key, si.bytes, now_, p);
    Slot* slot = new_slot(key);
    slot->prefetched_unused = true;
    jobs_.push_back({slot});
    ++in_flight_;
    ++stats_.prefetches;
    stats_.bytes_read += si.bytes;
    stats_.prefetch_bytes += si.bytes;
    jobs_cv_.notify_one();
  }
}

const ExpertFfn& TieredExperts::expert(int layer, int32_t e) const {
  check_key(layer, e);
  const SlabKey key{layer, e};
  std::unique_lock<std::mutex> lock(mutex_);
  if (!read_error_.empty()) fail("tiered experts: an earlier read failed: {}", read_error_);
  ++stats_.accesses;
  ++now_;
  // Consume the plan: skip to this key's next occurrence, if any.
  uint64_t next_use = ExpertCache::kNever;
  if (const uint64_t pos = plan_next(key, cursor_); pos != ExpertCache::kNever) {
    cursor_ = pos + 1;
    next_use = plan_next(key, cursor_);
  }
  // The previous call's slab is released now.
  have_pin_ = false;
  if (unkept_) {
    release_buffer(unkept_->buffer);
    unkept_.reset();
  }
  refresh_next_uses();

  Slot* slot = nullptr;
  if (auto it = slots_.find(key); it != slots_.end()) {
    cache_.touch(key, now_, next_use);
    slot = it->second.get();
    if (slot->loaded) {
      ++stats_.hits;
      if (slot->prefetched_unused) ++stats_.prefetched_hits;
    } else {  // in flight from a prefetch: the caller waits for it, a stall and not a hit
      ++stats_.in_flight_uses;
      const auto t0 = std::chrono::steady_clock::now();
      loaded_cv_.wait(lock, [&] { return slot->loaded || !read_error_.empty(); });
      stats_.stall_seconds += seconds_since(t0);
      if (!slot->loaded) fail("tiered experts: {}", read_error_);
    }
    slot->prefetched_unused = false;
  } else {
    ++stats_.misses;
    const SlabInfo& si = info(key);
    if (cache_.never_fits(si.bytes)) {
      unkept_ = std::make_unique<Slot>();
      unkept_->key = key;
      unkept_->buffer = take_buffer(si.read_bytes);
      unkept_->ffn = si.layout;
      unkept_->ffn.gate.data = unkept_->buffer.data + si.gate_at;
      unkept_->ffn.up.data = unkept_->buffer.data + si.up_at;
      unkept_->ffn.down.data = unkept_->buffer.data + si.down_at;
      slot = unkept_.get();
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      while (!cache_.fits(si.bytes)) {
        const std::optional<SlabKey> victim =
            cache_.victim([&](const SlabKey& k, uint64_t) { return slots_.at(k)->loaded; });
        if (victim) {
          evict(*victim);
          continue;
        }
        // Everything resident is in flight: wait for a load to land, then evict it.
        LOOKAHEAD_CHECK(in_flight_ > 0);
        loaded_cv_.wait(lock);
        if (!read_error_.empty()) fail("tiered experts: {}", read_error_);
      }
      stats_.stall_seconds += seconds_since(t0);
      cache_.insert(key, si.bytes, now_, next_use);
      slot = new_slot(key);
    }
    stats_.bytes_read += si.bytes;
    // The demand read runs here, unlocked; the slot is not loaded, so nothing evicts it meanwhile.
    lock.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = thread_cpu_seconds();
    std::string error;
    try {
      read_slab(*slot);
    } catch (const Error& err) {
      error = err.what();
    }
    const double took = seconds_since(t0), cpu = thread_cpu_seconds() - cpu0;
    lock.lock();
    stats_.stall_seconds += took;
    stats_.stall_cpu_seconds += cpu;
    stats_.read_seconds += took;
    if (!error.empty()) {
      if (slot != unkept_.get()) {
        cache_.erase(key);
        release_buffer(slot->buffer);
        slots_.erase(key);
      }
      throw Error(error);
    }
    slot->loaded = true;
  }
  pinned_ = key;
  have_pin_ = true;
  prefetch_walk(lock);
  return slot->ffn;
}

void TieredExperts::reader_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    jobs_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    const ReadJob job = jobs_.front();
    jobs_.pop_front();
    lock.unlock();
    if (options_.before_prefetch_read) options_.before_prefetch_read(job.slot->key);
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
      read_slab(*job.slot);
    } catch (const Error& err) {
      error = err.what();
    }
    const double took = seconds_since(t0);
    lock.lock();
    stats_.read_seconds += took;
    --in_flight_;
    if (error.empty()) {
      job.slot->loaded = true;
    } else if (read_error_.empty()) {
      read_error_ = error;
    }
    loaded_cv_.notify_all();
  }
}

TierStats TieredExperts::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void TieredExperts::reset_stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_ = TierStats{};
}

std::vector<SlabKey> TieredExperts::residents() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<SlabKey> keys;
  for (const auto& [key, slot] : slots_) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace lookahead::moe::serving
