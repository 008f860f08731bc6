// qwen2: Qwen 2 and 2.5. llama's blocks with biases on q, k and v, RoPE in NEOX order; small
// models tie the head to the embeddings.
#include "model/arch.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) {
  c.arch.neox = true;
  read_common(g, c, "attention.layer_norm_rms_epsilon");
}

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  const int C = c.n_embd, Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  std::vector<TensorSpec> s = {{"token_embd.weight", Role::TokEmbd, -1, c.n_vocab, C, true}};
  for (int l = 0; l < c.n_layer; ++l) {
    s.push_back(layer_weight(l, "attn_norm", Role::AttnNorm, 1, C));
    s.push_back(layer_weight(l, "attn_q", Role::Q, Q, C));
    s.push_back(layer_bias(l, "attn_q", Role::QB, Q));
    s.push_back(layer_weight(l, "attn_k", Role::K, K, C));
    s.push_back(layer_bias(l, "attn_k", Role::KB, K));
    s.push_back(layer_weight(l, "attn_v", Role::V, K, C));
    s.push_back(layer_bias(l, "attn_v", Role::VB, K));
    s.push_back(layer_weight(l, "attn_output", Role::O, C, Q));
    s.push_back(layer_weight(l, "ffn_norm", Role::FfnNorm, 1, C));
    s.push_back(layer_weight(l, "ffn_gate", Role::Gate, F, C));
    s.push_back(layer_weight(l, "ffn_up", Role::Up, F, C));
    s.push_back(layer_weight(l, "ffn_down", Role::Down, C, F));
  }
  s.push_back({"output_norm.weight", Role::OutNorm, -1, 1, C, true});
  s.push_back({"output.weight", Role::Head, -1, c.n_vocab, C, false});
  s.push_back({"output.bias", Role::HeadB, -1, 1, c.n_vocab, false});
  add_cls_specs(s, c);
  return s;
}

}  // namespace

extern const ArchDef kArchQwen2{"qwen2", read, tensors};

}  // namespace lm::model
