// Chat templates: a conversation (system, user and assistant messages) as the prompt text a chat
// model was trained on. Like llama.cpp's llama_chat_apply_template (src/llama-chat.cpp), this is
// not a Jinja engine: a GGUF's tokenizer.chat_template is recognised as one of the known families
// by the strings it contains, in llama.cpp's order, and each family is written in C++. The names,
// the detection rule and the text of every family equal llama.cpp's; tests/data/chat/ holds
// llama.cpp's output for each family and its detection of real templates (docs/chat.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::chat {

struct Message {
  std::string role;  // system, user, assistant
  std::string content;
};

class Template {
 public:
  // A family by llama.cpp's name (template_names()). Throws lm::UsageError listing the known names.
  static Template named(const std::string& name);
  // The family of a GGUF's tokenizer.chat_template (Jinja source; a family's name is accepted too),
  // recognised as llama.cpp's llm_chat_detect_template does. Throws lm::Error "unrecognised chat
  // template ... use --chat-template NAME (known: ...)".
  static Template detect(const std::string& jinja);

  const std::string& name() const { return name_; }

  // The prompt text of the conversation; add_assistant appends the opening of the assistant's
  // turn. As in llama.cpp, some families ignore add_assistant: their text always ends where the
  // assistant's reply begins when the last message is the user's (llama2*, mistral-*, orion,
  // minicpm, rwkv-world, hunyuan-*). Throws lm::UsageError for a role other than system, user and
  // assistant, and for a system message the family would drop (any in yandex; one after the
  // first message in gigachat and hunyuan-dense/-vl); the message names its 1-based index.
  std::string apply(const std::vector<Message>& msgs, bool add_assistant) const;

 private:
  Template(std::string name, int family) : name_(std::move(name)), family_(family) {}
  std::string name_;
  int family_;
};

// The known family names, sorted.
std::vector<std::string> template_names();

// The template for a model file: `override_name` if not empty, else the GGUF's
// tokenizer.chat_template, else lm::Error naming the file and --chat-template.
Template for_model(const format::GgufFile& gguf, const std::string& path, const std::string& override_name);

// The BOS rule for a templated prompt: true when `text` begins with the text of the BOS piece
// (a family such as gigachat writes it itself), so a BOS must not be added before it.
bool begins_with_bos(const Tokenizer& tok, std::string_view text);

// The tokens of a templated prompt: the BOS first if `add_bos` (the model's add_bos, or --bos)
// and the text does not begin with it, then the text with control tokens parsed.
std::vector<int> encode_prompt(const Tokenizer& tok, std::string_view text, bool add_bos);

// A conversation as JSON Lines, one {"role": ..., "content": ...} object per line ("-" =
// stdin); blank lines are skipped. Throws FormatError "<file>:<line>: ..." for a line that is not
// a JSON object, lacks a string role or content, or has a role other than system, user or
// assistant, and for an input without messages; IoError if it cannot be read.
std::vector<Message> read_messages(const std::string& path);

}  // namespace lm::chat
