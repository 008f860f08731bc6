// Chat templates (lib/chat/chat_template.*): the input as a GGUF's tokenizer.chat_template,
// recognised as llama.cpp recognises it and applied to a short conversation; then as a
// --chat-template name. Detection may refuse a template (lm::Error); nothing else may go wrong.
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.hpp"
#include "fuzz_util.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const std::vector<chat::Message> msgs = {
      {"system", "Be brief."}, {"user", "Hello \xc3\xa9!"}, {"assistant", "Hi."}, {"user", "And?"}};
  auto apply = [&](const chat::Template& t) {
    for (bool add : {false, true}) {
      try {
        (void)t.apply(msgs, add);
      } catch (const UsageError&) {  // a role or system message the family cannot write
      }
    }
  };
  try {
    apply(chat::Template::detect(text));
  } catch (const UsageError&) {
    std::abort();  // detection reads file bytes: never a usage error
  } catch (const Error&) {
  }
  try {
    apply(chat::Template::named(text));
  } catch (const UsageError&) {  // an unknown name
  }
  return 0;
}
