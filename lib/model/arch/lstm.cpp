// lstm: lm's recurrent language model (docs/lstm.md). Not a llama.cpp architecture: only lm
// reads these files. Keys lstm.context_length (the training window), embedding_length,
// block_count, hidden_size and projection_size (0: none); the output layer has a bias and is
// tied to the embeddings when output.weight is absent.
#include "base/error.hpp"
#include "model/arch.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) {
  auto bounded = [&](const char* k, uint32_t lo, uint32_t hi) {
    return read_u32_in(g, std::string("lstm.") + k, lo, hi);
  };
  c.n_ctx = bounded("context_length", 1, 1u << 20);
  c.n_embd = bounded("embedding_length", 2, 1u << 16);
  c.n_layer = bounded("block_count", 1, 1024);
  c.n_ff = bounded("hidden_size", 1, 1u << 16);
  c.n_proj = g.has("lstm.projection_size") ? bounded("projection_size", 0, 1u << 16) : 0;
  c.n_head = c.n_head_kv = 1;
}

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  const int E = c.n_embd, H = c.n_ff, P = c.n_proj, O = c.out_width();
  std::vector<TensorSpec> s = {{"token_embd.weight", Role::TokEmbd, -1, c.n_vocab, E, true}};
  for (int l = 0; l < c.n_layer; ++l) {
    s.push_back(layer_weight(l, "lstm_ih", Role::LstmIh, 4 * H, l == 0 ? E : O));
    s.push_back(layer_weight(l, "lstm_hh", Role::LstmHh, 4 * H, O));
    s.push_back(layer_bias(l, "lstm", Role::LstmB, 4 * H));
    if (P) s.push_back(layer_weight(l, "lstm_proj", Role::LstmProj, P, H));
  }
  s.push_back({"output.weight", Role::Head, -1, c.n_vocab, O, false});
  s.push_back({"output.bias", Role::HeadB, -1, 1, c.n_vocab, true});
  return s;
}

}  // namespace

extern const ArchDef kArchLstm{"lstm", read, tensors};

}  // namespace lm::model
