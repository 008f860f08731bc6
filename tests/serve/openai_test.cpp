// Tests for lib/serve/openai: request fields to generation options with the API's ranges and
// error objects, the response and chunk shapes the OpenAI clients read, and the key comparison.
#include "serve/openai.hpp"

#include <doctest/doctest.h>

#include <string>

#include "base/json.hpp"

using namespace lm;
using namespace lm::serve;

namespace {

Limits limits() {
  Limits l;
  l.n_vocab = 100;
  l.max_tokens = 50;
  l.max_choices = 4;
  return l;
}

Request parse(const std::string& body, Endpoint ep = Endpoint::Completions) {
  return parse_request(body, ep, limits());
}

// The ApiError parsing `body` throws.
ApiError error_of(const std::string& body, Endpoint ep = Endpoint::Completions) {
  try {
    parse(body, ep);
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("no error for " << body);
  return ApiError(0, "");
}

}  // namespace

TEST_CASE("a completion request's fields become generation options") {
  const Request r = parse(R"({"model":"m.gguf","prompt":"The jury","max_tokens":7,"temperature":0,"top_p":0.5,
    "stop":["\n","end"],"seed":42,"n":2,"presence_penalty":0.5,"frequency_penalty":-1,"user":"u1",
    "top_k":3,"min_p":0.1,"typical_p":0.9,"repeat_penalty":1.1,"logprobs":2,"stream":true,
    "stream_options":{"include_usage":true},"unknown_field":{"x":[1,2]}})");
  CHECK(r.model == "m.gguf");
  REQUIRE(r.prompts.size() == 1);
  CHECK(r.prompts[0].text == "The jury");
  CHECK(!r.prompts[0].is_ids);
  CHECK(r.opts.max_tokens == 7);
  CHECK(r.opts.sampler.temperature == 0.0f);
  CHECK(r.opts.sampler.top_p == 0.5f);
  CHECK(r.opts.stop == std::vector<std::string>{"\n", "end"});
  CHECK(r.seed == 42u);
  CHECK(r.n == 2);
  CHECK(r.opts.sampler.presence_penalty == 0.5f);
  CHECK(r.opts.sampler.frequency_penalty == -1.0f);
  CHECK(r.user == "u1");
  CHECK(r.opts.sampler.top_k == 3);
  CHECK(r.opts.sampler.min_p == doctest::Approx(0.1));
  CHECK(r.opts.sampler.typical_p == doctest::Approx(0.9));
  CHECK(r.opts.sampler.repeat_penalty == doctest::Approx(1.1));
  CHECK(r.logprobs);
  CHECK(r.opts.top_logprobs == 2);
  CHECK(r.stream);
  CHECK(r.include_usage);
}

TEST_CASE("absent and null fields keep the defaults") {
  const Request r = parse(R"({"prompt":"x","temperature":null,"stop":null,"seed":null})");
  const sample::SamplerOptions d;
  CHECK(r.model.empty());
  CHECK(r.opts.max_tokens == 16);  // OpenAI's default for completions
  CHECK(r.opts.sampler.temperature == d.temperature);
  CHECK(r.opts.sampler.top_k == d.top_k);
  CHECK(r.opts.stop.empty());
  CHECK(!r.seed);
  CHECK(r.n == 1);
  CHECK(!r.stream);
  CHECK(!r.logprobs);
  // Chat goes on until the server's cap.
  const Request c = parse(R"({"messages":[{"role":"user","content":"hi"}]})", Endpoint::Chat);
  CHECK(c.opts.max_tokens == 50);
}

TEST_CASE("prompts: a string, strings, token ids, arrays of token ids") {
  CHECK(parse(R"({"prompt":["a","b"]})").prompts.size() == 2);
  const Request ids = parse(R"({"prompt":[1,2,99]})");
  REQUIRE(ids.prompts.size() == 1);
  CHECK(ids.prompts[0].is_ids);
  CHECK(ids.prompts[0].ids == std::vector<int>{1, 2, 99});
  CHECK(parse(R"({"prompt":[[1],[2,3]]})").prompts.size() == 2);
  CHECK(error_of(R"({"prompt":[1,100]})").param == "prompt");  // beyond the vocabulary
  CHECK(error_of(R"({"prompt":[-1]})").param == "prompt");
  CHECK(error_of(R"({"prompt":[]})").param == "prompt");
  CHECK(error_of(R"({"prompt":{"a":1}})").param == "prompt");
  CHECK(error_of(R"({"prompt":["a","b","c","d","e"]})").param == "prompt");  // more than max_choices
  CHECK(error_of(R"({"max_tokens":3})").param == "prompt");
  CHECK(error_of(R"({"prompt":["a","b"],"n":3})").param == "n");  // 6 choices > 4
}

TEST_CASE("chat messages: roles, text parts, developer as system") {
  const Request r = parse(R"({"messages":[{"role":"developer","content":"be brief"},
    {"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}]},
    {"role":"assistant","content":null,"name":"x"}],"max_completion_tokens":5,"logprobs":true,"top_logprobs":3})",
                          Endpoint::Chat);
  REQUIRE(r.messages.size() == 3);
  CHECK(r.messages[0].role == "system");
  CHECK(r.messages[1].content == "hello");
  CHECK(r.messages[2].content.empty());
  CHECK(r.opts.max_tokens == 5);
  CHECK(r.logprobs);
  CHECK(r.opts.top_logprobs == 3);
  CHECK(error_of(R"({"messages":[]})", Endpoint::Chat).param == "messages");
  CHECK(error_of(R"({"messages":[{"role":"tool","content":"x"}]})", Endpoint::Chat).param == "messages[0].role");
  CHECK(error_of(R"({"messages":[{"content":"x"}]})", Endpoint::Chat).param == "messages[0].role");
  CHECK(error_of(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", Endpoint::Chat).param ==
        "messages[0].content");
  CHECK(error_of(R"({"messages":[{"role":"user","content":5}]})", Endpoint::Chat).param == "messages[0].content");
  CHECK(error_of(R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", Endpoint::Chat).param ==
        "top_logprobs");
  CHECK(error_of(R"({"messages":[{"role":"user","content":"x"}],"logprobs":3})", Endpoint::Chat).param == "logprobs");
}

TEST_CASE("wrong types and values out of range are 400 naming the field") {
  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c :
       {Case{R"({"prompt":"x","max_tokens":-1})", "max_tokens"},
        Case{R"({"prompt":"x","max_tokens":51})", "max_tokens"},  // over the server's cap
        Case{R"({"prompt":"x","max_tokens":1e300})", "max_tokens"},
        Case{R"({"prompt":"x","max_tokens":99999999999999999999})", "max_tokens"},
        Case{R"({"prompt":"x","max_tokens":2.5})", "max_tokens"},
        Case{R"({"prompt":"x","max_tokens":"7"})", "max_tokens"},
        Case{R"({"prompt":"x","temperature":2.5})", "temperature"},
        Case{R"({"prompt":"x","temperature":"hot"})", "temperature"}, Case{R"({"prompt":"x","top_p":1.5})", "top_p"},
        Case{R"({"prompt":"x","presence_penalty":3})", "presence_penalty"}, Case{R"({"prompt":"x","n":0})", "n"},
        Case{R"({"prompt":"x","stop":5})", "stop"}, Case{R"({"prompt":"x","stop":[""]})", "stop"},
        Case{R"({"prompt":"x","stop":[1]})", "stop"}, Case{R"({"prompt":"x","stream":1})", "stream"},
        Case{R"({"prompt":"x","logprobs":6})", "logprobs"}, Case{R"({"prompt":"x","top_k":-3})", "top_k"},
        Case{R"({"prompt":"x","model":7})", "model"}, Case{R"({"prompt":"x","seed":"s"})", "seed"}}) {
    CAPTURE(c.body);
    const ApiError e = error_of(c.body);
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
  }
  CHECK(parse(R"({"prompt":"x","max_tokens":16.0})").opts.max_tokens == 16);
  CHECK(parse(R"({"prompt":"x","seed":-1})").seed == ~uint64_t(0));
  CHECK(parse(R"({"prompt":"x","seed":18446744073709551615})").seed == ~uint64_t(0));
}

TEST_CASE("bodies that are not one JSON object are 400") {
  for (const std::string& body :
       {std::string(""), std::string("{"), std::string("[1]"), std::string("\"x\""),
        std::string("{\"prompt\":\"\xff\xfe\"}"), std::string("{\"prompt\":\"\\ud800\"}"),
        std::string("{\"prompt\":\"x\"} trailing"), std::string("{\"prompt\":\"x\",\"max_tokens\":1e400}")}) {
    CAPTURE(body);
    CHECK(error_of(body).status == 400);
  }
  // Deep nesting is refused before nlohmann-json sees it.
  std::string deep = "{\"prompt\":\"x\",\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const ApiError e = error_of(deep);
  CHECK(e.status == 400);
  CHECK(e.message.find("nested") != std::string::npos);
  CHECK(json_depth(R"({"a":"[[[[","b":[{}]})", 64) == 3);
  CHECK(json_depth(R"({"a":"\"[[[["})", 64) == 1);
}

TEST_CASE("the error body has message, type, param and code") {
  CHECK(dump_json(error_json(ApiError(400, "bad", "invalid_request_error", "n"))) ==
        R"({"error":{"message":"bad","type":"invalid_request_error","param":"n","code":null}})");
  CHECK(dump_json(error_json(ApiError(401, "no", "invalid_request_error", "", "invalid_api_key"))) ==
        R"({"error":{"message":"no","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})");
}

TEST_CASE("finish reasons") {
  CHECK(finish_reason("eos") == "stop");
  CHECK(finish_reason("stop") == "stop");
  CHECK(finish_reason("length") == "length");
  CHECK(finish_reason("context") == "length");
}

TEST_CASE("the API key comparison") {
  CHECK(same_key("secret", "secret"));
  CHECK(!same_key("secreT", "secret"));
  CHECK(!same_key("secret1", "secret"));
  CHECK(!same_key("secre", "secret"));
  CHECK(!same_key("", "secret"));
  CHECK(!same_key("secretsecret", "secret"));
}

TEST_CASE("stream events") {
  CHECK(sse_event(Json{{"a", 1}}) == "data: {\"a\":1}\n\n");
  CHECK(kSseDone == "data: [DONE]\n\n");
}

namespace {

// Pieces 0 <unk>, 1 <s>, 2 </s>, 3 " hi", 4 "!".
Tokenizer tiny_tokenizer() {
  VocabSpec v;
  v.family = "llama";
  v.pieces = {"<unk>", "<s>", "</s>", "\xe2\x96\x81hi", "!"};
  v.scores = {0, 0, 0, -1, -2};
  v.types = {PieceType::Unknown, PieceType::Control, PieceType::Control, PieceType::Normal, PieceType::Normal};
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  return Tokenizer::from_vocab(v, "test");
}

}  // namespace

TEST_CASE("responses and chunks in the shapes the clients read") {
  const Tokenizer tok = tiny_tokenizer();
  const ResponseHead h{"cmpl-1", 1700000000, "m.gguf"};
  Request r = parse(R"({"prompt":"x","logprobs":1})");
  std::vector<Choice> choices{{0, " hi!", "stop", {{3, -0.5f, {{3, -0.5f}}}, {4, -0.25f, {{4, -0.25f}}}}}};
  CHECK(
      dump_json(response_json(r, h, choices, Usage{3, 2}, tok)) ==
      R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"m.gguf","choices":[{"text":" hi!",)"
      R"("index":0,"logprobs":{"tokens":[" hi","!"],"token_logprobs":[-0.5,-0.25],"top_logprobs":[{" hi":-0.5},)"
      R"({"!":-0.25}],"text_offset":[0,3]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,)"
      R"("total_tokens":5}})");
  r.logprobs = false;
  CHECK(dump_json(chunk_json(r, h, 1, "!", false, {}, "", tok)) ==
        R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"m.gguf","choices":[{"text":"!",)"
        R"("index":1,"logprobs":null,"finish_reason":null}]})");

  Request c = parse(R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", Endpoint::Chat);
  const ResponseHead ch{"chatcmpl-1", 1700000000, "m.gguf"};
  CHECK(
      dump_json(response_json(c, ch, {{0, "!", "length", {{4, -0.25f, {}}}}}, Usage{3, 1}, tok)) ==
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m.gguf","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"!"},"logprobs":{"content":[{"token":"!","logprob":-0.25,"bytes":[33],)"
      R"("top_logprobs":[]}]},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})");
  c.logprobs = false;
  CHECK(
      dump_json(chunk_json(c, ch, 0, "", true, {}, "", tok)) ==
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m.gguf","choices":[{"index":0,)"
      R"("delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})");
  CHECK(
      dump_json(chunk_json(c, ch, 0, "", false, {}, "stop", tok)) ==
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m.gguf","choices":[{"index":0,)"
      R"("delta":{},"logprobs":null,"finish_reason":"stop"}]})");
  CHECK(dump_json(usage_chunk_json(c, ch, Usage{3, 1})) ==
        R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m.gguf","choices":[],)"
        R"("usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})");
}

TEST_CASE("embedding requests and responses") {
  const EmbeddingRequest r = parse_embedding_request(
      R"({"model":"m.gguf","input":["a","b"],"encoding_format":"float","dimensions":2,"x":1})", 4);
  CHECK(r.input == std::vector<std::string>{"a", "b"});
  CHECK(!r.base64);
  CHECK(r.dimensions == 2);
  CHECK(parse_embedding_request(R"({"input":"a"})", 4).input.size() == 1);
  for (const char* body :
       {R"({})", R"({"input":[]})", R"({"input":[1,2]})", R"({"input":["a","b","c","d","e"]})", R"({"input":5})",
        R"({"input":"a","encoding_format":"int8"})", R"({"input":"a","dimensions":0})"}) {
    CAPTURE(body);
    try {
      parse_embedding_request(body, 4);
      FAIL("accepted");
    } catch (const ApiError& e) {
      CHECK(e.status == 400);
      CHECK(!e.param.empty());
    }
  }
  const std::vector<float> v{1.0f, -0.5f, 0.25f, 0.0f};
  CHECK(dump_json(embedding_json(r, "m.gguf", v, 2, 3)) ==
        R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,-0.5]},{"object":"embedding",)"
        R"("index":1,"embedding":[0.25,0.0]}],"model":"m.gguf","usage":{"prompt_tokens":3,"total_tokens":3}})");
  // base64: the float32 bytes, little-endian (1.0f = 00 00 80 3f).
  const EmbeddingRequest b = parse_embedding_request(R"({"input":"a","encoding_format":"base64"})", 4);
  CHECK(embedding_json(b, "m", {1.0f}, 1, 1)["data"][0]["embedding"] == "AACAPw==");
  CHECK(embedding_json(b, "m", {1.0f, -2.0f}, 2, 1)["data"][0]["embedding"] == "AACAPwAAAMA=");
}
