// Model loader (lib/model/model_io.*): load_model on the bytes as a file, as every tool does
// with -m: GGUF parse, hyper-parameter and tensor-set checks, tokenizer, weights (dequantized or
// packed), vocabulary agreement; then the classifier labels and the -v description.
#include <cstdint>
#include <string>

#include "format/gguf.hpp"
#include "fuzz_util.hpp"
#include "model/model_io.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::MemFile file;
  const std::string& path = file.set(data, size);
  fuzz::check([&] {
    model::LoadedModel m = model::load_model(path);
    if (m.weights.cfg.n_cls > 0) fuzz::check([&] { (void)model::read_labels(m.gguf, m.weights.cfg); });
    (void)model::describe_model(m.gguf);
  });
  return 0;
}
