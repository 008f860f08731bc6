// LoRA adapter loader (lib/model/lora.*): an adapter file for the seed base model (fuzz_util.hpp
// seed_config), loaded as --lora does and merged into the base weights.
#include <cstdint>
#include <string>

#include "format/gguf.hpp"
#include "fuzz_util.hpp"
#include "model/lora.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const model::ModelConfig base = fuzz::seed_config();
  static model::Params params(base, false);
  fuzz::check([&] {
    format::GgufFile g = format::GgufFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    if (!model::is_adapter(g)) return;
    model::Lora l = model::load_adapter(g, base);
    model::merge_lora(params, l);
  });
  return 0;
}
