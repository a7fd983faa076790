#include "net/route/path_selection.h"

#include "common/error.h"

namespace lookahead::net {

const char* load_balancing_name(LoadBalancing lb) {
  switch (lb) {
    case LoadBalancing::ecmp: return "ecmp";
    case LoadBalancing::spray: return "spray";
    case LoadBalancing::source: return "source";
    case LoadBalancing::reps: return "reps";
  }
  return "?";
}

LoadBalancing parse_load_balancing(const std::string& name, const std::string& key) {
  if (name == "ecmp") return LoadBalancing::ecmp;
  if (name == "spray") return LoadBalancing::spray;
  if (name == "source") return LoadBalancing::source;
  if (name == "reps") return LoadBalancing::reps;
  fail("{}: unknown load balancing '{}' (expected ecmp, spray, source or reps)", key, name);
}

}  // namespace lookahead::net
