#include "net/sim/config.h"

#include "common/error.h"

namespace lookahead::net {

const char* congestion_control_name(CongestionControl cc) {
  switch (cc) {
    case CongestionControl::DCTCP: return "dctcp";
    case CongestionControl::DCQCN: return "dcqcn";
    case CongestionControl::NONE: return "none";
  }
  return "?";
}

CongestionControl parse_congestion_control(const std::string& name, const std::string& key) {
  if (name == "dctcp") return CongestionControl::DCTCP;
  if (name == "dcqcn") return CongestionControl::DCQCN;
  if (name == "none") return CongestionControl::NONE;
  fail("{}: expected dctcp, dcqcn or none, got '{}'", key, name);
}

const char* reps_state_name(RepsState state) { return state == RepsState::CONNECTION ? "connection" : "qp"; }

RepsState parse_reps_state(const std::string& name, const std::string& key) {
  if (name == "connection") return RepsState::CONNECTION;
  if (name == "qp") return RepsState::QP;
  fail("{}: expected connection or qp, got '{}'", key, name);
}

}  // namespace lookahead::net
