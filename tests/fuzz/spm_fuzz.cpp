// SentencePiece model bytes (lib/tokenizer, lib/model/tokenizer_loader.*): the tokenizer of a
// .model file, or of a GGUF file (embedded model bytes, or rebuilt from the tokenizer.ggml.*
// arrays), detected by the first bytes as load_tokenizer does; then a short text is encoded,
// decoded and streamed token by token, which touches every special id the model names.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "format/gguf.hpp"
#include "fuzz_util.hpp"
#include "model/tokenizer_loader.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::check([&] {
    std::string bytes(reinterpret_cast<const char*>(data), size);
    Tokenizer tok = size >= 4 && std::memcmp(data, "GGUF", 4) == 0
                        ? model::load_tokenizer(format::GgufFile::from_bytes(std::move(bytes), "fuzz.gguf"))
                        : Tokenizer::from_model_proto(std::move(bytes), "fuzz.model");
    std::vector<int> ids;
    tok.encode_text("The quick fox, 0x7f \xc3\xa9\xe2\x82\xac!\nsecond line\n", ids);
    if (tok.bos_id()) ids.insert(ids.begin(), *tok.bos_id());
    if (tok.eos_id()) ids.push_back(*tok.eos_id());
    for (int id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();
    (void)tok.decode_text(ids);
    (void)tok.decode(ids);
    for (int id : ids) (void)tok.token_bytes(id);
    std::vector<std::string> pieces;
    tok.encode_pieces("hello world", pieces);
    (void)tok.newline_ids();
    (void)tok.fingerprint();
  });
  return 0;
}
