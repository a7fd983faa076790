#include "net/balance/failed_paths.h"

namespace lookahead::net::balance {

int FailedPaths::timeout(int src, int dst, int path, uint64_t now_ps) {
  auto& marks = until_[{src, topo_.tor_of(dst)}];
  if (marks.find(path) == marks.end()) ++learned_;
  marks[path] = now_ps + hold_ps_;
  const int count = topo_.path_count(src, dst);
  for (int k = 1; k < count; ++k) {
    int next = (path + k) % count;
    if (!known_failed(src, dst, next, now_ps)) return next;
  }
  return -1;
}

bool FailedPaths::known_failed(int src, int dst, int path, uint64_t now_ps) const {
  auto it = until_.find({src, topo_.tor_of(dst)});
  if (it == until_.end()) return false;
  auto p = it->second.find(path);
  return p != it->second.end() && p->second > now_ps;
}

}  // namespace lookahead::net::balance
