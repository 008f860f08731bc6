// The OpenAI API's side of lm-serve: request bodies of /v1/completions, /v1/chat/completions and
// /v1/embeddings read into generation options (with the API's field names, ranges and error objects), and the
// responses, stream chunks and error bodies written back. No sockets here: the tool does the
// HTTP (tools/lm-serve.cpp) and lib/serve/engine the decoding; docs/serve.md.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.hpp"
#include "sample/generate.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::serve {

// An error as the API reports it: the HTTP status and the body
// {"error":{"message","type","param","code"}} (param and code null when empty).
class ApiError : public std::exception {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : status(status),
        message(std::move(message)),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  const char* what() const noexcept override { return message.c_str(); }
  int status;
  std::string message, type, param, code;
};

// The error body of `e`.
Json error_json(const ApiError& e);

enum class Endpoint { Completions, Chat };

struct ChatMessage {
  std::string role;  // system, user or assistant ("developer" is read as system)
  std::string content;
};

// One prompt of /v1/completions: a text, or token ids when the request gave numbers.
struct Prompt {
  std::string text;
  std::vector<int> ids;
  bool is_ids = false;
};

// What the server allows; a request asking for more is refused with 400.
struct Limits {
  int n_vocab = 0;        // token ids of a prompt must be below it
  int max_tokens = 4096;  // the largest max_tokens a request may ask for
  int max_choices = 16;   // n x prompts
  size_t max_stop = 16;   // stop strings
  size_t max_stop_bytes = 256;
  // max_tokens when a request does not say: /v1/completions' default is OpenAI's 16; chat goes
  // on until a stop condition, the context end or `max_tokens`.
  int default_completion_tokens = 16;
};

// A request, read and checked.
struct Request {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;                  // as given ("" when absent)
  std::vector<Prompt> prompts;        // completions: one or more
  std::vector<ChatMessage> messages;  // chat
  sample::GenerateOptions opts;       // max_tokens, stop, top_logprobs, sampler
  int n = 1;                          // choices per prompt
  std::optional<uint64_t> seed;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // report each token's log-probability
  std::string user;
};

// The largest nesting of arrays and objects in `text` (outside strings); parsing stops counting
// beyond `limit`. Requests nested deeper than 64 are refused before they are parsed.
int json_depth(std::string_view text, int limit);

// Reads a request body. Unknown fields are ignored; null is the same as absent. Throws ApiError
// (400, naming the field in `param`) for malformed JSON, a wrong type, a value out of range.
// The sampler starts from lm's defaults (llama.cpp's: temperature 0.8, top_k 40, top_p 0.95,
// min_p 0.05), which the request's fields override.
Request parse_request(std::string_view body, Endpoint ep, const Limits& lim);

// The OpenAI finish_reason of a stop reason of lm::sample ("eos" and "stop" -> "stop",
// "length" and "context" -> "length").
std::string finish_reason(const std::string& stop_reason);

// One token's log-probability with its alternatives, as reported.
struct TokenLogprobs {
  int id = 0;
  float logprob = 0;
  std::vector<sample::TokenLogprob> top;
};

// A finished choice.
struct Choice {
  int index = 0;
  std::string text;
  std::string finish_reason;
  std::vector<TokenLogprobs> logprobs;  // when the request asked for them
};

struct Usage {
  int prompt_tokens = 0, completion_tokens = 0;
};

// What every response and chunk carries.
struct ResponseHead {
  std::string id;  // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;
  std::string model;
};

// The body of a non-streaming response: text_completion or chat.completion.
Json response_json(const Request& r, const ResponseHead& h, const std::vector<Choice>& choices, const Usage& u,
                   const Tokenizer& tok);

// One stream chunk for choice `index`: its new text (with the chat role in the first chunk of a
// choice when `first`), the log-probabilities of its tokens, and finish_reason when it ended.
Json chunk_json(const Request& r, const ResponseHead& h, int index, const std::string& text, bool first,
                const std::vector<TokenLogprobs>& logprobs, const std::string& finish, const Tokenizer& tok);
// The last chunk of a stream with stream_options.include_usage: no choices, the usage.
Json usage_chunk_json(const Request& r, const ResponseHead& h, const Usage& u);

// A /v1/embeddings request: the texts, the encoding, and the dimensions asked for (0 = not
// given; the server refuses any other than its model's).
struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> input;
  bool base64 = false;  // encoding_format "base64": the floats' little-endian bytes
  int dimensions = 0;
  std::string user;
};
// Reads an embeddings body: input a string or a non-empty array of up to `max_inputs` strings
// (token-id inputs are refused). Throws ApiError as parse_request does.
EmbeddingRequest parse_embedding_request(std::string_view body, size_t max_inputs);
// The response: {"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}
// with `vectors` holding dim floats per input, in order.
Json embedding_json(const EmbeddingRequest& r, const std::string& model, const std::vector<float>& vectors, int dim,
                    int prompt_tokens);

// One server-sent event: "data: <json>\n\n".
std::string sse_event(const Json& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// Constant-time comparison of a presented key with the configured one (time depends only on
// the presented key's length).
bool same_key(std::string_view presented, std::string_view key);

}  // namespace lm::serve
