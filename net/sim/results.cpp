#include "net/sim/results.h"

#include <fmt/format.h>

#include "common/stats.h"
#include "net/topo/topology.h"

namespace lookahead::net {

namespace {
double us(SimTime ps) { return static_cast<double>(ps) / 1e6; }
nlohmann::json us_or_null(SimTime ps) { return ps == kNever ? nlohmann::json(nullptr) : nlohmann::json(us(ps)); }
}  // namespace

const char* flow_state(const FlowResult& f) {
  if (f.failed) return "failed";
  if (f.finish_ps != kNever) return "finished";
  if (f.start_ps == kNever) return "not_started";
  return "unfinished";
}

FlowSummary summarise(const SimResult& r) {
  FlowSummary s;
  std::vector<double> fct;
  for (const auto& f : r.flows) {
    ++s.flows;
    if (f.failed) ++s.failed;
    if (f.start_ps == kNever) ++s.not_started;
    if (f.finish_ps == kNever) continue;
    ++s.finished;
    fct.push_back(us(f.finish_ps - f.start_ps));
    s.last_finish_us = std::max(s.last_finish_us, us(f.finish_ps));
  }
  if (!fct.empty()) {
    s.mean_fct_us = mean(fct);
    s.p50_fct_us = percentile(fct, 50);
    s.p99_fct_us = percentile(fct, 99);
    s.max_fct_us = percentile(fct, 100);
  }
  for (const auto& l : r.links) {
    s.max_link_utilisation = std::max(s.max_link_utilisation, l.utilisation);
    s.max_queue_bytes = std::max(s.max_queue_bytes, l.max_queue_bytes);
  }
  return s;
}

nlohmann::json results_json(const SimResult& r, const Topology& t, bool include_links) {
  using nlohmann::json;
  FlowSummary s = summarise(r);
  json j;
  j["summary"] = {{"end_us", us(r.end_ps)},
                  {"all_finished", r.all_finished},
                  {"flows", s.flows},
                  {"finished", s.finished},
                  {"failed", s.failed},
                  {"not_started", s.not_started},
                  {"mean_fct_us", s.mean_fct_us},
                  {"p50_fct_us", s.p50_fct_us},
                  {"p99_fct_us", s.p99_fct_us},
                  {"max_fct_us", s.max_fct_us},
                  {"last_finish_us", s.last_finish_us},
                  {"events", r.events},
                  {"drops", r.drops},
                  {"ecn_marks", r.ecn_marks},
                  {"pauses", r.pauses},
                  {"retransmits", r.retransmits},
                  {"timeouts", r.timeouts},
                  {"max_link_utilisation", s.max_link_utilisation},
                  {"max_queue_bytes", s.max_queue_bytes},
                  {"conserved", r.conserved()}};
  json flows = json::array();
  for (const auto& f : r.flows) {
    flows.push_back({{"id", f.id},
                     {"src", f.src},
                     {"dst", f.dst},
                     {"bytes", f.bytes},
                     {"group", f.group},
                     {"lb", f.lb},
                     {"start_us", us_or_null(f.start_ps)},
                     {"finish_us", us_or_null(f.finish_ps)},
                     {"fct_us", f.finish_ps == kNever ? json(nullptr) : json(us(f.finish_ps - f.start_ps))},
                     {"state", flow_state(f)},
                     {"receiver_done_us", us_or_null(f.receiver_done_ps)},
                     {"failed_us", us_or_null(f.failed_ps)},
                     {"sent_packets", f.sent_packets},
                     {"retransmits", f.retransmits},
                     {"dropped", f.dropped},
                     {"ecn_acks", f.ecn_acks},
                     {"timeouts", f.timeouts}});
  }
  j["flows"] = std::move(flows);
  json groups = json::array();
  for (const auto& g : r.groups)
    groups.push_back({{"name", g.name},
                      {"flows", g.flows},
                      {"finished", g.finished},
                      {"failed", g.failed},
                      {"state", g.failed > 0 ? "failed" : g.finished == g.flows ? "finished" : "unfinished"},
                      {"start_us", us_or_null(g.start_ps)},
                      {"finish_us", us_or_null(g.finish_ps)},
                      {"completion_us", g.finish_ps == kNever || g.start_ps == kNever ? json(nullptr) : json(us(g.finish_ps - g.start_ps))}});
  j["groups"] = std::move(groups);
  if (include_links) {
    json links = json::array();
    for (const auto& l : r.links) {
      if (l.tx_packets == 0 && l.drops == 0) continue;
      links.push_back({{"id", l.id},
                       {"from", node_name(t, l.from)},
                       {"to", node_name(t, l.to)},
                       {"gbps", static_cast<double>(l.rate_bps) / 1e9},
                       {"tx_bytes", l.tx_bytes},
                       {"utilisation", l.utilisation},
                       {"max_queue_bytes", l.max_queue_bytes},
                       {"p50_queue_bytes", l.p50_queue_bytes},
                       {"p99_queue_bytes", l.p99_queue_bytes},
                       {"drops", l.drops},
                       {"ecn_marks", l.ecn_marks},
                       {"pauses", l.pauses},
                       {"paused_us", us(l.paused_ps)}});
    }
    j["links"] = std::move(links);
  }
  return j;
}

std::string flows_csv(const SimResult& r) {
  std::string out =
      "id,src,dst,bytes,group,lb,start_us,finish_us,fct_us,sent_packets,retransmits,dropped,ecn_acks,timeouts,state,receiver_done_us,"
      "failed_us\n";
  for (const auto& f : r.flows) {
    std::string fin = f.finish_ps == kNever ? "" : fmt::format("{}", us(f.finish_ps));
    std::string fct = f.finish_ps == kNever ? "" : fmt::format("{}", us(f.finish_ps - f.start_ps));
    std::string start = f.start_ps == kNever ? "" : fmt::format("{}", us(f.start_ps));
    std::string rx = f.receiver_done_ps == kNever ? "" : fmt::format("{}", us(f.receiver_done_ps));
    std::string failed = f.failed_ps == kNever ? "" : fmt::format("{}", us(f.failed_ps));
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", f.id, f.src, f.dst, f.bytes, f.group, f.lb, start, fin, fct,
                       f.sent_packets, f.retransmits, f.dropped, f.ecn_acks, f.timeouts, flow_state(f), rx, failed);
  }
  return out;
}

std::string links_csv(const SimResult& r, const Topology& t) {
  std::string out = "id,from,to,gbps,tx_bytes,utilisation,max_queue_bytes,p50_queue_bytes,p99_queue_bytes,drops,ecn_marks,pauses,paused_us\n";
  for (const auto& l : r.links)
    out += fmt::format("{},{},{},{},{},{:.6f},{},{},{},{},{},{},{}\n", l.id, node_name(t, l.from), node_name(t, l.to),
                       static_cast<double>(l.rate_bps) / 1e9, l.tx_bytes, l.utilisation, l.max_queue_bytes, l.p50_queue_bytes,
                       l.p99_queue_bytes, l.drops, l.ecn_marks, l.pauses, us(l.paused_ps));
  return out;
}

}  // namespace lookahead::net
