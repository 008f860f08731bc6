// GGUF reader (lib/format/gguf.*): parse the bytes, then read every key with every typed getter,
// scan every tensor for NaN/Inf and describe the file as `-v` does.
#include <cstdint>
#include <string>

#include "format/gguf.hpp"
#include "fuzz_util.hpp"
#include "model/model_io.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::check([&] {
    format::GgufFile g = format::GgufFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    // Every key through the getters for its type (a wrong type throws FormatError: exceptions
    // are slow under ASan, so only the first key tries every getter).
    bool first = true;
    for (const auto& kv : g.metadata()) {
      const std::string& key = kv.first;
      const format::GgufType type = kv.second.type, elem = kv.second.elem_type;
      const bool array = type == format::GgufType::ARRAY;
      const bool integer = !array && type != format::GgufType::F32 && type != format::GgufType::F64 &&
                           type != format::GgufType::STRING && type != format::GgufType::BOOL;
      if (first || integer) {
        fuzz::check([&] { (void)g.get_u32(key); });
        fuzz::check([&] { (void)g.get_u64(key); });
        fuzz::check([&] { (void)g.get_i32(key); });
      }
      if (first || type == format::GgufType::F32) fuzz::check([&] { (void)g.get_f32(key); });
      if (first || type == format::GgufType::BOOL) fuzz::check([&] { (void)g.get_bool(key); });
      if (first || type == format::GgufType::STRING) fuzz::check([&] { (void)g.get_string(key); });
      if (first || (array && elem == format::GgufType::STRING))
        fuzz::check([&] { (void)g.get_string_array(key); });
      const bool int_elems = array && elem != format::GgufType::F32 && elem != format::GgufType::F64 &&
                             elem != format::GgufType::STRING && elem != format::GgufType::BOOL;
      if (first || (array && elem == format::GgufType::F32)) fuzz::check([&] { (void)g.get_f32_array(key); });
      if (first || int_elems) fuzz::check([&] { (void)g.get_i32_array(key); });
      if (first || (array && (elem == format::GgufType::U8 || elem == format::GgufType::I8)))
        fuzz::check([&] { (void)g.get_u8_array(key); });
      if (g.find(key) != &kv.second) std::abort();
      first = false;
    }
    for (const format::GgufTensorInfo& t : g.tensors()) {
      if (g.find_tensor(t.name) != &t) std::abort();
      fuzz::check([&] { format::check_finite(g, t); });
    }
    (void)model::describe_model(g);
  });
  return 0;
}
