// Token file reader (lib/format/token_file.*): open and validate the file as lm-train and
// lm-tokenize do, read every token, check ids and fingerprint.
#include <cstdint>
#include <string>
#include <vector>

#include "format/token_file.hpp"
#include "fuzz_util.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::MemFile file;
  const std::string& path = file.set(data, size);
  fuzz::check([&] {
    format::TokenFile tf(path);
    std::vector<int> buf(256);
    for (uint64_t i = 0; i < tf.size(); i += buf.size()) {
      const size_t n = size_t(std::min<uint64_t>(buf.size(), tf.size() - i));
      tf.read(i, n, buf.data());
      if (tf.token(i) != uint32_t(buf[0])) std::abort();
    }
    fuzz::check([&] { tf.check_range(48); });
    fuzz::check([&] { tf.check_range(tf.info().vocab_size); });
    fuzz::check([&] { tf.check_fingerprint(0x0123456789abcdefULL, "fuzz.model"); });
  });
  return 0;
}
