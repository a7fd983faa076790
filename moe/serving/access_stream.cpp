#include "moe/serving/access_stream.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"

namespace lookahead::moe::serving {

namespace {

constexpr const char* kFormat = "lookahead-expert-stream";
constexpr int kVersion = 1;

nlohmann::json keys_json(const std::vector<SlabKey>& keys) {
  nlohmann::json a = nlohmann::json::array();
  for (const SlabKey& k : keys) a.push_back({k.layer, k.expert});
  return a;
}

}  // namespace

uint64_t AccessStream::accesses() const {
  uint64_t n = 0;
  for (const StreamStep& s : steps) n += s.accesses.size();
  return n;
}

std::vector<SlabAccess> AccessStream::flat() const {
  std::vector<SlabAccess> out;
  out.reserve(accesses());
  for (const StreamStep& s : steps)
    for (const SlabKey& k : s.accesses) out.push_back({k, bytes(k)});
  return out;
}

StreamRecorder::StreamRecorder(const ExpertWeights& inner, const ReadMeModel& model, int plan_horizon)
    : inner_(inner) {
  stream_.n_layer = model.backbone().hparams().n_layer;
  stream_.n_expert = model.n_expert();
  stream_.plan_horizon = plan_horizon;
  for (int l = 0; l < stream_.n_layer; ++l)
    for (int32_t e = 0; e < stream_.n_expert; ++e) stream_.slab_bytes.push_back(model.slab(l, e).bytes);
}

const ExpertFfn& StreamRecorder::expert(int layer, int32_t e) const {
  LOOKAHEAD_CHECK(!stream_.steps.empty());
  stream_.steps.back().accesses.push_back({layer, e});
  return inner_.expert(layer, e);
}

void StreamRecorder::begin_step(std::vector<SlabKey> plan) {
  stream_.steps.push_back({});
  stream_.steps.back().plan = std::move(plan);
}

void write_access_stream(const std::string& path, const AccessStream& s) {
  nlohmann::json bytes = nlohmann::json::array();
  for (int32_t l = 0; l < s.n_layer; ++l) {
    nlohmann::json row = nlohmann::json::array();
    for (int32_t e = 0; e < s.n_expert; ++e) row.push_back(s.bytes({l, e}));
    bytes.push_back(std::move(row));
  }
  nlohmann::json steps = nlohmann::json::array();
  for (const StreamStep& st : s.steps) steps.push_back({{"accesses", keys_json(st.accesses)}, {"plan", keys_json(st.plan)}});
  nlohmann::json source = nlohmann::json::parse(s.source_json, nullptr, false);
  if (source.is_discarded() || !source.is_object()) source = nlohmann::json::object();
  const nlohmann::json j = {{"format", kFormat}, {"version", kVersion}, {"n_layer", s.n_layer},
                            {"n_expert", s.n_expert}, {"slab_bytes", std::move(bytes)},
                            {"plan_horizon", s.plan_horizon}, {"source", std::move(source)},
                            {"steps", std::move(steps)}};
  write_file_atomic(path, j.dump() + "\n");
}

AccessStream read_access_stream(const std::string& path) {
  const std::string text = read_input_file(path, "--stream");
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a JSON object (expected an expert access stream)", path);
  auto field = [&](const nlohmann::json& obj, const char* name, const std::string& where) -> const nlohmann::json& {
    auto it = obj.find(name);
    if (it == obj.end()) fail("{}: {} has no \"{}\"", path, where, name);
    return *it;
  };
  auto integer = [&](const nlohmann::json& v, const std::string& what, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) fail("{}: {} must be an integer", path, what);
    const auto x = v.get<int64_t>();
    if (x < lo || x > hi) fail("{}: {} is {}, expected {}..{}", path, what, x, lo, hi);
    return x;
  };
  const nlohmann::json& format = field(j, "format", "the stream");
  if (!format.is_string() || format.get<std::string>() != kFormat)
    fail("{}: \"format\" must be \"{}\" (a file written by moe replay --record-stream)", path, kFormat);
  if (integer(field(j, "version", "the stream"), "\"version\"", 0, 1 << 30) != kVersion)
    fail("{}: \"version\" {} is not supported (expected {})", path, field(j, "version", "").dump(), kVersion);
  AccessStream s;
  s.n_layer = static_cast<int32_t>(integer(field(j, "n_layer", "the stream"), "\"n_layer\"", 1, 1 << 16));
  s.n_expert = static_cast<int32_t>(integer(field(j, "n_expert", "the stream"), "\"n_expert\"", 1, 1 << 16));
  s.plan_horizon = static_cast<int>(integer(field(j, "plan_horizon", "the stream"), "\"plan_horizon\"", 0, 1 << 20));
  const nlohmann::json& bytes = field(j, "slab_bytes", "the stream");
  if (!bytes.is_array() || static_cast<int64_t>(bytes.size()) != s.n_layer)
    fail("{}: \"slab_bytes\" must be an array of n_layer ({}) rows", path, s.n_layer);
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const nlohmann::json& row = bytes[static_cast<size_t>(l)];
    if (!row.is_array() || static_cast<int64_t>(row.size()) != s.n_expert)
      fail("{}: \"slab_bytes\"[{}] must be an array of n_expert ({}) sizes", path, l, s.n_expert);
    for (int32_t e = 0; e < s.n_expert; ++e)
      s.slab_bytes.push_back(static_cast<uint64_t>(
          integer(row[static_cast<size_t>(e)], fmt::format("\"slab_bytes\"[{}][{}]", l, e), 1, int64_t{1} << 50)));
  }
  if (auto it = j.find("source"); it != j.end() && it->is_object()) s.source_json = it->dump();
  const nlohmann::json& steps = field(j, "steps", "the stream");
  if (!steps.is_array()) fail("{}: \"steps\" must be an array", path);
  auto keys = [&](const nlohmann::json& step, const char* name, size_t i) {
    const nlohmann::json& a = field(step, name, fmt::format("step {}", i));
    if (!a.is_array()) fail("{}: step {} \"{}\" must be an array of [layer, expert] pairs", path, i, name);
    std::vector<SlabKey> out;
    out.reserve(a.size());
    for (size_t p = 0; p < a.size(); ++p) {
      const nlohmann::json& k = a[p];
      const std::string what = fmt::format("step {} \"{}\"[{}]", i, name, p);
      if (!k.is_array() || k.size() != 2) fail("{}: {} must be a [layer, expert] pair", path, what);
      out.push_back({static_cast<int32_t>(integer(k[0], what + " layer", 0, s.n_layer - 1)),
                     static_cast<int32_t>(integer(k[1], what + " expert", 0, s.n_expert - 1))});
    }
    return out;
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].is_object()) fail("{}: step {} must be an object", path, i);
    s.steps.push_back({keys(steps[i], "accesses", i), keys(steps[i], "plan", i)});
  }
  if (s.steps.empty()) fail("{}: the stream has no steps", path);
  return s;
}

}  // namespace lookahead::moe::serving
