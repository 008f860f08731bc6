// The generation loop: a prompt through a Session, then one token at a time through the
// sampler until a stop condition, with the output text streamed at UTF-8 character boundaries
// and held back while it could still be the start of a stop string.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "base/rng.hpp"
#include "model/session.hpp"
#include "sample/sampler.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::sample {

// What happens when prompt plus output reach the context size.
enum class Overflow {
  Stop,   // a prompt that does not fit is an error; generation stops at the end of the context
  Shift,  // keep the last half of the window (prompts too: their last half-context tokens),
          // recompute the cache over it and go on, as llama.cpp's context shift does
};

struct GenerateOptions {
  int n_ctx = 0;                  // context size of the Session; 0 = the model's
  int n_batch = 512;              // prompt tokens per matrix product
  int max_tokens = 128;           // new tokens at most; -1 = until a stop condition or the context end
  std::vector<std::string> stop;  // stop strings: generation ends before the first one
  bool ignore_eos = false;        // keep going past the end-of-sequence token
  Overflow overflow = Overflow::Stop;
  int top_logprobs = 0;           // alternatives reported per token
  SamplerOptions sampler;
};

// One generated token. `text` is the output released with it: empty while a UTF-8 character or
// a possible stop string is incomplete, then everything held back so far.
struct TokenEvent {
  int id = 0;
  float logprob = 0;                  // log-probability under the model (before sampling steps)
  std::vector<TokenLogprob> top;      // top_logprobs alternatives, most likely first
  std::string text;
};

struct GenerateResult {
  int prompt_tokens = 0;
  int tokens = 0;               // generated
  std::string stop_reason;      // "length", "eos", "stop", "context"
  std::string text;             // all released text
  int shifts = 0;               // context shifts done
};

// Generates a continuation of `prompt` (token ids, BOS included if wanted; not empty).
// Throws UsageError if the prompt does not fit under Overflow::Stop, Error if the model
// produces a non-finite logit. `emit` is called once per generated token.
GenerateResult generate(model::Session& session, const Tokenizer& tok, const std::vector<int>& prompt,
                        const GenerateOptions& opts, Sampler& sampler, const std::function<void(const TokenEvent&)>& emit,
                        const Logger& log);

// The sampler seed of prompt number `line` (0-based) of a run seeded with `seed`: `seed` itself
// for line 0 (a single prompt is line 0), a seed derived from both for the others, so a line's
// completion does not depend on its neighbours. Since line 0 uses the seed as it is, the seed
// reported for any line, given back with -s, reproduces that line alone.
inline uint64_t line_seed(uint64_t seed, uint64_t line) { return line == 0 ? seed : derive_seed(seed, line); }

// Length of the longest prefix of `s` that ends at a UTF-8 character boundary (an incomplete
// trailing sequence is held back; invalid bytes are released as they are).
size_t utf8_complete_prefix(const std::string& s);

}  // namespace lm::sample
