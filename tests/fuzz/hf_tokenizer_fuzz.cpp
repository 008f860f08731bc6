// Hugging Face tokenizer files (lib/tokenizer/hf_tokenizer.*): the input as tokenizer.json in a
// directory, or, when it holds a NUL byte, the part before it as tokenizer.json and the part
// after as tokenizer_config.json; tok::load_hf_tokenizer reads them as lm-quantize -m DIR does,
// then a short text is encoded and decoded.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "tokenizer/hf_tokenizer.hpp"

using namespace lm;

namespace {

void write(const std::string& path, const char* data, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data, std::streamsize(n));
  if (!f) std::abort();
}

const std::string& dir() {
  static const std::string d = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lm-fuzz-hf-tokenizer-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    static std::string remove = tmpl;
    std::atexit([] {
      ::unlink((remove + "/tokenizer.json").c_str());
      ::unlink((remove + "/tokenizer_config.json").c_str());
      ::rmdir(remove.c_str());
    });
    return tmpl;
  }();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  const void* nul = std::memchr(p, 0, size);
  const size_t first = nul ? size_t(static_cast<const char*>(nul) - p) : size;
  write(dir() + "/tokenizer.json", p, first);
  if (nul)
    write(dir() + "/tokenizer_config.json", p + first + 1, size - first - 1);
  else
    ::unlink((dir() + "/tokenizer_config.json").c_str());
  fuzz::check([&] {
    Tokenizer tok = tok::load_hf_tokenizer(dir());
    std::vector<int> ids;
    tok.encode_text("The quick fox, 0x7f \xc3\xa9\xe2\x82\xac!\n  second line\n", ids);
    for (int id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();
    (void)tok.decode_text(ids);
    for (int id : ids) (void)tok.token_bytes(id);
    (void)tok.fingerprint();
  });
  return 0;
}
