// Shared parts of the GGUF-vocabulary tokenizer families (engine.hpp).
#include "tokenizer/engine.hpp"

namespace lm::tok {

void Vocab::index() {
  ids.clear();
  ids.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) ids.emplace(pieces[i], int(i));  // keeps the first id
}

}  // namespace lm::tok
