// OpenAI request fields to lm's generation options, and responses back (openai.hpp).
#include "serve/openai.hpp"

#include <bit>
#include <cmath>
#include <limits>

#include "base/error.hpp"

namespace lm::serve {

Json error_json(const ApiError& e) {
  Json err{{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return Json{{"error", std::move(err)}};
}

int json_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c == ']' || c == '}')
      --depth;
  }
  return deepest;
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& what) {
  throw ApiError(400, param.empty() ? what : "'" + param + "': " + what, "invalid_request_error", param);
}

// The member `key` of `j`, or nullptr when absent or null.
const Json* field(const Json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const Json& v, const char* key) {
  if (!v.is_boolean()) bad(key, "expected a boolean, not " + std::string(v.type_name()));
  return v.get<bool>();
}

int64_t get_int(const Json& v, const char* key, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) bad(key, "must be at most " + std::to_string(hi));
    x = int64_t(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d == std::floor(d)) || !(std::fabs(d) < 9e18)) bad(key, "expected an integer");
    x = int64_t(d);
  } else {
    bad(key, "expected an integer, not " + std::string(v.type_name()));
  }
  if (x < lo || x > hi)
    bad(key, std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

float get_float(const Json& v, const char* key, double lo, double hi) {
  if (!v.is_number()) bad(key, "expected a number, not " + std::string(v.type_name()));
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%g is out of range [%g, %g]", d, lo, hi);
    bad(key, buf);
  }
  return float(d);
}

std::string get_string(const Json& v, const std::string& key) {
  if (!v.is_string()) bad(key, "expected a string, not " + std::string(v.type_name()));
  return v.get<std::string>();
}

void read_prompts(const Json& p, const Limits& lim, std::vector<Prompt>& out) {
  auto ids_of = [&](const Json& arr, const std::string& key) {
    Prompt pr;
    pr.is_ids = true;
    for (const Json& t : arr) pr.ids.push_back(int(get_int(t, key.c_str(), 0, int64_t(lim.n_vocab) - 1)));
    return pr;
  };
  if (p.is_string()) {
    out.push_back(Prompt{p.get<std::string>(), {}, false});
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    out.push_back(ids_of(p, "prompt"));
  } else if (p.is_array() && !p.empty()) {
    if (p.size() > size_t(lim.max_choices)) bad("prompt", "more than " + std::to_string(lim.max_choices) + " prompts");
    for (const Json& e : p) {
      if (e.is_string())
        out.push_back(Prompt{e.get<std::string>(), {}, false});
      else if (e.is_array() && !e.empty())
        out.push_back(ids_of(e, "prompt"));
      else
        bad("prompt", "expected a string, an array of strings or token ids, or an array of arrays of token ids");
    }
  } else {
    bad("prompt", "expected a string, an array of strings or token ids, or an array of arrays of token ids");
  }
}

std::string message_content(const Json& c, const std::string& key) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(key, "expected a string or an array of text parts, not " + std::string(c.type_name()));
  std::string text;
  for (const Json& part : c) {
    const Json* type = part.is_object() ? field(part, "type") : nullptr;
    if (!type || !type->is_string() || type->get<std::string>() != "text")
      bad(key, "only parts of type \"text\" are supported");
    const Json* t = field(part, "text");
    if (!t) bad(key, "a text part without \"text\"");
    text += get_string(*t, key);
  }
  return text;
}

void read_messages(const Json& m, std::vector<ChatMessage>& out) {
  if (!m.is_array() || m.empty()) bad("messages", "expected a non-empty array of messages");
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string key = "messages[" + std::to_string(i) + "]";
    const Json& msg = m[i];
    if (!msg.is_object()) bad(key, "expected an object");
    const Json* role = field(msg, "role");
    if (!role) bad(key + ".role", "missing");
    std::string r = get_string(*role, key + ".role");
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant")
      bad(key + ".role", "'" + r + "' is not supported (system, developer, user, assistant)");
    const Json* content = field(msg, "content");
    out.push_back(ChatMessage{r, content ? message_content(*content, key + ".content") : ""});
  }
}

// A request body as one JSON object, or ApiError 400.
Json parse_body(std::string_view body) {
  if (json_depth(body, 64) > 64) throw ApiError(400, "the request body is nested more than 64 levels deep");
  Json j;
  try {
    j = Json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e400
    std::string what = e.what();
    const size_t colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    throw ApiError(400, "the request body is not valid JSON: " + what);
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object, not " + std::string(j.type_name()));
  return j;
}

}  // namespace

Request parse_request(std::string_view body, Endpoint ep, const Limits& lim) {
  const Json j = parse_body(body);

  Request r;
  r.endpoint = ep;
  sample::GenerateOptions& o = r.opts;
  sample::SamplerOptions& s = o.sampler;
  if (const Json* v = field(j, "model")) r.model = get_string(*v, "model");
  if (ep == Endpoint::Completions) {
    const Json* p = field(j, "prompt");
    if (!p) bad("prompt", "missing");
    read_prompts(*p, lim, r.prompts);
  } else {
    const Json* m = field(j, "messages");
    if (!m) bad("messages", "missing");
    read_messages(*m, r.messages);
  }
  if (const Json* v = field(j, "stream")) r.stream = get_bool(*v, "stream");
  if (const Json* v = field(j, "stream_options")) {
    if (!v->is_object()) bad("stream_options", "expected an object");
    if (const Json* u = field(*v, "include_usage")) r.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  o.max_tokens = ep == Endpoint::Completions ? std::min(lim.default_completion_tokens, lim.max_tokens) : lim.max_tokens;
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (const Json* v = field(j, key)) {
      const int64_t n = get_int(*v, key, 0, std::numeric_limits<int32_t>::max());
      if (n > lim.max_tokens)
        throw ApiError(400,
                       "'" + std::string(key) + "': " + std::to_string(n) + " is more than this server's limit of " +
                           std::to_string(lim.max_tokens) + " tokens (lm-serve --max-tokens)",
                       "invalid_request_error", key);
      o.max_tokens = int(n);
    }
  if (const Json* v = field(j, "temperature")) s.temperature = get_float(*v, "temperature", 0, 2);
  if (const Json* v = field(j, "top_p")) s.top_p = get_float(*v, "top_p", 0, 1);
  if (const Json* v = field(j, "presence_penalty")) s.presence_penalty = get_float(*v, "presence_penalty", -2, 2);
  if (const Json* v = field(j, "frequency_penalty")) s.frequency_penalty = get_float(*v, "frequency_penalty", -2, 2);
  if (const Json* v = field(j, "top_k")) s.top_k = int(get_int(*v, "top_k", 0, 1 << 24));
  if (const Json* v = field(j, "min_p")) s.min_p = get_float(*v, "min_p", 0, 1);
  if (const Json* v = field(j, "typical_p")) s.typical_p = get_float(*v, "typical_p", 0, 1);
  if (const Json* v = field(j, "repeat_penalty")) s.repeat_penalty = get_float(*v, "repeat_penalty", 0, 100);
  if (const Json* v = field(j, "n")) r.n = int(get_int(*v, "n", 1, lim.max_choices));
  const size_t n_prompts = ep == Endpoint::Completions ? r.prompts.size() : 1;
  if (size_t(r.n) * n_prompts > size_t(lim.max_choices))
    bad("n", std::to_string(r.n) + " choices for each of " + std::to_string(n_prompts) + " prompts is more than " +
                 std::to_string(lim.max_choices));
  if (const Json* v = field(j, "seed")) {
    if (v->is_number_unsigned())
      r.seed = v->get<uint64_t>();
    else
      r.seed = uint64_t(get_int(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  }
  if (const Json* v = field(j, "stop")) {
    if (v->is_string()) {
      o.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > lim.max_stop) bad("stop", "more than " + std::to_string(lim.max_stop) + " stop strings");
      for (const Json& e : *v) o.stop.push_back(get_string(e, "stop"));
    } else {
      bad("stop", "expected a string or an array of strings, not " + std::string(v->type_name()));
    }
    for (const std::string& st : o.stop) {
      if (st.empty()) bad("stop", "an empty stop string");
      if (st.size() > lim.max_stop_bytes)
        bad("stop", "a stop string longer than " + std::to_string(lim.max_stop_bytes) + " bytes");
    }
  }
  if (const Json* v = field(j, "user")) r.user = get_string(*v, "user");
  if (ep == Endpoint::Completions) {
    if (const Json* v = field(j, "logprobs")) {
      // Completions: the number of alternatives per token (0 = the chosen token's only).
      r.logprobs = true;
      o.top_logprobs = int(get_int(*v, "logprobs", 0, 5));
    }
  } else {
    if (const Json* v = field(j, "logprobs")) r.logprobs = get_bool(*v, "logprobs");
    if (const Json* v = field(j, "top_logprobs")) {
      o.top_logprobs = int(get_int(*v, "top_logprobs", 0, 20));
      if (o.top_logprobs > 0 && !r.logprobs) bad("top_logprobs", "needs \"logprobs\": true");
    }
  }
  try {
    s.validate();
  } catch (const UsageError& e) {
    throw ApiError(400, e.what());
  }
  return r;
}

std::string finish_reason(const std::string& stop_reason) {
  if (stop_reason == "eos" || stop_reason == "stop") return "stop";
  if (stop_reason == "length" || stop_reason == "context") return "length";
  return stop_reason;
}

namespace {

Json bytes_json(const std::string& b) {
  Json a = Json::array();
  for (unsigned char c : b) a.push_back(int(c));
  return a;
}

// The logprobs member of a completions choice: tokens, token_logprobs, top_logprobs, text_offset.
Json completion_logprobs(const std::vector<TokenLogprobs>& lp, const Tokenizer& tok, bool top) {
  Json tokens = Json::array(), lps = Json::array(), tops = Json::array(), offsets = Json::array();
  size_t offset = 0;
  for (const TokenLogprobs& t : lp) {
    const std::string piece = tok.token_bytes(t.id);
    tokens.push_back(piece);
    lps.push_back(json_number(t.logprob));
    Json alt = Json::object();
    for (const auto& a : t.top) alt[tok.token_bytes(a.id)] = json_number(a.logprob);
    tops.push_back(top ? alt : Json(nullptr));
    offsets.push_back(offset);
    offset += piece.size();
  }
  return Json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// The logprobs member of a chat choice: {"content": [{token, logprob, bytes, top_logprobs}]}.
Json chat_logprobs(const std::vector<TokenLogprobs>& lp, const Tokenizer& tok) {
  Json content = Json::array();
  for (const TokenLogprobs& t : lp) {
    const std::string piece = tok.token_bytes(t.id);
    Json top = Json::array();
    for (const auto& a : t.top) {
      const std::string p = tok.token_bytes(a.id);
      top.push_back({{"token", p}, {"logprob", json_number(a.logprob)}, {"bytes", bytes_json(p)}});
    }
    content.push_back(
        {{"token", piece}, {"logprob", json_number(t.logprob)}, {"bytes", bytes_json(piece)}, {"top_logprobs", top}});
  }
  return Json{{"content", content}};
}

Json logprobs_json(const Request& r, const std::vector<TokenLogprobs>& lp, const Tokenizer& tok) {
  if (!r.logprobs) return nullptr;
  return r.endpoint == Endpoint::Chat ? chat_logprobs(lp, tok) : completion_logprobs(lp, tok, true);
}

Json usage_json(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

Json head_json(const ResponseHead& h, const char* object) {
  return Json{{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

}  // namespace

Json response_json(const Request& r, const ResponseHead& h, const std::vector<Choice>& choices, const Usage& u,
                   const Tokenizer& tok) {
  const bool chat = r.endpoint == Endpoint::Chat;
  Json j = head_json(h, chat ? "chat.completion" : "text_completion");
  Json& cs = j["choices"] = Json::array();
  for (const Choice& c : choices) {
    if (chat)
      cs.push_back({{"index", c.index},
                    {"message", {{"role", "assistant"}, {"content", c.text}}},
                    {"logprobs", logprobs_json(r, c.logprobs, tok)},
                    {"finish_reason", c.finish_reason}});
    else
      cs.push_back({{"text", c.text},
                    {"index", c.index},
                    {"logprobs", logprobs_json(r, c.logprobs, tok)},
                    {"finish_reason", c.finish_reason}});
  }
  j["usage"] = usage_json(u);
  return j;
}

Json chunk_json(const Request& r, const ResponseHead& h, int index, const std::string& text, bool first,
                const std::vector<TokenLogprobs>& logprobs, const std::string& finish, const Tokenizer& tok) {
  const bool chat = r.endpoint == Endpoint::Chat;
  Json j = head_json(h, chat ? "chat.completion.chunk" : "text_completion");
  const Json lp = r.logprobs && !logprobs.empty() ? logprobs_json(r, logprobs, tok) : Json(nullptr);
  const Json fin = finish.empty() ? Json(nullptr) : Json(finish);
  if (chat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (first || !text.empty()) delta["content"] = text;
    j["choices"] = Json::array({{{"index", index}, {"delta", delta}, {"logprobs", lp}, {"finish_reason", fin}}});
  } else {
    j["choices"] = Json::array({{{"text", text}, {"index", index}, {"logprobs", lp}, {"finish_reason", fin}}});
  }
  return j;
}

Json usage_chunk_json(const Request& r, const ResponseHead& h, const Usage& u) {
  Json j = head_json(h, r.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = Json::array();
  j["usage"] = usage_json(u);
  return j;
}

EmbeddingRequest parse_embedding_request(std::string_view body, size_t max_inputs) {
  const Json j = parse_body(body);
  EmbeddingRequest r;
  if (const Json* v = field(j, "model")) r.model = get_string(*v, "model");
  const Json* in = field(j, "input");
  if (!in) bad("input", "missing");
  if (in->is_string()) {
    r.input.push_back(in->get<std::string>());
  } else if (in->is_array() && !in->empty()) {
    if (in->size() > max_inputs) bad("input", "more than " + std::to_string(max_inputs) + " inputs");
    for (const Json& e : *in) {
      if (!e.is_string()) bad("input", "expected a string or an array of strings (token ids are not supported)");
      r.input.push_back(e.get<std::string>());
    }
  } else {
    bad("input", "expected a string or a non-empty array of strings");
  }
  if (const Json* v = field(j, "encoding_format")) {
    const std::string f = get_string(*v, "encoding_format");
    if (f != "float" && f != "base64") bad("encoding_format", "'" + f + "' is not float or base64");
    r.base64 = f == "base64";
  }
  if (const Json* v = field(j, "dimensions")) r.dimensions = int(get_int(*v, "dimensions", 1, 1 << 20));
  if (const Json* v = field(j, "user")) r.user = get_string(*v, "user");
  return r;
}

namespace {

std::string base64(const unsigned char* p, size_t n) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = uint32_t(p[i]) << 16 | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out += k[v >> 18 & 63];
    out += k[v >> 12 & 63];
    out += i + 1 < n ? k[v >> 6 & 63] : '=';
    out += i + 2 < n ? k[v & 63] : '=';
  }
  return out;
}

}  // namespace

Json embedding_json(const EmbeddingRequest& r, const std::string& model, const std::vector<float>& vectors, int dim,
                    int prompt_tokens) {
  Json data = Json::array();
  for (size_t i = 0; i < r.input.size(); ++i) {
    const float* v = vectors.data() + i * size_t(dim);
    Json e;
    if (r.base64) {
      // The float32 values' bytes, little-endian, as OpenAI's base64 format.
      static_assert(std::endian::native == std::endian::little, "base64 embeddings are the little-endian bytes");
      e = base64(reinterpret_cast<const unsigned char*>(v), size_t(dim) * sizeof(float));
    } else {
      e = Json::array();
      for (int c = 0; c < dim; ++c) e.push_back(json_number(v[c]));
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(e)}});
  }
  return Json{{"object", "list"},
              {"data", std::move(data)},
              {"model", model},
              {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

std::string sse_event(const Json& j) { return "data: " + dump_json(j) + "\n\n"; }

bool same_key(std::string_view presented, std::string_view key) {
  // Every byte of the presented key is compared (against the key repeated, so the loop does not
  // depend on where they differ), and the lengths are folded in.
  unsigned diff = presented.size() != key.size();
  if (key.empty()) return presented.empty();
  for (size_t i = 0; i < presented.size(); ++i)
    diff |= unsigned((unsigned char)presented[i] ^ (unsigned char)key[i % key.size()]);
  return diff == 0;
}

}  // namespace lm::serve
