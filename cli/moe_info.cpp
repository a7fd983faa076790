// `lookahead moe info --model PATH`: what a model file holds (metadata, tensors, types, sizes).
#include <fmt/format.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <variant>

#include "cli/command.h"
#include "moe/format/gguf.h"

namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
  bool tensors = false;
};

std::string value_summary(const lookahead::moe::GgufValue& v) {
  using namespace lookahead::moe;
  if (auto* s = std::get_if<std::string>(&v.value)) return s->size() > 60 ? fmt::format("\"{}...\"", s->substr(0, 57)) : fmt::format("\"{}\"", *s);
  if (auto* u = std::get_if<uint64_t>(&v.value)) return std::to_string(*u);
  if (auto* i = std::get_if<int64_t>(&v.value)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v.value)) return fmt::format("{}", *d);
  if (auto* b = std::get_if<bool>(&v.value)) return *b ? "true" : "false";
  auto& a = std::get<std::shared_ptr<GgufArray>>(v.value);
  return fmt::format("[array of {}]", a->values.size());
}

void run_info(const InfoOptions& o) {
  lookahead::moe::GgufFile file(o.model);
  std::map<std::string, uint64_t> bytes_by_type;
  uint64_t params = 0;
  for (const auto& t : file.tensors()) {
    bytes_by_type[std::string(lookahead::moe::tensor_type_name(t.type))] += t.bytes;
    params += static_cast<uint64_t>(t.elements());
  }
  if (o.json) {
    nlohmann::json j;
    j["path"] = file.path();
    j["gguf_version"] = file.version();
    j["tensor_count"] = file.tensors().size();
    j["parameters"] = params;
    j["bytes_by_type"] = bytes_by_type;
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& [k, v] : file.metadata()) meta[k] = value_summary(v);
    j["metadata"] = meta;
    if (o.tensors) {
      for (const auto& t : file.tensors())
        j["tensors"].push_back({{"name", t.name}, {"type", lookahead::moe::tensor_type_name(t.type)}, {"shape", t.shape}, {"bytes", t.bytes}});
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{}: GGUF v{}, {} tensors, {:.1f}M parameters\n", file.path(), file.version(), file.tensors().size(), params / 1e6);
  for (const auto& [type, bytes] : bytes_by_type) fmt::print("  {:5} {:8.1f} MiB\n", type, bytes / 1048576.0);
  for (const auto& [k, v] : file.metadata()) fmt::print("  {} = {}\n", k, value_summary(v));
  if (o.tensors)
    for (const auto& t : file.tensors())
      fmt::print("  tensor {:40} {:5} [{}]\n", t.name, lookahead::moe::tensor_type_name(t.type), fmt::join(t.shape, ", "));
}

const bool registered = lookahead::cli::register_command(
    {"moe", "info", "Show a model file's metadata and tensors", [](CLI::App& cmd) {
       auto o = std::make_shared<InfoOptions>();
       cmd.add_option("--model", o->model, "GGUF model file")->required();
       cmd.add_flag("--tensors", o->tensors, "list every tensor");
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_info(*o); });
     }});

}  // namespace
