// JSON scenario specs and connection-matrix files (formats in spec.h).
#include "net/scenario/spec.h"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"
#include "common/memory_limit.h"

namespace lookahead::net {

using nlohmann::json;

namespace {

std::string read_text(const std::string& path) { return read_input_file(path, ""); }

// Reads typed keys from one JSON object and rejects any key it was not asked about.
class Fields {
 public:
  Fields(const json& object, std::string where) : j_(object), where_(std::move(where)) {
    if (!j_.is_object()) fail("{}: expected an object", where_);
  }
  ~Fields() = default;
  std::string key(const std::string& k) const { return where_ + "." + k; }
  bool has(const std::string& k) {
    used_.insert(k);
    return j_.contains(k);
  }
  const json& at(const std::string& k) { return j_.at(k); }
  template <typename T>
  void read_int(const std::string& k, T& out, double lo, double hi) {
    if (!has(k)) return;
    const json& v = j_.at(k);
    if (!v.is_number()) fail("{}: expected a number", key(k));
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) fail("{}: expected an integer, got {}", key(k), v.dump());
    if (d < lo || d > hi) fail("{}: {} out of range [{}, {}]", key(k), v.dump(), lo, hi);
    out = static_cast<T>(d);
  }
  void read_double(const std::string& k, double& out) {
    if (!has(k)) return;
    const json& v = j_.at(k);
    if (!v.is_number()) fail("{}: expected a number", key(k));
    out = v.get<double>();
    if (!std::isfinite(out)) fail("{}: expected a finite number", key(k));
  }
  // A fraction in [0, 1] ((0, 1] unless zero_ok): probabilities and EWMA gains.
  void read_fraction(const std::string& k, double& out, bool zero_ok) {
    if (!has(k)) return;
    read_double(k, out);
    if (out < 0 || out > 1 || (!zero_ok && out == 0))
      fail("{}: expected a number in {}0, 1], got {}", key(k), zero_ok ? "[" : "(", j_.at(k).dump());
  }
  void read_us(const std::string& k, SimTime& out) {
    if (!has(k)) return;
    double us = -1;
    read_double(k, us);
    if (us < 0 || us > 1e12) fail("{}: expected a time in microseconds >= 0, got {}", key(k), us);
    out = static_cast<SimTime>(std::llround(us * 1e6));
  }
  void read_bool(const std::string& k, bool& out) {
    if (!has(k)) return;
    if (!j_.at(k).is_boolean()) fail("{}: expected true or false", key(k));
    out = j_.at(k).get<bool>();
  }
  void read_string(const std::string& k, std::string& out) {
    if (!has(k)) return;
    if (!j_.at(k).is_string()) fail("{}: expected a string", key(k));
    out = j_.at(k).get<std::string>();
  }
  void reject_unknown() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!used_.count(it.key())) fail("{}: unknown key '{}'", where_, it.key());
  }

 private:
  const json& j_;
  std::string where_;
  std::set<std::string> used_;
};

Topology parse_topology(const json& j, const std::string& where) {
  Fields f(j, where);
  std::string kind;
  f.read_string("kind", kind);
  constexpr double kMax = 1 << 22;
  if (kind == "leaf_spine") {
    LeafSpineSpec s;
    f.read_int("leaves", s.leaves, 0, kMax);
    f.read_int("spines", s.spines, 0, kMax);
    f.read_int("hosts_per_leaf", s.hosts_per_leaf, 0, kMax);
    f.read_int("hosts", s.hosts, 0, kMax);
    f.read_int("parallel_links", s.parallel_links, 0, kMax);
    f.read_double("host_gbps", s.host_gbps);
    f.read_double("fabric_gbps", s.fabric_gbps);
    f.read_double("oversubscription", s.oversubscription);
    f.read_double("host_latency_ns", s.host_latency_ns);
    f.read_double("fabric_latency_ns", s.fabric_latency_ns);
    f.reject_unknown();
    try {
      return build_leaf_spine(s);
    } catch (const Error& e) {
      fail("{}: {}", where, e.what());
    }
  }
  if (kind == "fat_tree") {
    FatTreeSpec s;
    f.read_int("k", s.k, 0, kMax);
    f.read_int("pods", s.pods, 0, kMax);
    f.read_int("tors_per_pod", s.tors_per_pod, 0, kMax);
    f.read_int("aggs_per_pod", s.aggs_per_pod, 0, kMax);
    f.read_int("cores", s.cores, 0, kMax);
    f.read_int("hosts_per_tor", s.hosts_per_tor, 0, kMax);
    f.read_int("hosts", s.hosts, 0, kMax);
    f.read_int("tor_parallel_links", s.tor_parallel_links, 0, kMax);
    f.read_int("core_parallel_links", s.core_parallel_links, 0, kMax);
    f.read_double("host_gbps", s.host_gbps);
    f.read_double("tor_agg_gbps", s.tor_agg_gbps);
    f.read_double("agg_core_gbps", s.agg_core_gbps);
    f.read_double("oversubscription", s.oversubscription);
    f.read_double("host_latency_ns", s.host_latency_ns);
    f.read_double("fabric_latency_ns", s.fabric_latency_ns);
    f.reject_unknown();
    try {
      return build_fat_tree(s);
    } catch (const Error& e) {
      fail("{}: {}", where, e.what());
    }
  }
  fail("{}.kind: expected \"leaf_spine\" or \"fat_tree\", got \"{}\"", where, kind);
}

void parse_network(const json& j, const std::string& where, NetworkConfig& c) {
  Fields f(j, where);
  f.read_int("mtu", c.mtu_bytes, 64, 65000);
  f.read_int("header_bytes", c.header_bytes, 0, 1024);
  f.read_int("port_buffer_bytes", c.port_buffer_bytes, 0, 1e15);
  f.read_int("shared_buffer_bytes", c.shared_buffer_bytes, 0, 1e15);
  f.read_int("ecn_kmin_bytes", c.ecn_kmin_bytes, 0, 1e15);
  f.read_int("ecn_kmax_bytes", c.ecn_kmax_bytes, 0, 1e15);
  f.read_fraction("ecn_pmax", c.ecn_pmax, true);
  f.read_bool("pfc", c.pfc);
  f.read_int("pfc_xoff_bytes", c.pfc_xoff_bytes, 0, 1e15);
  f.read_int("pfc_xon_bytes", c.pfc_xon_bytes, 0, 1e15);
  std::string s;
  if (f.has("cc")) {
    f.read_string("cc", s);
    c.cc = parse_congestion_control(s, f.key("cc"));
  }
  if (f.has("lb")) {
    f.read_string("lb", s);
    c.lb = parse_load_balancing(s, f.key("lb"));
  }
  if (f.has("receiver")) {
    f.read_string("receiver", s);
    if (s == "auto") c.receiver = ReceiverMode::AUTOMATIC;
    else if (s == "in_order") c.receiver = ReceiverMode::IN_ORDER;
    else if (s == "selective") c.receiver = ReceiverMode::SELECTIVE;
    else fail("{}: expected auto, in_order or selective, got \"{}\"", f.key("receiver"), s);
  }
  f.read_int("ack_every", c.ack_every, 1, 1 << 16);
  f.read_int("init_cwnd_bytes", c.init_cwnd_bytes, 0, 1e15);
  f.read_int("max_cwnd_bytes", c.max_cwnd_bytes, 0, 1e15);
  f.read_us("rto_us", c.rto_ps);
  f.read_int("retry_limit", c.retry_limit, 0, 1e9);
  f.read_us("reps_freeze_us", c.reps_freeze_ps);
  if (f.has("reps_state")) {
    f.read_string("reps_state", s);
    c.reps_state = parse_reps_state(s, f.key("reps_state"));
  }
  f.read_fraction("dctcp_g", c.dctcp_g, false);
  f.read_fraction("dctcp_alpha_init", c.dctcp_alpha_init, true);
  f.read_fraction("dcqcn_g", c.dcqcn_g, false);
  f.read_us("dcqcn_period_us", c.dcqcn_period_ps);
  f.read_us("dcqcn_cnp_interval_us", c.dcqcn_cnp_interval_ps);
  f.read_fraction("dcqcn_rai_fraction", c.dcqcn_rai_fraction, false);
  f.reject_unknown();
}

int host_of(const json& v, const Topology& t, const std::string& key) {
  if (v.is_number_integer()) {
    int64_t h = v.get<int64_t>();
    if (h < 0 || h >= t.hosts()) fail("{}: host {} does not exist (topology has {} hosts)", key, h, t.hosts());
    return static_cast<int>(h);
  }
  if (v.is_string()) {
    int n = node_by_name(t, v.get<std::string>(), key);
    if (n >= t.hosts()) fail("{}: '{}' is not a host", key, v.get<std::string>());
    return n;
  }
  fail("{}: expected a host number or name", key);
}

// "jobs": see spec.h. Job ids are resolved after every job is read, so `after` may name later jobs.
void parse_jobs(const json& js, const std::string& where, Scenario& sc) {
  const Topology& t = sc.topology;
  if (!js.is_array()) fail("{}: 'jobs' must be an array", where);
  std::map<std::string, int> index;
  for (size_t i = 0; i < js.size(); ++i)
    if (js[i].is_object() && js[i].contains("id")) {
      const json& id = js[i]["id"];
      if (!id.is_string() || id.get<std::string>().empty()) fail("{}: jobs[{}].id: expected a non-empty string", where, i);
      if (!index.emplace(id.get<std::string>(), static_cast<int>(i)).second)
        fail("{}: jobs[{}].id: duplicate job id \"{}\"", where, i, id.get<std::string>());
    }
  std::vector<Job> jobs;
  for (size_t i = 0; i < js.size(); ++i) {
    std::string at = fmt::format("{}: jobs[{}]", where, i);
    Fields f(js[i], at);
    Job job;
    if (!f.has("id")) fail("{}: missing key 'id'", at);
    job.name = f.at("id").get<std::string>();
    for (const auto& g : sc.workload.groups)
      if (g == job.name) fail("{}: id \"{}\" is also the name of a flow group", at, job.name);
    std::string kind = "allreduce", algo;
    f.read_string("collective", kind);
    f.read_string("algo", algo);
    try {
      job.collective.kind = collective::parse_kind(kind);
      if (algo.empty()) algo = job.collective.kind == collective::Kind::ALL_TO_ALL ? "direct" : "ring";
      job.collective.algorithm = collective::parse_algorithm(algo);
    } catch (const Error& e) {
      fail("{}: {}", at, e.what());
    }
    if (!f.has("size")) fail("{}: missing key 'size'", at);
    const json& size = f.at("size");
    if (size.is_string()) {
      try {
        job.collective.message_bytes = collective::parse_bytes(size.get<std::string>(), f.key("size"));
      } catch (const Error& e) {
        fail("{}: {}", at, e.what());
      }
    } else {
      f.read_int("size", job.collective.message_bytes, 1, 1e13);
    }
    f.read_int("chunks", job.collective.chunks, 1, 1024);
    f.read_bool("rendezvous", job.collective.rendezvous);
    int ranks = t.hosts(), first = 0;
    std::string placement = "linear";
    const bool listed = f.has("hosts");
    if (listed) {
      const json& hosts = f.at("hosts");
      if (!hosts.is_array()) fail("{}: expected an array of hosts", f.key("hosts"));
      for (size_t h = 0; h < hosts.size(); ++h) job.hosts.push_back(host_of(hosts[h], t, fmt::format("{}[{}]", f.key("hosts"), h)));
      if (f.has("ranks") || f.has("first_host") || f.has("placement")) fail("{}: give 'hosts' or 'ranks'/'first_host'/'placement', not both", at);
    }
    f.read_int("ranks", ranks, 2, 1e9);
    f.read_int("first_host", first, 0, 1e9);
    f.read_string("placement", placement);
    if (!listed) {
      if (ranks > t.hosts()) fail("{}: {} ranks do not fit on {} hosts (one rank per host)", f.key("ranks"), ranks, t.hosts());
      if (placement == "random") {
        if (first != 0) fail("{}: 'first_host' applies to linear placement only", at);
        job.hosts = collective::place_ranks(ranks, t.hosts(), collective::Placement::RANDOM,
                                            sc.network.seed * 1000003ull + static_cast<uint64_t>(i));
      } else if (placement == "linear") {
        if (first + ranks > t.hosts())
          fail("{}: ranks {} from first_host {} run past the last host ({} hosts)", at, ranks, first, t.hosts());
        for (int r = 0; r < ranks; ++r) job.hosts.push_back(first + r);
      } else {
        fail("{}: expected \"linear\" or \"random\", got \"{}\"", f.key("placement"), placement);
      }
    }
    job.collective.ranks = static_cast<int>(job.hosts.size());
    f.read_us("start_us", job.start_ps);
    f.read_us("jitter_us", job.jitter_ps);
    if (f.has("after")) {
      const json& after = f.at("after");
      auto add = [&](const json& a) {
        if (!a.is_string()) fail("{}: expected job ids", f.key("after"));
        auto it = index.find(a.get<std::string>());
        if (it == index.end()) fail("{}: unknown job \"{}\"", f.key("after"), a.get<std::string>());
        job.after.push_back(it->second);
      };
      if (after.is_array()) {
        for (const json& a : after) add(a);
      } else {
        add(after);
      }
    }
    f.reject_unknown();
    jobs.push_back(std::move(job));
  }
  auto collectives = expand_jobs(jobs, t.hosts(), where + ": jobs");
  sc.job_flows_begin = sc.workload.flows.size();
  add_jobs(sc.workload, jobs, collectives, sc.network.seed);
  sc.jobs = std::move(jobs);
}

}  // namespace

void add_generated(Workload& w, const Topology& t, const std::string& kind, uint64_t bytes, uint64_t seed, int receiver, int senders,
                   const std::string& key) {
  if (bytes == 0) fail("{}: 'bytes' must be positive", key);
  // Each flow costs about 1.1 KB once simulated (measured: all_to_all on fat_tree k=8 and k=12).
  const double hosts = t.hosts();
  const double flows = kind == "all_to_all" ? hosts * (hosts - 1) : kind == "incast" ? senders : hosts;
  require_memory(flows * 1200.0, fmt::format("{} {} of {:.0f} flows", key, kind, flows));
  if (kind == "permutation") add_permutation(w, t.hosts(), bytes, seed);
  else if (kind == "all_to_all") add_all_to_all(w, t.hosts(), bytes);
  else if (kind == "incast") {
    if (receiver < 0 || receiver >= t.hosts()) fail("{}: 'receiver' host {} does not exist", key, receiver);
    if (senders < 1 || senders >= t.hosts()) fail("{}: 'senders' must be in [1, {}], got {}", key, t.hosts() - 1, senders);
    add_incast(w, senders, receiver, bytes);
  } else {
    fail("{}: unknown workload kind \"{}\" (expected permutation, all_to_all or incast)", key, kind);
  }
}

Scenario parse_scenario(const std::string& text, const std::string& where, const std::string& base_dir) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999999
    fail("{}: invalid JSON: {}", where, e.what());
  }
  Fields top(j, where);
  if (!top.has("topology")) fail("{}: missing key 'topology'", where);
  Scenario sc{parse_topology(top.at("topology"), where + ": topology"), {}, {}, {}, kNever, {}, 0};
  if (top.has("network")) parse_network(top.at("network"), where + ": network", sc.network);
  top.read_int("seed", sc.network.seed, 0, 9e15);
  top.read_us("until_us", sc.until_ps);
  top.has("about");  // free-form provenance (JSON has no comments): what generated the spec, and how
  const Topology& t = sc.topology;
  if (top.has("workload")) {
    Fields f(top.at("workload"), where + ": workload");
    std::string kind;
    uint64_t bytes = 0, seed = sc.network.seed;
    int receiver = 0, senders = t.hosts() - 1;
    f.read_string("kind", kind);
    f.read_int("bytes", bytes, 1, 1e13);
    f.read_int("seed", seed, 0, 9e15);
    f.read_int("receiver", receiver, 0, 1e9);
    f.read_int("senders", senders, 1, 1e9);
    f.reject_unknown();
    add_generated(sc.workload, t, kind, bytes, seed, receiver, senders, where + ": workload");
  }
  if (top.has("flows")) {
    const json& flows = top.at("flows");
    if (!flows.is_array()) fail("{}: 'flows' must be an array", where);
    size_t base = sc.workload.flows.size();
    std::map<std::string, int> ids;
    for (size_t i = 0; i < flows.size(); ++i)
      if (flows[i].is_object() && flows[i].contains("id")) {
        const json& id = flows[i]["id"];
        std::string name = id.is_string() ? id.get<std::string>() : id.dump();
        if (!ids.emplace(name, static_cast<int>(base + i)).second) fail("{}: flows[{}].id: duplicate id \"{}\"", where, i, name);
      }
    for (size_t i = 0; i < flows.size(); ++i) {
      std::string at = fmt::format("{}: flows[{}]", where, i);
      Fields f(flows[i], at);
      FlowSpec spec;
      if (!f.has("src")) fail("{}: missing key 'src'", at);
      if (!f.has("dst")) fail("{}: missing key 'dst'", at);
      if (!f.has("bytes")) fail("{}: missing key 'bytes'", at);
      f.has("id");
      spec.src = host_of(f.at("src"), t, f.key("src"));
      spec.dst = host_of(f.at("dst"), t, f.key("dst"));
      f.read_int("bytes", spec.bytes, 1, 1e13);
      f.read_us("start_us", spec.start_ps);
      if (f.has("deps")) {
        const json& deps = f.at("deps");
        if (!deps.is_array()) fail("{}: expected an array", f.key("deps"));
        for (const json& d : deps) {
          std::string name = d.is_string() ? d.get<std::string>() : d.dump();
          auto it = ids.find(name);
          if (it != ids.end()) spec.deps.push_back(it->second);
          else if (d.is_number_integer() && d.get<int64_t>() >= 0 && d.get<int64_t>() < static_cast<int64_t>(flows.size()))
            spec.deps.push_back(static_cast<int>(base + d.get<int64_t>()));
          else fail("{}: unknown flow {}", f.key("deps"), d.dump());
        }
      }
      if (f.has("group")) {
        std::string g;
        f.read_string("group", g);
        spec.group = sc.workload.group_id(g);
      }
      if (f.has("after_groups")) {  // wait for every flow of these groups (by name; an unknown name is an empty group)
        const json& after = f.at("after_groups");
        if (!after.is_array()) fail("{}: expected an array of group names", f.key("after_groups"));
        for (const json& g : after) {
          if (!g.is_string()) fail("{}: expected group names (strings), got {}", f.key("after_groups"), g.dump());
          spec.after_groups.push_back(sc.workload.group_id(g.get<std::string>()));
        }
      }
      if (f.has("lb")) {
        std::string lb;
        f.read_string("lb", lb);
        spec.lb = parse_load_balancing(lb, f.key("lb"));
      }
      f.read_int("path", spec.path, 0, 1e9);
      f.read_int("entropy", spec.entropy, 0, 4294967295.0);
      f.read_int("channel", spec.channel, 0, 1e9);  // connection order (FlowSpec::channel)
      f.read_int("lane", spec.lane, 0, 1e6);
      f.reject_unknown();
      if (spec.src == spec.dst) fail("{}: 'src' and 'dst' are the same host", at);
      if (spec.path >= 0 && spec.path >= t.path_count(spec.src, spec.dst))
        fail("{}: 'path' {} out of range ({} paths)", at, spec.path, t.path_count(spec.src, spec.dst));
      sc.workload.add_flow(spec);
    }
  }
  if (top.has("matrix")) {
    std::string m;
    top.read_string("matrix", m);
    std::string full = !m.empty() && m[0] == '/' ? m : base_dir + "/" + m;
    load_connection_matrix(full, t, sc.workload);
  }
  if (top.has("failures")) {
    const json& fs = top.at("failures");
    if (!fs.is_array()) fail("{}: 'failures' must be an array", where);
    for (size_t i = 0; i < fs.size(); ++i) {
      std::string at = fmt::format("{}: failures[{}]", where, i);
      Fields f(fs[i], at);
      LinkFailure lf;
      if (f.has("link")) {
        f.read_int("link", lf.link, 0, 1e9);
        if (lf.link >= static_cast<int>(t.links.size())) fail("{}: link {} does not exist ({} links)", f.key("link"), lf.link, t.links.size());
      } else {
        if (!f.has("from") || !f.has("to")) fail("{}: give 'link' or 'from' and 'to'", at);
        std::string from, to;
        int parallel = 0;
        f.read_string("from", from);
        f.read_string("to", to);
        f.read_int("parallel", parallel, 0, 1e6);
        int a = node_by_name(t, from, f.key("from")), b = node_by_name(t, to, f.key("to"));
        for (size_t l = 0; l < t.links.size(); ++l)
          if (t.links[l].from == a && t.links[l].to == b && t.links[l].parallel == parallel) lf.link = static_cast<int>(l);
        if (lf.link < 0) fail("{}: no link from {} to {} (parallel {})", at, from, to, parallel);
      }
      if (!f.has("at_us")) fail("{}: missing key 'at_us'", at);
      f.read_us("at_us", lf.down_ps);
      f.read_us("up_us", lf.up_ps);
      f.read_bool("both", lf.both);
      f.reject_unknown();
      if (lf.up_ps != kNever && lf.up_ps <= lf.down_ps) fail("{}: 'up_us' must be after 'at_us'", at);
      sc.failures.push_back(lf);
    }
  }
  if (top.has("jobs")) parse_jobs(top.at("jobs"), where, sc);
  top.reject_unknown();
  sc.workload.validate(t, where);
  return sc;
}

Scenario load_scenario(const std::string& path) {
  std::string text = read_text(path);
  size_t slash = path.find_last_of('/');
  return parse_scenario(text, path, slash == std::string::npos ? "." : path.substr(0, slash));
}

void parse_connection_matrix(const std::string& text, const std::string& where, const Topology& t, Workload& w) {
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  size_t base = w.flows.size();
  std::map<std::string, int> ids;
  struct Pending {
    int flow, line;
    std::vector<std::string> after;
  };
  std::vector<Pending> pending;
  auto number = [&](const std::string& s, const std::string& what, double lo, double hi) {
    try {
      size_t used = 0;
      double v = std::stod(s, &used);
      if (used != s.size() || !std::isfinite(v) || v < lo || v > hi) throw std::invalid_argument("range");
      return v;
    } catch (const std::exception&) {
      fail("{}:{}: bad {} '{}'", where, line_no, what, s);
    }
  };
  while (std::getline(in, line)) {
    ++line_no;
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::vector<std::string> tok;
    for (std::string s; ls >> s;) tok.push_back(s);
    if (tok.empty()) continue;
    FlowSpec spec;
    std::string id = std::to_string(w.flows.size() - base);
    std::vector<std::string> after;
    bool have_pair = false, have_size = false;
    for (size_t i = 0; i < tok.size(); ++i) {
      const std::string& k = tok[i];
      size_t arrow = k.find("->");
      if (arrow != std::string::npos) {
        if (have_pair) fail("{}:{}: two SRC->DST pairs", where, line_no);
        spec.src = static_cast<int>(number(k.substr(0, arrow), "source host", 0, t.hosts() - 1));
        spec.dst = static_cast<int>(number(k.substr(arrow + 2), "destination host", 0, t.hosts() - 1));
        have_pair = true;
        continue;
      }
      if (i + 1 >= tok.size()) fail("{}:{}: '{}' needs a value", where, line_no, k);
      const std::string& v = tok[++i];
      if (k == "id") id = v;
      else if (k == "size") spec.bytes = static_cast<uint64_t>(number(v, "size", 1, 1e13)), have_size = true;
      else if (k == "start_us") spec.start_ps = static_cast<SimTime>(std::llround(number(v, "start_us", 0, 1e12) * 1e6));
      else if (k == "after") {
        std::string part;
        std::istringstream ps(v);
        while (std::getline(ps, part, ','))
          if (!part.empty()) after.push_back(part);
      } else if (k == "group") spec.group = w.group_id(v);
      else if (k == "lb") spec.lb = parse_load_balancing(v, fmt::format("{}:{}: lb", where, line_no));
      else if (k == "path") spec.path = static_cast<int>(number(v, "path", 0, 1e9));
      else fail("{}:{}: unknown key '{}' (expected id, size, start_us, after, group, lb, path)", where, line_no, k);
    }
    if (!have_pair) fail("{}:{}: missing SRC->DST", where, line_no);
    if (!have_size) fail("{}:{}: missing 'size'", where, line_no);
    if (spec.src == spec.dst) fail("{}:{}: source and destination are the same host {}", where, line_no, spec.src);
    if (spec.path >= t.path_count(spec.src, spec.dst))
      fail("{}:{}: path {} out of range ({} paths)", where, line_no, spec.path, t.path_count(spec.src, spec.dst));
    int flow = w.add_flow(spec);
    if (!ids.emplace(id, flow).second) fail("{}:{}: duplicate id '{}'", where, line_no, id);
    if (!after.empty()) pending.push_back({flow, line_no, after});
  }
  for (const Pending& p : pending)
    for (const std::string& a : p.after) {
      auto it = ids.find(a);
      if (it == ids.end()) fail("{}:{}: 'after' names unknown flow '{}'", where, p.line, a);
      if (it->second == p.flow) fail("{}:{}: flow depends on itself", where, p.line);
      w.flows[p.flow].deps.push_back(it->second);
    }
  w.validate(t, where);
}

void load_connection_matrix(const std::string& path, const Topology& t, Workload& w) {
  parse_connection_matrix(read_text(path), path, t, w);
}

}  // namespace lookahead::net
