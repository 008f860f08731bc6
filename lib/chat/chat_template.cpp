// The families, their detection and their text follow llama.cpp's src/llama-chat.cpp
// (llm_chat_detect_template, llm_chat_apply_template); tests/data/chat/ holds llama.cpp's output.
#include "chat/chat_template.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"

namespace lm::chat {
namespace {

enum Family {
  CHATML, LLAMA_2, LLAMA_2_SYS, LLAMA_2_SYS_BOS, LLAMA_2_SYS_STRIP, MISTRAL_V1, MISTRAL_V3, MISTRAL_V3_TEKKEN,
  MISTRAL_V7, MISTRAL_V7_TEKKEN, PHI_3, PHI_4, FALCON_3, ZEPHYR, MONARCH, GEMMA, ORION, OPENCHAT, VICUNA,
  VICUNA_ORCA, DEEPSEEK, DEEPSEEK_2, DEEPSEEK_3, COMMAND_R, LLAMA_3, CHATGLM_3, CHATGLM_4, GLMEDGE, MINICPM,
  EXAONE_3, EXAONE_4, EXAONE_MOE, RWKV_WORLD, GRANITE_3_X, GRANITE_4_0, GRANITE_4_1, GIGACHAT, MEGREZ, YANDEX,
  BAILING, BAILING_THINK, BAILING2, LLAMA4, SMOLVLM, DOTS1, HUNYUAN_MOE, OPENAI_MOE, HUNYUAN_DENSE, HUNYUAN_VL,
  KIMI_K2, SEED_OSS, GROK_2, PANGU_EMBED, SOLAR_OPEN, UNKNOWN
};

// llama.cpp's names (LLM_CHAT_TEMPLATES), less deepseek-ocr (no template: the contents alone),
// plus dots1, which llama.cpp detects but gives no name.
const std::map<std::string, Family>& families() {
  static const std::map<std::string, Family> m = {
      {"chatml", CHATML},
      {"llama2", LLAMA_2},
      {"llama2-sys", LLAMA_2_SYS},
      {"llama2-sys-bos", LLAMA_2_SYS_BOS},
      {"llama2-sys-strip", LLAMA_2_SYS_STRIP},
      {"mistral-v1", MISTRAL_V1},
      {"mistral-v3", MISTRAL_V3},
      {"mistral-v3-tekken", MISTRAL_V3_TEKKEN},
      {"mistral-v7", MISTRAL_V7},
      {"mistral-v7-tekken", MISTRAL_V7_TEKKEN},
      {"phi3", PHI_3},
      {"phi4", PHI_4},
      {"falcon3", FALCON_3},
      {"zephyr", ZEPHYR},
      {"monarch", MONARCH},
      {"gemma", GEMMA},
      {"orion", ORION},
      {"openchat", OPENCHAT},
      {"vicuna", VICUNA},
      {"vicuna-orca", VICUNA_ORCA},
      {"deepseek", DEEPSEEK},
      {"deepseek2", DEEPSEEK_2},
      {"deepseek3", DEEPSEEK_3},
      {"command-r", COMMAND_R},
      {"llama3", LLAMA_3},
      {"chatglm3", CHATGLM_3},
      {"chatglm4", CHATGLM_4},
      {"glmedge", GLMEDGE},
      {"minicpm", MINICPM},
      {"exaone3", EXAONE_3},
      {"exaone4", EXAONE_4},
      {"exaone-moe", EXAONE_MOE},
      {"rwkv-world", RWKV_WORLD},
      {"granite", GRANITE_3_X},
      {"granite-4.0", GRANITE_4_0},
      {"granite-4.1", GRANITE_4_1},
      {"gigachat", GIGACHAT},
      {"megrez", MEGREZ},
      {"yandex", YANDEX},
      {"bailing", BAILING},
      {"bailing-think", BAILING_THINK},
      {"bailing2", BAILING2},
      {"llama4", LLAMA4},
      {"smolvlm", SMOLVLM},
      {"dots1", DOTS1},
      {"hunyuan-moe", HUNYUAN_MOE},
      {"gpt-oss", OPENAI_MOE},
      {"hunyuan-dense", HUNYUAN_DENSE},
      {"hunyuan-vl", HUNYUAN_VL},
      {"kimi-k2", KIMI_K2},
      {"seed_oss", SEED_OSS},
      {"grok-2", GROK_2},
      {"pangu-embedded", PANGU_EMBED},
      {"solar-open", SOLAR_OPEN},
  };
  return m;
}

std::string name_of(Family f) {
  for (const auto& [name, fam] : families())
    if (fam == f) return name;
  return "";
}

std::string known_list() {
  std::string s;
  for (const auto& [name, fam] : families()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

// llm_chat_detect_template, test for test, in its order.
Family detect_family(const std::string& tmpl) {
  auto it = families().find(tmpl);
  if (it != families().end()) return it->second;
  auto has = [&tmpl](const char* s) { return tmpl.find(s) != std::string::npos; };
  if (has("<|im_start|>")) {
    return has("<|im_sep|>") ? PHI_4 : has("<end_of_utterance>") ? SMOLVLM : CHATML;
  } else if (tmpl.find("mistral") == 0 || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return MISTRAL_V7;
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return MISTRAL_V1;
      if (has("\"[INST]\"")) return MISTRAL_V3_TEKKEN;
      return MISTRAL_V3;
    }
    if (has("content.strip()")) return LLAMA_2_SYS_STRIP;
    if (has("bos_token + '[INST]")) return LLAMA_2_SYS_BOS;
    if (has("<<SYS>>")) return LLAMA_2_SYS;
    return LLAMA_2;
  } else if (has("<|assistant|>") && has("<|end|>")) {
    return PHI_3;
  } else if (has("[gMASK]<sop>")) {
    return CHATGLM_4;
  } else if (has("<|assistant|>") && has("<|user|>")) {
    if (has("<|tool_declare|>")) return EXAONE_MOE;
    return has("</s>") ? FALCON_3 : GLMEDGE;
  } else if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) {
    return GLMEDGE;
  } else if (has("<|user|>") && has("<|endoftext|>")) {
    return ZEPHYR;
  } else if (has("bos_token + message['role']")) {
    return MONARCH;
  } else if (has("<start_of_turn>")) {
    return GEMMA;
  } else if (has("'\\n\\nAssistant: ' + eos_token")) {
    return ORION;
  } else if (has("GPT4 Correct ")) {
    return OPENCHAT;
  } else if (has("USER: ") && has("ASSISTANT: ")) {
    return has("SYSTEM: ") ? VICUNA_ORCA : VICUNA;
  } else if (has("### Instruction:") && has("<|EOT|>")) {
    return DEEPSEEK;
  } else if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) {
    return COMMAND_R;
  } else if (has("<|start_header_id|>") && has("<|end_header_id|>")) {
    return LLAMA_3;
  } else if (has("[gMASK]sop")) {
    return CHATGLM_3;
  } else if (has("<\xe7\x94\xa8\xe6\x88\xb7>")) {  // <用户>
    return MINICPM;
  } else if (has("'Assistant: ' + message['content'] + eos_token")) {
    return DEEPSEEK_2;
  } else if (has("<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>") && has("<\xef\xbd\x9c" "User\xef\xbd\x9c>") &&
             has("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>")) {  // <｜Assistant｜> ...
    return DEEPSEEK_3;
  } else if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) {
    return has("[|tool|]") ? EXAONE_4 : EXAONE_3;
  } else if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) {
    return RWKV_WORLD;
  } else if (has("<|start_of_role|>")) {
    if (has("<tool_call>") || has("<tools>")) return has("g4_default_system_message") ? GRANITE_4_0 : GRANITE_4_1;
    return GRANITE_3_X;
  } else if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]")) {
    return GIGACHAT;
  } else if (has("<|role_start|>")) {
    return MEGREZ;
  } else if (has(" \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:")) {  // " Ассистент:"
    return YANDEX;
  } else if (has("<role>ASSISTANT</role>") && has("'HUMAN'")) {
    return BAILING;
  } else if (has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>")) {
    return BAILING_THINK;
  } else if (has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>")) {
    return BAILING2;
  } else if (has("<|header_start|>") && has("<|header_end|>")) {
    return LLAMA4;
  } else if (has("<|endofuserprompt|>")) {
    return DOTS1;
  } else if (has("<|extra_0|>") && has("<|extra_4|>")) {
    return HUNYUAN_MOE;
  } else if (has("<|start|>") && has("<|channel|>")) {
    return OPENAI_MOE;
  } else if (has("<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>") &&
             has("<\xef\xbd\x9chy_begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>")) {
    return HUNYUAN_VL;
  } else if (has("<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>") &&
             has("<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81" "3\xef\xbd\x9c>")) {
    return HUNYUAN_DENSE;
  } else if (has("<|im_assistant|>assistant<|im_middle|>")) {
    return KIMI_K2;
  } else if (has("<seed:bos>")) {
    return SEED_OSS;
  } else if (has("'Assistant: '  + message['content'] + '<|separator|>")) {
    return GROK_2;
  } else if (has("[unused9]\xe7\xb3\xbb\xe7\xbb\x9f\xef\xbc\x9a[unused10]")) {  // [unused9]系统：[unused10]
    return PANGU_EMBED;
  } else if (has("<|begin|>") && has("<|end|>") && has("<|content|>")) {
    return SOLAR_OPEN;
  }
  return UNKNOWN;
}

// Whitespace at both ends, as C's isspace in the "C" locale.
std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Template Template::named(const std::string& name) {
  auto it = families().find(name);
  if (it == families().end())
    throw UsageError("unknown chat template '" + name + "'; known: " + known_list());
  return Template(it->first, it->second);
}

Template Template::detect(const std::string& jinja) {
  const Family f = detect_family(jinja);
  if (f == UNKNOWN)
    throw Error("unrecognised chat template (" + std::to_string(jinja.size()) +
                " bytes of Jinja that match none of the known families); use --chat-template NAME (known: " +
                known_list() + ")");
  return Template(name_of(f), f);
}

std::vector<std::string> template_names() {
  std::vector<std::string> v;
  for (const auto& [name, fam] : families()) v.push_back(name);
  return v;
}

std::string Template::apply(const std::vector<Message>& chat, bool add_ass) const {
  for (size_t i = 0; i < chat.size(); ++i) {
    const std::string& role = chat[i].role;
    const std::string at = "chat message " + std::to_string(i + 1) + ": ";
    if (role != "system" && role != "user" && role != "assistant")
      throw UsageError(at + "role '" + role + "' is not system, user or assistant");
    if (role != "system") continue;
    if (family_ == YANDEX || (i > 0 && (family_ == GIGACHAT || family_ == HUNYUAN_DENSE || family_ == HUNYUAN_VL)))
      throw UsageError(at + "the chat template " + name_ + " has no place for a system message" +
                       (family_ == YANDEX ? "" : " after the first message"));
  }
  std::string ss;
  const int t = family_;
  if (t == CHATML) {
    for (const auto& m : chat) ss += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_ass) ss += "<|im_start|>assistant\n";
  } else if (t == MISTRAL_V7 || t == MISTRAL_V7_TEKKEN) {
    const std::string sp = t == MISTRAL_V7 ? " " : "";
    for (const auto& m : chat) {
      if (m.role == "system") ss += "[SYSTEM_PROMPT]" + sp + m.content + "[/SYSTEM_PROMPT]";
      else if (m.role == "user") ss += "[INST]" + sp + m.content + "[/INST]";
      else ss += sp + m.content + "</s>";
    }
  } else if (t == MISTRAL_V1 || t == MISTRAL_V3 || t == MISTRAL_V3_TEKKEN) {
    const std::string lead = t == MISTRAL_V1 ? " " : "";
    const std::string trail = t == MISTRAL_V3_TEKKEN ? "" : " ";
    const bool trim_assistant = t == MISTRAL_V3;
    bool inside = false;
    for (const auto& m : chat) {
      if (!inside) {
        ss += lead + "[INST]" + trail;
        inside = true;
      }
      if (m.role == "system") {
        ss += m.content + "\n\n";
      } else if (m.role == "user") {
        ss += m.content + lead + "[/INST]";
      } else {
        ss += trail + (trim_assistant ? trim(m.content) : m.content) + "</s>";
        inside = false;
      }
    }
  } else if (t == LLAMA_2 || t == LLAMA_2_SYS || t == LLAMA_2_SYS_BOS || t == LLAMA_2_SYS_STRIP) {
    const bool system = t != LLAMA_2, bos_inside = t == LLAMA_2_SYS_BOS, strip = t == LLAMA_2_SYS_STRIP;
    bool inside = true;  // no BOS at the start
    ss += "[INST] ";
    for (const auto& m : chat) {
      const std::string content = strip ? trim(m.content) : m.content;
      if (!inside) {
        inside = true;
        ss += bos_inside ? "<s>[INST] " : "[INST] ";
      }
      if (m.role == "system") {
        ss += system ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
      } else if (m.role == "user") {
        ss += content + " [/INST]";
      } else {
        ss += content + "</s>";
        inside = false;
      }
    }
  } else if (t == PHI_3) {
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
    if (add_ass) ss += "<|assistant|>\n";
  } else if (t == PHI_4) {
    for (const auto& m : chat) ss += "<|im_start|>" + m.role + "<|im_sep|>" + m.content + "<|im_end|>";
    if (add_ass) ss += "<|im_start|>assistant<|im_sep|>";
  } else if (t == FALCON_3) {
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content + "\n";
    if (add_ass) ss += "<|assistant|>\n";
  } else if (t == ZEPHYR) {
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content + "<|endoftext|>\n";
    if (add_ass) ss += "<|assistant|>\n";
  } else if (t == MONARCH) {
    for (size_t i = 0; i < chat.size(); ++i)
      ss += (i == 0 ? "" : "<s>") + chat[i].role + "\n" + chat[i].content + "</s>\n";
    if (add_ass) ss += "<s>assistant\n";
  } else if (t == GEMMA) {
    // No system turn: the system text opens the next user turn.
    std::string system;
    for (const auto& m : chat) {
      if (m.role == "system") {
        system += trim(m.content);
        continue;
      }
      const std::string role = m.role == "assistant" ? "model" : m.role;
      ss += "<start_of_turn>" + role + "\n";
      if (!system.empty() && role != "model") {
        ss += system + "\n\n";
        system.clear();
      }
      ss += trim(m.content) + "<end_of_turn>\n";
    }
    if (add_ass) ss += "<start_of_turn>model\n";
  } else if (t == ORION) {
    std::string system;
    for (const auto& m : chat) {
      if (m.role == "system") {
        system += m.content;
      } else if (m.role == "user") {
        ss += "Human: ";
        if (!system.empty()) {
          ss += system + "\n\n";
          system.clear();
        }
        ss += m.content + "\n\nAssistant: </s>";
      } else {
        ss += m.content + "</s>";
      }
    }
  } else if (t == OPENCHAT) {
    for (const auto& m : chat) {
      if (m.role == "system") {
        ss += m.content + "<|end_of_turn|>";
      } else {
        std::string role = m.role;
        role[0] = char(std::toupper(static_cast<unsigned char>(role[0])));
        ss += "GPT4 Correct " + role + ": " + m.content + "<|end_of_turn|>";
      }
    }
    if (add_ass) ss += "GPT4 Correct Assistant:";
  } else if (t == VICUNA || t == VICUNA_ORCA) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += t == VICUNA_ORCA ? "SYSTEM: " + m.content + "\n" : m.content + "\n\n";
      else if (m.role == "user") ss += "USER: " + m.content + "\n";
      else ss += "ASSISTANT: " + m.content + "</s>\n";
    }
    if (add_ass) ss += "ASSISTANT:";
  } else if (t == DEEPSEEK) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += m.content;
      else if (m.role == "user") ss += "### Instruction:\n" + m.content + "\n";
      else ss += "### Response:\n" + m.content + "\n<|EOT|>\n";
    }
    if (add_ass) ss += "### Response:\n";
  } else if (t == COMMAND_R) {
    for (const auto& m : chat) {
      const char* tok = m.role == "system" ? "<|SYSTEM_TOKEN|>" : m.role == "user" ? "<|USER_TOKEN|>" : "<|CHATBOT_TOKEN|>";
      ss += std::string("<|START_OF_TURN_TOKEN|>") + tok + trim(m.content) + "<|END_OF_TURN_TOKEN|>";
    }
    if (add_ass) ss += "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>";
  } else if (t == LLAMA_3) {
    for (const auto& m : chat)
      ss += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
    if (add_ass) ss += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  } else if (t == CHATGLM_3) {
    ss += "[gMASK]sop";
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n " + m.content;
    if (add_ass) ss += "<|assistant|>";
  } else if (t == CHATGLM_4) {
    ss += "[gMASK]<sop>";
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content;
    if (add_ass) ss += "<|assistant|>\n";
  } else if (t == GLMEDGE) {
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + m.content;
    if (add_ass) ss += "<|assistant|>";
  } else if (t == MINICPM) {
    for (const auto& m : chat) {
      if (m.role == "user") ss += "<\xe7\x94\xa8\xe6\x88\xb7>" + trim(m.content) + "<AI>";  // <用户>
      else ss += trim(m.content);
    }
  } else if (t == DEEPSEEK_2) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += m.content + "\n\n";
      else if (m.role == "user") ss += "User: " + m.content + "\n\n";
      else ss += "Assistant: " + m.content + "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    }
    if (add_ass) ss += "Assistant:";
  } else if (t == DEEPSEEK_3) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += m.content + "\n\n";
      else if (m.role == "user") ss += "<\xef\xbd\x9cUser\xef\xbd\x9c>" + m.content;
      else
        ss += "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>" + m.content +
              "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    }
    if (add_ass) ss += "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>";
  } else if (t == EXAONE_3 || t == EXAONE_4) {
    for (const auto& m : chat) {
      if (m.role == "user") ss += "[|user|]" + trim(m.content) + "\n";
      else ss += "[|" + m.role + "|]" + trim(m.content) + "[|endofturn|]\n";
    }
    if (add_ass) ss += "[|assistant|]";
  } else if (t == EXAONE_MOE) {
    for (const auto& m : chat) ss += "<|" + m.role + "|>\n" + trim(m.content) + "<|endofturn|>\n";
    if (add_ass) ss += "<|assistant|>\n";
  } else if (t == RWKV_WORLD) {
    // "\n\n" ends a turn; the assistant's opening follows a last user message, whatever add_ass says.
    for (size_t i = 0; i < chat.size(); ++i) {
      const std::string& role = chat[i].role;
      if (role == "system") {
        ss += "System: " + trim(chat[i].content) + "\n\n";
      } else if (role == "user") {
        ss += "User: " + trim(chat[i].content) + "\n\n";
        if (i == chat.size() - 1) ss += "Assistant:";
      } else {
        ss += "Assistant: " + trim(chat[i].content) + "\n\n";
      }
    }
  } else if (t == GRANITE_3_X || t == GRANITE_4_0 || t == GRANITE_4_1) {
    for (const auto& m : chat) ss += "<|start_of_role|>" + m.role + "<|end_of_role|>" + m.content + "<|end_of_text|>\n";
    if (add_ass) ss += "<|start_of_role|>assistant<|end_of_role|>";
  } else if (t == GIGACHAT) {
    const bool has_system = !chat.empty() && chat[0].role == "system";
    ss += has_system ? "<s>" + chat[0].content + "<|message_sep|>" : "<s>";
    for (size_t i = has_system ? 1 : 0; i < chat.size(); ++i) {
      if (chat[i].role == "user")
        ss += "user<|role_sep|>" + chat[i].content + "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>";
      else
        ss += "assistant<|role_sep|>" + chat[i].content + "<|message_sep|>";
    }
    if (add_ass) ss += "assistant<|role_sep|>";
  } else if (t == MEGREZ) {
    for (const auto& m : chat) ss += "<|role_start|>" + m.role + "<|role_end|>" + m.content + "<|turn_end|>";
    if (add_ass) ss += "<|role_start|>assistant<|role_end|>";
  } else if (t == YANDEX) {
    // " Пользователь: ", " Ассистент: "; "\n\n" ends a turn.
    for (const auto& m : chat) {
      if (m.role == "user")
        ss += " \xd0\x9f\xd0\xbe\xd0\xbb\xd1\x8c\xd0\xb7\xd0\xbe\xd0\xb2\xd0\xb0\xd1\x82\xd0\xb5\xd0\xbb\xd1\x8c: " +
              m.content + "\n\n";
      else
        ss += " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82: " + m.content + "\n\n";
    }
    if (add_ass) ss += " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:[SEP]";
  } else if (t == BAILING || t == BAILING_THINK) {
    for (const auto& m : chat) ss += "<role>" + (m.role == "user" ? "HUMAN" : upper(m.role)) + "</role>" + m.content;
    if (add_ass) ss += t == BAILING_THINK ? "<role>ASSISTANT</role><think>" : "<role>ASSISTANT</role>";
  } else if (t == BAILING2) {
    if (chat.empty() || chat[0].role != "system") ss += "<role>SYSTEM</role>detailed thinking off<|role_end|>";
    for (const auto& m : chat)
      ss += "<role>" + (m.role == "user" ? "HUMAN" : upper(m.role)) + "</role>" + m.content + "<|role_end|>";
    if (add_ass) ss += "<role>ASSISTANT</role>";
  } else if (t == LLAMA4) {
    for (const auto& m : chat) ss += "<|header_start|>" + m.role + "<|header_end|>\n\n" + trim(m.content) + "<|eot|>";
    if (add_ass) ss += "<|header_start|>assistant<|header_end|>\n\n";
  } else if (t == SMOLVLM) {
    ss += "<|im_start|>";  // its BOS; the turns are not ChatML
    for (const auto& m : chat) {
      if (m.role == "system") ss += m.content + "\n\n";
      else if (m.role == "user") ss += "User: " + m.content + "<end_of_utterance>\n";
      else ss += "Assistant: " + m.content + "<end_of_utterance>\n";
    }
    if (add_ass) ss += "Assistant:";
  } else if (t == DOTS1) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += "<|system|>" + m.content + "<|endofsystem|>";
      else if (m.role == "user") ss += "<|userprompt|>" + m.content + "<|endofuserprompt|>";
      else ss += "<|response|>" + m.content + "<|endofresponse|>";
    }
    if (add_ass) ss += "<|response|>";
  } else if (t == HUNYUAN_MOE) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += "<|startoftext|>" + m.content + "<|extra_4|>";
      else if (m.role == "assistant") ss += m.content + "<|eos|>";
      else ss += "<|startoftext|>" + m.content + "<|extra_0|>";
    }
  } else if (t == OPENAI_MOE) {
    for (const auto& m : chat)
      ss += "<|start|>" + m.role + "<|message|>" + m.content + (m.role == "assistant" ? "<|return|>" : "<|end|>");
    if (add_ass) ss += "<|start|>assistant";
  } else if (t == HUNYUAN_DENSE || t == HUNYUAN_VL) {
    const std::string assistant = "<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>", user = "<\xef\xbd\x9chy_User\xef\xbd\x9c>";
    const std::string holder = "<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81" "3\xef\xbd\x9c>";
    if (t == HUNYUAN_VL) ss += "<\xef\xbd\x9chy_begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    for (const auto& m : chat) {
      if (m.role == "system") {
        ss += m.content + holder;  // the first message only (checked above)
      } else if (t == HUNYUAN_DENSE) {
        if (m.role == "assistant")
          ss += assistant + m.content + "<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81" "2\xef\xbd\x9c>";
        else ss += user + m.content + assistant;
      } else {
        ss += m.content + (m.role == "user" ? user : assistant);
      }
    }
  } else if (t == KIMI_K2) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += "<|im_system|>system<|im_middle|>";
      else if (m.role == "user") ss += "<|im_user|>user<|im_middle|>";
      else ss += "<|im_assistant|>assistant<|im_middle|>";
      ss += m.content + "<|im_end|>";
    }
    if (add_ass) ss += "<|im_assistant|>assistant<|im_middle|>";
  } else if (t == SEED_OSS) {
    for (const auto& m : chat)
      ss += "<seed:bos>" + m.role + "\n" + (m.role == "assistant" ? trim(m.content) : m.content) + "<seed:eos>";
    if (add_ass) ss += "<seed:bos>assistant\n";
  } else if (t == GROK_2) {
    for (const auto& m : chat) {
      if (m.role == "system") ss += "System: " + trim(m.content) + "<|separator|>\n\n";
      else if (m.role == "user") ss += "Human: " + trim(m.content) + "<|separator|>\n\n";
      else ss += "Assistant: " + m.content + "<|separator|>\n\n";
    }
    if (add_ass) ss += "Assistant:";
  } else if (t == PANGU_EMBED) {
    // [unused9]系统：...[unused10], 用户 (user), 助手 (assistant); an empty system turn opens it.
    const std::string sys = "[unused9]\xe7\xb3\xbb\xe7\xbb\x9f\xef\xbc\x9a", usr = "[unused9]\xe7\x94\xa8\xe6\x88\xb7\xef\xbc\x9a",
                      ast = "[unused9]\xe5\x8a\xa9\xe6\x89\x8b\xef\xbc\x9a";
    for (size_t i = 0; i < chat.size(); ++i) {
      const std::string& role = chat[i].role;
      if (i == 0 && role != "system") ss += sys + "[unused10]";
      ss += (role == "system" ? sys : role == "user" ? usr : ast) + chat[i].content + "[unused10]";
    }
    if (add_ass) ss += ast;
  } else if (t == SOLAR_OPEN) {
    for (const auto& m : chat) ss += "<|begin|>" + m.role + "<|content|>" + m.content + "<|end|>";
    if (add_ass) ss += "<|begin|>assistant";
  }
  return ss;
}

Template for_model(const format::GgufFile& gguf, const std::string& path, const std::string& override_name) {
  if (!override_name.empty()) return Template::named(override_name);
  const std::optional<std::string> jinja = gguf.try_get_string("tokenizer.chat_template");
  if (!jinja)
    throw Error(path + ": the model has no chat template (tokenizer.chat_template); use --chat-template NAME (known: " +
                known_list() + ")");
  try {
    return Template::detect(*jinja);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw Error(path + ": " + e.message());
  }
}

bool begins_with_bos(const Tokenizer& tok, std::string_view text) {
  if (!tok.bos_id()) return false;
  const std::string& piece = tok.piece(*tok.bos_id());
  return !piece.empty() && text.substr(0, piece.size()) == piece;
}

std::vector<int> encode_prompt(const Tokenizer& tok, std::string_view text, bool add_bos) {
  std::vector<int> ids;
  if (add_bos && tok.bos_id() && !begins_with_bos(tok, text)) ids.push_back(*tok.bos_id());
  tok.encode_text(text, ids, /*parse_special=*/true);
  return ids;
}

std::vector<Message> read_messages(const std::string& path) {
  LineReader in(path);
  const std::string name = display_name(path);
  std::vector<Message> msgs;
  std::map<std::string, std::string> m;
  std::string line, err;
  while (in.next(line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(in.line_number());
    if (!parse_json_strings(line, m, err)) throw FormatError(where, "is not a JSON object: " + err);
    auto role = m.find("role"), content = m.find("content");
    if (role == m.end() || content == m.end())
      throw FormatError(where, std::string("has no string member '") + (role == m.end() ? "role" : "content") +
                                   "', expected {\"role\": \"user\", \"content\": \"...\"}");
    if (role->second != "system" && role->second != "user" && role->second != "assistant")
      throw FormatError(where, "has the role '" + role->second + "', expected system, user or assistant");
    msgs.push_back({role->second, content->second});
  }
  if (msgs.empty())
    throw FormatError(name, "has no messages, expected JSON Lines such as {\"role\": \"user\", \"content\": \"Hi\"}");
  return msgs;
}

}  // namespace lm::chat
