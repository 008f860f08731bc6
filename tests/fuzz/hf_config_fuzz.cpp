// Hugging Face model directories (lib/model/hf_import.*): the input as config.json beside the
// weights of the llama test model (tests/data/hf/llama/model.safetensors, copied at start), opened
// as lm-quantize -m DIR opens it: the configuration checked against the tensors, every key and
// tensor added to a GGUF writer, and the tensors converted.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "format/gguf.hpp"
#include "fuzz_util.hpp"
#include "model/hf_import.hpp"

using namespace lm;

namespace {

void write(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) std::abort();
}

const std::string& dir() {
  static const std::string d = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lm-fuzz-hf-config-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::ifstream in(LM_FUZZ_DATA "/hf/llama/model.safetensors", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in || ss.str().empty()) {
      std::fprintf(stderr, "hf_config fuzz: cannot read %s\n", LM_FUZZ_DATA "/hf/llama/model.safetensors");
      std::abort();
    }
    write(tmpl + "/model.safetensors", ss.str());
    static std::string remove = tmpl;
    std::atexit([] {
      ::unlink((remove + "/model.safetensors").c_str());
      ::unlink((remove + "/config.json").c_str());
      ::rmdir(remove.c_str());
    });
    return tmpl;
  }();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write(dir() + "/config.json", std::string(reinterpret_cast<const char*>(data), size));
  fuzz::check([&] {
    model::HfModel m = model::HfModel::open(dir());
    format::GgufWriter w;
    m.add_to(w);
    (void)m.arch();
    if (m.n_vocab() <= 0) std::abort();
  });
  return 0;
}
