#include "net/balance/failed_paths.h"

#include <vector>

namespace lookahead::net::balance {

int FailedPaths::timeout(int src, int dst, int path, uint64_t now_ps, uint64_t spread) {
  auto& marks = until_[{src, topo_.tor_of(dst)}];
  if (marks.find(path) == marks.end()) ++learned_;
  marks[path] = now_ps + hold_ps_;
  const int count = topo_.path_count(src, dst);
  // Never every path: a timeout is also what a deep queue causes (a 200 us RTO against a 64 MB
  // shared buffer), so marks add up over a long run until a source holds all its paths to a leaf
  // failed, and then it could neither plan around nor move off the one that is. Marking the last
  // unmarked path forgets the oldest mark instead (the stalest evidence); a path that keeps
  // failing is marked again at its next timeout.
  int held = 0;
  auto oldest = marks.end();
  for (auto it = marks.begin(); it != marks.end(); ++it) {
    if (it->second <= now_ps) continue;
    ++held;
    if (it->first != path && (oldest == marks.end() || it->second < oldest->second)) oldest = it;
  }
  if (held >= count && oldest != marks.end()) oldest->second = now_ps;  // expired (kept: learned() counts distinct paths)
  std::vector<int> healthy;  // the other paths not known failed, cyclically from `path`
  for (int k = 1; k < count; ++k) {
    int next = (path + k) % count;
    if (!known_failed(src, dst, next, now_ps)) healthy.push_back(next);
  }
  return healthy.empty() ? -1 : healthy[spread % healthy.size()];
}

bool FailedPaths::known_failed(int src, int dst, int path, uint64_t now_ps) const {
  auto it = until_.find({src, topo_.tor_of(dst)});
  if (it == until_.end()) return false;
  auto p = it->second.find(path);
  return p != it->second.end() && p->second > now_ps;
}

}  // namespace lookahead::net::balance
