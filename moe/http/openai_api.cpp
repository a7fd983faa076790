#include "moe/http/openai_api.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.h"

namespace lookahead::moe::http {

using serving::EngineLimits;
using serving::EngineMetrics;
using serving::FinishReason;
using serving::Usage;

using nlohmann::json;

namespace {

ApiError bad_request(const std::string& message, const std::string& param, const std::string& code = {}) {
  return ApiError(400, "invalid_request_error", message, param, code);
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a decimal";
    default: return "an integer";
  }
}

ApiError wrong_type(const std::string& param, const char* expected, const json& got) {
  return bad_request(fmt::format("Invalid type for '{}': expected {}, but got {} instead.", param, expected, type_name(got)),
                     param, "invalid_type");
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw bad_request(fmt::format("We could not parse the JSON body of your request: {}", e.what()), "",
                      "invalid_json");
  }
  if (!j.is_object()) throw bad_request(fmt::format("The request body must be a JSON object, got {}.", type_name(j)), "");
  return j;
}

// Present and not null.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number_in(const json& body, const char* name, double def, double lo, double hi, bool lo_open) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) throw wrong_type(name, "a decimal", *v);
  const double x = v->get<double>();
  if (x > hi || x < lo || (lo_open && x == lo))
    throw bad_request(fmt::format("Invalid value for '{}': {} is not in {}{}, {}].", name, x, lo_open ? "(" : "[", lo, hi),
                      name, "invalid_value");
  return x;
}

int64_t integer(const json& v, const char* name) {
  if (!v.is_number_integer()) throw wrong_type(name, "an integer", v);
  return v.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX)) : v.get<int64_t>();
}

bool boolean(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return false;
  if (!v->is_boolean()) throw wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

// Everything shared by both endpoints except the prompt; `max_tokens` is settled afterwards.
ApiRequest parse_common(const json& body, const ApiContext& ctx, ApiKind kind) {
  ApiRequest r;
  r.kind = kind;
  r.model = ctx.model_id;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) throw wrong_type("model", "a string", *m);
    if (m->get<std::string>() != ctx.model_id)
      throw ApiError(404, "invalid_request_error",
                     fmt::format("The model '{}' does not exist; this server serves '{}'.", m->get<std::string>(),
                                 ctx.model_id),
                     "model", "model_not_found");
  }
  // Types here; the ranges are the CLI's too (check_sampling, moe/model/sampling.h).
  r.sampling.temperature = static_cast<float>(number_in(body, "temperature", 1.0, -INFINITY, INFINITY, false));
  r.sampling.top_p = static_cast<float>(number_in(body, "top_p", 1.0, -INFINITY, INFINITY, false));
  r.sampling.top_k = 0;
  if (const json* v = field(body, "top_k"))
    r.sampling.top_k = static_cast<int32_t>(std::clamp<int64_t>(integer(*v, "top_k"), INT32_MIN, INT32_MAX));
  if (auto problem = check_sampling(r.sampling))
    throw bad_request(fmt::format("Invalid value for '{}': {}.", problem->field, problem->reason), problem->field,
                      "invalid_value");
  if (const json* v = field(body, "seed")) {
    r.sampling.seed = static_cast<uint64_t>(integer(*v, "seed"));
    r.seeded = true;
  }
  if (const json* v = field(body, "n")) {
    if (integer(*v, "n") != 1) throw bad_request("Invalid value for 'n': only n = 1 is supported.", "n", "invalid_value");
  }
  if (const json* v = field(body, "stop")) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 4) throw bad_request("Invalid value for 'stop': at most 4 stop sequences.", "stop", "invalid_value");
      for (const auto& s : *v) {
        if (!s.is_string()) throw wrong_type("stop", "a string or an array of strings", s);
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      throw wrong_type("stop", "a string or an array of strings", *v);
    }
    std::erase_if(r.stop, [](const std::string& s) { return s.empty(); });
  }
  r.stream = boolean(body, "stream");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) throw wrong_type("stream_options", "an object", *v);
    if (!r.stream)
      throw bad_request("Invalid value for 'stream_options': only allowed when 'stream' is true.", "stream_options",
                        "invalid_value");
    r.include_usage = boolean(*v, "include_usage");
  }
  if (const json* v = field(body, "logprobs")) {
    if ((v->is_boolean() && v->get<bool>()) || (v->is_number() && v->get<double>() > 0))
      throw bad_request("'logprobs' is not supported by this server.", "logprobs", "unsupported_parameter");
  }
  if (boolean(body, "echo")) throw bad_request("'echo' is not supported by this server.", "echo", "unsupported_parameter");
  return r;
}

// max_tokens (or max_completion_tokens) against the context, once the prompt is known.
void settle_max_tokens(const json& body, const ApiContext& ctx, ApiRequest& r, const char* prompt_param) {
  const auto n_prompt = static_cast<int64_t>(r.prompt.size());
  if (n_prompt >= ctx.n_ctx)
    throw bad_request(fmt::format("This model's maximum context length is {} tokens. However, your {} is {} tokens, "
                                  "leaving no room for a completion.",
                                  ctx.n_ctx, prompt_param, n_prompt),
                      prompt_param, "context_length_exceeded");
  const char* name = "max_tokens";
  const json* v = field(body, "max_tokens");
  if (!v) {
    v = field(body, "max_completion_tokens");
    name = "max_completion_tokens";
  }
  if (!v) {
    r.max_tokens = r.kind == ApiKind::COMPLETION ? std::min<int64_t>(16, ctx.n_ctx - n_prompt) : ctx.n_ctx - n_prompt;
    return;
  }
  const int64_t m = integer(*v, name);
  if (m < 1) throw bad_request(fmt::format("Invalid value for '{}': {} is below 1.", name, m), name, "invalid_value");
  if (n_prompt + m > ctx.n_ctx)
    throw bad_request(fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                                  "({} in the {}, {} in the completion). Please reduce the length of the {} or the "
                                  "completion.",
                                  ctx.n_ctx, n_prompt + m, n_prompt, prompt_param, m, prompt_param),
                      name, "context_length_exceeded");
  r.max_tokens = m;
}

std::vector<int32_t> encode(const ApiContext& ctx, const std::string& text, const char* param) {
  try {
    return ctx.tokenizer->encode(text, true, true);
  } catch (const lookahead::Error& e) {
    throw bad_request(fmt::format("Invalid value for '{}': {}", param, e.what()), param, "invalid_value");
  }
}

}  // namespace

json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

ApiError error_for_status(int status, const std::string& method, const std::string& path) {
  switch (status) {
    case 404:
      return ApiError(404, "invalid_request_error", fmt::format("Unknown request URL: {} {}.", method, path), "",
                      "unknown_url");
    case 405:
      return ApiError(405, "invalid_request_error", fmt::format("Method {} not allowed for {}.", method, path), "",
                      "method_not_allowed");
    case 413:
      return ApiError(413, "invalid_request_error", "The request body is too large.", "", "request_too_large");
    case 400:
      return ApiError(400, "invalid_request_error", "Malformed HTTP request.", "", "bad_request");
    default:
      if (status >= 500) return ApiError(status, "server_error", fmt::format("Server error (HTTP {}).", status));
      return ApiError(status, "invalid_request_error", fmt::format("HTTP {} for {} {}.", status, method, path));
  }
}

ApiRequest parse_completion_request(const std::string& body_text, const ApiContext& ctx) {
  const json body = parse_body(body_text);
  ApiRequest r = parse_common(body, ctx, ApiKind::COMPLETION);
  const json* p = field(body, "prompt");
  if (!p) throw bad_request("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  if (p->is_string()) {
    r.prompt = encode(ctx, p->get<std::string>(), "prompt");
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt = encode(ctx, (*p)[0].get<std::string>(), "prompt");
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    for (const auto& t : *p) {
      if (!t.is_number_integer()) throw wrong_type("prompt", "an array of integer token ids", t);
      const int64_t id = integer(t, "prompt");
      if (id < 0 || id >= ctx.n_vocab)
        throw bad_request(fmt::format("Invalid value for 'prompt': token id {} is outside the vocabulary [0, {}).", id,
                                      ctx.n_vocab),
                          "prompt", "invalid_value");
      r.prompt.push_back(static_cast<int32_t>(id));
    }
  } else if (p->is_array()) {
    throw bad_request("Invalid value for 'prompt': only one prompt per request (a string, [string] or token ids).",
                      "prompt", "invalid_value");
  } else {
    throw wrong_type("prompt", "a string or an array of token ids", *p);
  }
  if (r.prompt.empty()) throw bad_request("Invalid value for 'prompt': it has no tokens.", "prompt", "invalid_value");
  settle_max_tokens(body, ctx, r, "prompt");
  return r;
}

ApiRequest parse_chat_request(const std::string& body_text, const ApiContext& ctx) {
  const json body = parse_body(body_text);
  ApiRequest r = parse_common(body, ctx, ApiKind::CHAT);
  const json* msgs = field(body, "messages");
  if (!msgs) throw bad_request("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  if (!msgs->is_array()) throw wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) throw bad_request("Invalid value for 'messages': it is empty.", "messages", "invalid_value");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw wrong_type(where, "an object", m);
    const json* role = field(m, "role");
    if (!role) throw bad_request(fmt::format("Missing required parameter: '{}.role'.", where), where + ".role",
                                 "missing_required_parameter");
    if (!role->is_string()) throw wrong_type(where + ".role", "a string", *role);
    std::string role_name = role->get<std::string>();
    if (role_name == "developer") role_name = "system";
    if (role_name != "system" && role_name != "user" && role_name != "assistant")
      throw bad_request(fmt::format("Invalid value for '{}.role': '{}' is not one of system, developer, user, assistant.",
                                    where, role_name),
                        where + ".role", "invalid_value");
    std::string content;
    const json* c = field(m, "content");
    if (!c) {
      if (role_name != "assistant")
        throw bad_request(fmt::format("Missing required parameter: '{}.content'.", where), where + ".content",
                          "missing_required_parameter");
    } else if (c->is_string()) {
      content = c->get<std::string>();
    } else if (c->is_array()) {
      for (const auto& part : *c) {
        const json* type = part.is_object() ? field(part, "type") : nullptr;
        const json* text = part.is_object() ? field(part, "text") : nullptr;
        if (!type || !type->is_string() || type->get<std::string>() != "text" || !text || !text->is_string())
          throw bad_request(fmt::format("Invalid value for '{}.content': only text parts {{\"type\": \"text\", "
                                        "\"text\": ...}} are supported.",
                                        where),
                            where + ".content", "invalid_value");
        content += text->get<std::string>();
      }
    } else {
      throw wrong_type(where + ".content", "a string or an array of text parts", *c);
    }
    messages.push_back({role_name, std::move(content)});
  }
  std::string rendered;
  try {
    rendered = ctx.tokenizer->apply_chat_template(messages, true);
  } catch (const lookahead::Error& e) {
    throw bad_request(fmt::format("Invalid value for 'messages': {}", e.what()), "messages", "invalid_value");
  }
  r.prompt = encode(ctx, rendered, "messages");
  settle_max_tokens(body, ctx, r, "messages");
  return r;
}

const char* openai_finish_reason(FinishReason reason) { return reason == FinishReason::LENGTH ? "length" : "stop"; }

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json completion_response(const ApiRequest& r, const std::string& id, int64_t created, const std::string& text,
                         FinishReason finish, const Usage& usage) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", openai_finish_reason(finish)}};
  if (r.kind == ApiKind::CHAT)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  return {{"id", id},
          {"object", r.kind == ApiKind::CHAT ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(usage)}};
}

json stream_chunk(const ApiRequest& r, const std::string& id, int64_t created, const std::string* text, bool role_delta,
                  const char* finish) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
  if (r.kind == ApiKind::CHAT) {
    json delta = json::object();
    if (role_delta) delta["role"] = "assistant";
    if (text) delta["content"] = *text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text ? *text : std::string();
  }
  return {{"id", id},
          {"object", r.kind == ApiKind::CHAT ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})}};
}

json stream_usage_chunk(const ApiRequest& r, const std::string& id, int64_t created, const Usage& usage) {
  return {{"id", id},
          {"object", r.kind == ApiKind::CHAT ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }

json models_json(const std::string& model_id, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "lookahead"}}})}};
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double value) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin());
  ++counts[i];
  sum += value;
  ++count;
}

LatencyHistograms::LatencyHistograms()
    : time_to_first_token({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      inter_token({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      request_duration({0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

std::string prometheus_text(const EngineMetrics& m, const EngineLimits& limits, const HttpCounters& http) {
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    metric(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cumulative += h.counts[i];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], cumulative);
    }
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {:.6f}\n{}_count {}\n", name, h.count, name, h.sum, name,
                       h.count);
  };
  // Admission and outcome are separate: every accepted request later finishes with one reason.
  metric("lookahead_requests_accepted_total", "counter", "Generation requests accepted by the engine.");
  out += fmt::format("lookahead_requests_accepted_total {}\n", m.requests_accepted);
  metric("lookahead_requests_rejected_total", "counter",
         "Generation requests refused: queue_full (429), draining (503), invalid (400, 404 model, 413, 415).");
  const std::pair<const char*, uint64_t> rejected[] = {
      {"queue_full", m.requests_rejected_queue_full},
      {"draining", m.requests_rejected_draining + http.requests_rejected_draining},
      {"invalid", m.requests_rejected_invalid + http.requests_rejected_invalid}};
  for (const auto& [reason, n] : rejected)
    out += fmt::format("lookahead_requests_rejected_total{{reason=\"{}\"}} {}\n", reason, n);
  metric("lookahead_requests_finished_total", "counter", "Accepted generation requests finished, by reason.");
  const std::pair<const char*, uint64_t> finished[] = {{"stop", m.requests_finished_stop},
                                                       {"length", m.requests_finished_length},
                                                       {"cancelled", m.requests_cancelled},
                                                       {"error", m.requests_failed}};
  for (const auto& [reason, n] : finished)
    out += fmt::format("lookahead_requests_finished_total{{reason=\"{}\"}} {}\n", reason, n);
  histogram("lookahead_time_to_first_token_seconds", "From acceptance to the first generated token.",
            http.latency.time_to_first_token);
  histogram("lookahead_inter_token_latency_seconds", "Between successive generated tokens of a request.",
            http.latency.inter_token);
  histogram("lookahead_request_duration_seconds", "From acceptance to the last event, whatever the outcome.",
            http.latency.request_duration);
  metric("lookahead_http_responses_total", "counter", "HTTP responses by status code.");
  for (const auto& [code, n] : http.responses_by_code)
    out += fmt::format("lookahead_http_responses_total{{code=\"{}\"}} {}\n", code, n);
  metric("lookahead_http_active_requests", "gauge", "Generation requests being handled now.");
  out += fmt::format("lookahead_http_active_requests {}\n", http.active_requests);
  metric("lookahead_http_open_connections", "gauge", "HTTP connections open now (--max-connections).");
  out += fmt::format("lookahead_http_open_connections {}\n", http.open_connections);
  metric("lookahead_waiting_requests", "gauge", "Requests waiting for a sequence slot.");
  out += fmt::format("lookahead_waiting_requests {}\n", m.queue_depth);
  metric("lookahead_max_waiting_requests", "gauge", "Most waiting requests (--max-queue).");
  out += fmt::format("lookahead_max_waiting_requests {}\n", limits.max_queue);
  metric("lookahead_running_sequences", "gauge", "Sequences holding a KV cache.");
  out += fmt::format("lookahead_running_sequences {}\n", m.running_sequences);
  metric("lookahead_max_running_sequences", "gauge", "Most sequences holding a KV cache at once.");
  out += fmt::format("lookahead_max_running_sequences {}\n", limits.max_running);
  metric("lookahead_batch_tokens", "gauge", "Tokens the last engine step ran through the model.");
  out += fmt::format("lookahead_batch_tokens {}\n", m.batch_size);
  metric("lookahead_generated_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.");
  out += fmt::format("lookahead_generated_tokens_per_second {:.3f}\n", m.tokens_per_second);
  metric("lookahead_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.");
  out += fmt::format("lookahead_prompt_tokens_total {}\n", m.prompt_tokens_total);
  metric("lookahead_prompt_tokens_cached_total", "counter",
         "Prompt tokens taken from the prefix cache instead of prefilled.");
  out += fmt::format("lookahead_prompt_tokens_cached_total {}\n", m.prompt_tokens_cached_total);
  metric("lookahead_generated_tokens_total", "counter", "Tokens generated.");
  out += fmt::format("lookahead_generated_tokens_total {}\n", m.generated_tokens_total);
  metric("lookahead_kv_cache_bytes", "gauge", "KV cache memory reserved (the limit).");
  out += fmt::format("lookahead_kv_cache_bytes {}\n", m.kv_cache_bytes);
  metric("lookahead_expert_cache_hit_ratio", "gauge", "Expert cache hits / lookups (0 without an expert cache).");
  out += fmt::format("lookahead_expert_cache_hit_ratio {:.6f}\n", m.cache_hit_ratio);
  metric("lookahead_slow_tier_bytes_total", "counter", "Bytes of expert weights read from the slow tier.");
  out += fmt::format("lookahead_slow_tier_bytes_total {}\n", m.slow_tier_bytes);
  return out;
}

}  // namespace lookahead::moe::http
