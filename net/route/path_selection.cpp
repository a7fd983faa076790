#include "net/route/path_selection.h"

#include "common/error.h"

namespace lookahead::net {

const char* load_balancing_name(LoadBalancing lb) {
  switch (lb) {
    case LoadBalancing::ECMP: return "ecmp";
    case LoadBalancing::SPRAY: return "spray";
    case LoadBalancing::SOURCE: return "source";
    case LoadBalancing::REPS: return "reps";
  }
  return "?";
}

LoadBalancing parse_load_balancing(const std::string& name, const std::string& key) {
  if (name == "ecmp") return LoadBalancing::ECMP;
  if (name == "spray") return LoadBalancing::SPRAY;
  if (name == "source") return LoadBalancing::SOURCE;
  if (name == "reps") return LoadBalancing::REPS;
  fail("{}: unknown load balancing '{}' (expected ecmp, spray, source or reps)", key, name);
}

}  // namespace lookahead::net
