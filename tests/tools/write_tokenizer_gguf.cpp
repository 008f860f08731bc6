// Test helper (not installed): writes a vocabulary-only GGUF file carrying a tokenizer, so the
// tool tests can pass GGUF models to -m. Usage: lm_test_write_gguf TOK.model OUT.gguf [--no-embed]
#include <cstdio>
#include <cstring>
#include <exception>

#include "base/file.hpp"
#include "format/gguf.hpp"
#include "model/tokenizer_loader.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOK.model OUT.gguf [--no-embed]\n", argv[0]);
    return 2;
  }
  try {
    lm::Tokenizer tok = lm::Tokenizer::load(argv[1]);
    lm::format::GgufWriter w;
    w.set_string(lm::format::kKeyArchitecture, "llama");
    lm::model::add_tokenizer(tok, w, !(argc > 3 && std::strcmp(argv[3], "--no-embed") == 0));
    w.save(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm_test_write_gguf: %s\n", e.what());
    return 1;
  }
  return 0;
}
