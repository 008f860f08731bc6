// JSON Lines (lib/base/json.*, lib/train/finetune.cpp): the JSON object parser on the whole
// input and on each line, then the prompt/completion loader of lm-finetune on the input as a
// file, tokenized with the seed tokenizer.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/json.hpp"
#include "base/utf8.hpp"
#include "fuzz_util.hpp"
#include "train/finetune.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer tok = fuzz::seed_tokenizer();
  static fuzz::MemFile file;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> members;
  std::string error;
  if (!parse_json_strings(text, members, error) && error.empty()) std::abort();
  for (size_t start = 0; start <= text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    members.clear();
    error.clear();
    if (parse_json_strings(text.substr(start, end - start), members, error)) {
      // Decoded strings are UTF-8 (escapes included) when the input line is.
      if (valid_utf8(text.substr(start, end - start)))
        for (const auto& [k, v] : members)
          if (!valid_utf8(k) || !valid_utf8(v)) std::abort();
    } else if (error.empty()) {
      std::abort();
    }
    start = end + 1;
  }
  const std::string& path = file.set(data, size);
  fuzz::check([&] { (void)train::load_prompt_completion(path, tok, true, 1); });
  return 0;
}
