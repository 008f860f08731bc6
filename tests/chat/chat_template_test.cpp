// Tests for lib/chat/chat_template: every family's text equals llama.cpp's byte for byte, and the
// detection of real Jinja templates equals llama.cpp's (tests/data/chat/, written by llama.cpp;
// see the README there).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "chat/chat_template.hpp"
#include "format/gguf.hpp"
#include "test_util.hpp"

using namespace lm;
using lm::chat::Message;
using lm::chat::Template;

namespace {

const std::string kDir = std::string(LM_TEST_DATA_DIR) + "/chat/";

std::vector<Json> read_jsonl(const std::string& name) {
  std::vector<Json> v;
  LineReader in(kDir + name);
  std::string line;
  while (in.next(line)) v.push_back(Json::parse(line));
  return v;
}

std::map<std::string, std::vector<Message>> conversations() {
  std::map<std::string, std::vector<Message>> m;
  const Json j = Json::parse(load_file(kDir + "conversations.json"));
  for (const auto& [name, msgs] : j.items())
    for (const auto& x : msgs) m[name].push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  return m;
}

}  // namespace

TEST_CASE("every family's text equals llama.cpp's for every fixture conversation") {
  const auto convs = conversations();
  std::set<std::string> seen;
  size_t n = 0;
  for (const Json& f : read_jsonl("apply.jsonl")) {
    const std::string name = f["template"], conv = f["conversation"];
    const bool add = f["add_assistant"];
    CAPTURE(name);
    CAPTURE(conv);
    CAPTURE(add);
    CHECK(Template::named(name).apply(convs.at(conv), add) == f["output"].get<std::string>());
    seen.insert(name);
    ++n;
  }
  CHECK(n > 500);
  // Every family lm knows has fixtures, and the contract's families are among them.
  const auto names = chat::template_names();
  CHECK(seen == std::set<std::string>(names.begin(), names.end()));
  for (const char* name : {"chatml", "llama2", "llama2-sys", "llama3", "mistral-v1", "mistral-v3", "mistral-v7", "phi3",
                           "gemma", "zephyr"})
    CHECK(seen.count(name) == 1);
}

TEST_CASE("real Jinja templates are recognised as llama.cpp recognises them") {
  const auto test_conv = conversations().at("llama_cpp_test");
  size_t n = 0;
  for (const Json& f : read_jsonl("detect.jsonl")) {
    const std::string source = f["source"], jinja = f["template"];
    CAPTURE(source);
    if (f["llama_cpp"].is_null()) {
      CHECK_THROWS_WITH_AS(Template::detect(jinja), doctest::Contains("unrecognised chat template"), Error);
      continue;
    }
    const Template t = Template::detect(jinja);
    CHECK(t.name() == f["llama_cpp"].get<std::string>());
    if (f.contains("output")) CHECK(t.apply(test_conv, true) == f["output"].get<std::string>());
    ++n;
  }
  CHECK(n >= 45);
}

TEST_CASE("a family's name is itself a template, as in llama.cpp") {
  for (const auto& name : chat::template_names()) CHECK(Template::detect(name).name() == name);
}

TEST_CASE("an unknown template is an error naming --chat-template and the known names") {
  try {
    Template::detect("{% for m in messages %}{{ m.content }}{% endfor %}");
    FAIL("no error");
  } catch (const UsageError&) {
    FAIL("a UsageError");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("unrecognised chat template") != std::string::npos);
    CHECK(msg.find("use --chat-template NAME (known: bailing, ") != std::string::npos);
    CHECK(msg.find("zephyr)") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(Template::named("chatml2"), doctest::Contains("unknown chat template 'chatml2'; known: bailing"),
                       UsageError);
  CHECK_THROWS_AS(Template::named("deepseek-ocr"), UsageError);  // llama.cpp's "no template"
}

TEST_CASE("a role the family cannot express is a usage error naming the message") {
  const Template chatml = Template::named("chatml");
  CHECK_THROWS_WITH_AS(chatml.apply({{"user", "hi"}, {"tool", "42"}}, true),
                       "chat message 2: role 'tool' is not system, user or assistant", UsageError);
  CHECK_THROWS_AS(chatml.apply({{"User", "hi"}}, true), UsageError);
  CHECK_THROWS_AS(chatml.apply({{"", "hi"}}, true), UsageError);
  // llama.cpp drops these system messages silently; lm refuses them.
  CHECK_THROWS_WITH_AS(Template::named("yandex").apply({{"system", "s"}, {"user", "u"}}, true),
                       "chat message 1: the chat template yandex has no place for a system message", UsageError);
  for (const char* name : {"gigachat", "hunyuan-dense", "hunyuan-vl"}) {
    CAPTURE(name);
    CHECK_NOTHROW(Template::named(name).apply({{"system", "s"}, {"user", "u"}}, true));
    CHECK_THROWS_WITH_AS(Template::named(name).apply({{"user", "u"}, {"system", "s"}}, true),
                         doctest::Contains("chat message 2: the chat template"), UsageError);
  }
}

TEST_CASE("for_model: the override, else the file's template, else an error naming the file") {
  test::TempDir dir;
  const std::string with = dir.path() + "/with.gguf", without = dir.path() + "/without.gguf",
                    odd = dir.path() + "/odd.gguf";
  {
    format::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.save(without);
    w.set_string("tokenizer.chat_template",
                 "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n'}}{% endfor %}");
    w.save(with);
    w.set_string("tokenizer.chat_template", "{{ messages }}");
    w.save(odd);
  }
  const auto g_with = format::GgufFile::open(with), g_without = format::GgufFile::open(without),
             g_odd = format::GgufFile::open(odd);
  CHECK(chat::for_model(g_with, with, "").name() == "chatml");
  CHECK(chat::for_model(g_with, with, "llama3").name() == "llama3");
  CHECK(chat::for_model(g_without, without, "gemma").name() == "gemma");
  CHECK_THROWS_WITH_AS(chat::for_model(g_without, without, ""),
                       doctest::Contains((without + ": the model has no chat template (tokenizer.chat_template); use "
                                                    "--chat-template NAME (known: ").c_str()),
                       Error);
  CHECK_THROWS_WITH_AS(chat::for_model(g_odd, odd, ""), doctest::Contains((odd + ": unrecognised chat template").c_str()), Error);
  CHECK_THROWS_AS(chat::for_model(g_with, with, "nope"), UsageError);
}

TEST_CASE("encode_prompt adds the BOS unless the text begins with it, and parses control tokens") {
  Tokenizer tok = test::train_tokenizer(std::vector<std::string>(200, "the cat sat on the mat"), 280);
  REQUIRE(tok.bos_id().has_value());
  const int bos = *tok.bos_id();
  CHECK(tok.piece(bos) == "<s>");
  CHECK(chat::begins_with_bos(tok, "<s>user"));
  CHECK_FALSE(chat::begins_with_bos(tok, " <s>user"));
  const auto a = chat::encode_prompt(tok, "the cat</s>", true);
  REQUIRE(a.size() >= 3);
  CHECK(a.front() == bos);
  CHECK(a.back() == *tok.eos_id());  // "</s>" read as the control token
  CHECK(chat::encode_prompt(tok, "the cat</s>", false) == std::vector<int>(a.begin() + 1, a.end()));
  const auto b = chat::encode_prompt(tok, "<s>the cat", true);
  CHECK(b.front() == bos);
  CHECK(std::count(b.begin(), b.end(), bos) == 1);
}

TEST_CASE("read_messages: JSON Lines with one-line errors naming the line") {
  test::TempDir dir;
  const std::string p = dir.path() + "/c.jsonl";
  test::write_file(p, "{\"role\":\"system\",\"content\":\"Be brief.\"}\n\n{\"role\":\"user\",\"content\":\"Gr\\u00fc\\u00df \xe4\xbd\xa0\"}\r\n");
  const auto m = chat::read_messages(p);
  REQUIRE(m.size() == 2);
  CHECK(m[1].role == "user");
  CHECK(m[1].content == "Gr\xc3\xbc\xc3\x9f \xe4\xbd\xa0");
  test::write_file(p, "{\"role\":\"user\",\"content\":\"a\"}\n{\"role\":\"user\",\"content\":\"a\"\n");
  CHECK_THROWS_WITH_AS(chat::read_messages(p), doctest::Contains((p + ":2: is not a JSON object: ").c_str()), FormatError);
  test::write_file(p, "{\"role\":\"user\"}\n");
  CHECK_THROWS_WITH_AS(chat::read_messages(p), doctest::Contains((p + ":1: has no string member 'content'").c_str()), FormatError);
  test::write_file(p, "{\"role\":\"user\",\"content\":5}\n");
  CHECK_THROWS_WITH_AS(chat::read_messages(p), doctest::Contains((p + ":1: has no string member 'content'").c_str()), FormatError);
  test::write_file(p, "\n{\"role\":\"tool\",\"content\":\"x\"}\n");
  CHECK_THROWS_WITH_AS(chat::read_messages(p),
                       (p + ":2: has the role 'tool', expected system, user or assistant").c_str(), FormatError);
  test::write_file(p, "\n\n");
  CHECK_THROWS_WITH_AS(chat::read_messages(p), doctest::Contains((p + ": has no messages").c_str()), FormatError);
}
