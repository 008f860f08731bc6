// gpt2: GPT-2. LayerNorm with biases, learned positions, fused q/k/v with bias, GELU MLP,
// biases on every linear layer; the head is tied to the embeddings when output.weight is absent.
#include "model/arch.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) {
  c.arch.norm = NormKind::Layer;
  c.arch.ffn = FfnKind::Gelu;
  c.arch.learned_pos = true;
  read_common(g, c, "attention.layer_norm_epsilon");
}

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  const int C = c.n_embd, Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  std::vector<TensorSpec> s = {{"token_embd.weight", Role::TokEmbd, -1, c.n_vocab, C, true},
                               {"position_embd.weight", Role::PosEmbd, -1, c.n_ctx, C, true}};
  for (int l = 0; l < c.n_layer; ++l) {
    s.push_back(layer_weight(l, "attn_norm", Role::AttnNorm, 1, C));
    s.push_back(layer_bias(l, "attn_norm", Role::AttnNormB, C));
    s.push_back(layer_weight(l, "attn_qkv", Role::Qkv, Q + 2 * K, C));
    s.push_back(layer_bias(l, "attn_qkv", Role::QkvB, Q + 2 * K));
    s.push_back(layer_weight(l, "attn_output", Role::O, C, Q));
    s.push_back(layer_bias(l, "attn_output", Role::OB, C));
    s.push_back(layer_weight(l, "ffn_norm", Role::FfnNorm, 1, C));
    s.push_back(layer_bias(l, "ffn_norm", Role::FfnNormB, C));
    s.push_back(layer_weight(l, "ffn_up", Role::Up, F, C));
    s.push_back(layer_bias(l, "ffn_up", Role::UpB, F));
    s.push_back(layer_weight(l, "ffn_down", Role::Down, C, F));
    s.push_back(layer_bias(l, "ffn_down", Role::DownB, C));
  }
  s.push_back({"output_norm.weight", Role::OutNorm, -1, 1, C, true});
  s.push_back({"output_norm.bias", Role::OutNormB, -1, 1, C, true});
  s.push_back({"output.weight", Role::Head, -1, c.n_vocab, C, false});
  add_cls_specs(s, c);
  return s;
}

}  // namespace

extern const ArchDef kArchGpt2{"gpt2", read, tensors};

}  // namespace lm::model
