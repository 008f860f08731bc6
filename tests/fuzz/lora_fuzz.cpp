// LoRA adapter loader (lib/model/lora.*): an adapter file for the seed base model (fuzz_util.hpp
// seed_config, or seed_config_phi3 for a phi3 adapter), loaded as --lora does and merged into
// the base weights.
#include <cstdint>
#include <string>

#include "format/gguf.hpp"
#include "fuzz_util.hpp"
#include "model/lora.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const model::ModelConfig llama = fuzz::seed_config(), phi3 = fuzz::seed_config_phi3();
  static model::Params llama_params(llama, false), phi3_params(phi3, false);
  fuzz::check([&] {
    format::GgufFile g = format::GgufFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    if (!model::is_adapter(g)) return;
    // A phi3 adapter's pairs adapt fused tensors (one pair over q, k, v; one over gate, up).
    const bool fused = g.try_get_string(format::kKeyArchitecture).value_or("") == "phi3";
    model::Lora l = model::load_adapter(g, fused ? phi3 : llama);
    model::merge_lora(fused ? phi3_params : llama_params, l);
  });
  return 0;
}
