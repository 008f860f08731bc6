// bert: BERT-style encoders (BERT, BGE, MiniLM embedders). Token, token-type (type 0) and
// learned position embeddings summed and LayerNormed; blocks of bidirectional attention and a
// GELU MLP, each followed by the residual and a LayerNorm (post-LN); q, k, v separate or fused,
// every linear layer with a bias. No head: Session::eval gives the final hidden states, which
// the embedding and classification tools pool.
#include "model/arch.hpp"

#include "base/error.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) {
  c.arch.norm = NormKind::Layer;
  c.arch.ffn = FfnKind::Gelu;
  c.arch.learned_pos = true;
  c.arch.causal = false;
  c.arch.post_ln = true;
  read_common(g, c, "attention.layer_norm_epsilon");
  const uint32_t types = g.try_get_u32("tokenizer.ggml.token_type_count").value_or(2);
  if (types < 1 || types > 16)
    throw FormatError(g.path(), "key 'tokenizer.ggml.token_type_count' is " + std::to_string(types) + ", expected 1 to 16");
  c.arch.n_token_types = int(types);
  if (g.try_get_bool("bert.attention.causal").value_or(false))
    throw FormatError(g.path(), "key 'bert.attention.causal' is true, expected false (an encoder)");
}

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  const int C = c.n_embd, Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  const bool fused = false;
  std::vector<TensorSpec> s = {{"token_embd.weight", Role::TokEmbd, -1, c.n_vocab, C, true},
                               {"token_types.weight", Role::TokTypes, -1, c.arch.n_token_types, C, false},
                               {"position_embd.weight", Role::PosEmbd, -1, c.n_ctx, C, true},
                               {"token_embd_norm.weight", Role::EmbdNorm, -1, 1, C, true},
                               {"token_embd_norm.bias", Role::EmbdNormB, -1, 1, C, true}};
  for (int l = 0; l < c.n_layer; ++l) {
    // Separate q, k, v (BERT's converters), or fused attn_qkv (Nomic's): the file has one form.
    s.push_back(layer_weight(l, "attn_q", Role::Q, Q, C, fused));
    s.push_back(layer_bias(l, "attn_q", Role::QB, Q, fused));
    s.push_back(layer_weight(l, "attn_k", Role::K, K, C, fused));
    s.push_back(layer_bias(l, "attn_k", Role::KB, K, fused));
    s.push_back(layer_weight(l, "attn_v", Role::V, K, C, fused));
    s.push_back(layer_bias(l, "attn_v", Role::VB, K, fused));
    s.push_back(layer_weight(l, "attn_output", Role::O, C, Q));
    s.push_back(layer_bias(l, "attn_output", Role::OB, C, false));
    s.push_back(layer_weight(l, "attn_output_norm", Role::AttnNorm, 1, C));
    s.push_back(layer_bias(l, "attn_output_norm", Role::AttnNormB, C));
    s.push_back(layer_weight(l, "ffn_up", Role::Up, F, C));
    s.push_back(layer_bias(l, "ffn_up", Role::UpB, F, false));
    s.push_back(layer_weight(l, "ffn_down", Role::Down, C, F));
    s.push_back(layer_bias(l, "ffn_down", Role::DownB, C, false));
    s.push_back(layer_weight(l, "layer_output_norm", Role::FfnNorm, 1, C));
    s.push_back(layer_bias(l, "layer_output_norm", Role::FfnNormB, C));
  }
  add_cls_specs(s, c);  // a classifier (docs/encoder.md)
  return s;
}

}  // namespace

extern const ArchDef kArchBert{"bert", read, tensors};

}  // namespace lm::model
