#include "net/sim/config.h"

#include "common/error.h"

namespace lookahead::net {

const char* congestion_control_name(CongestionControl cc) {
  switch (cc) {
    case CongestionControl::dctcp: return "dctcp";
    case CongestionControl::dcqcn: return "dcqcn";
    case CongestionControl::none: return "none";
  }
  return "?";
}

CongestionControl parse_congestion_control(const std::string& name, const std::string& key) {
  if (name == "dctcp") return CongestionControl::dctcp;
  if (name == "dcqcn") return CongestionControl::dcqcn;
  if (name == "none") return CongestionControl::none;
  fail("{}: expected dctcp, dcqcn or none, got '{}'", key, name);
}

const char* reps_state_name(RepsState state) { return state == RepsState::connection ? "connection" : "qp"; }

RepsState parse_reps_state(const std::string& name, const std::string& key) {
  if (name == "connection") return RepsState::connection;
  if (name == "qp") return RepsState::qp;
  fail("{}: expected connection or qp, got '{}'", key, name);
}

}  // namespace lookahead::net
