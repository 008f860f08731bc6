// gemma2: Gemma 2. Embeddings times sqrt(C), RMSNorm before and after attention and MLP (the
// converters store the gains with Gemma's +1 already added), GeGLU, RoPE in NEOX order, a
// head size of its own (attention.key_length), attention scores scaled by 1/sqrt(head size)
// (1/sqrt(C/H) for the 46-layer 27B model) and soft-capped, a sliding window on every other
// layer (the even ones), the final logits soft-capped; the head is the embeddings.
#include "model/arch.hpp"

#include <cmath>

#include "base/error.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) {
  c.arch.neox = true;
  c.arch.ffn = FfnKind::GeGLU;
  c.arch.embd_scale = true;
  c.arch.post_norms = true;
  read_common(g, c, "attention.layer_norm_rms_epsilon");
  // llama.cpp's defaults where the keys are absent.
  c.arch.attn_softcap = g.try_get_f32("gemma2.attn_logit_softcapping").value_or(50.0f);
  c.arch.final_softcap = g.try_get_f32("gemma2.final_logit_softcapping").value_or(30.0f);
  for (auto [k, v] : {std::pair<const char*, float>{"attn_logit_softcapping", c.arch.attn_softcap},
                      {"final_logit_softcapping", c.arch.final_softcap}})
    if (!(v > 0 && v < 1e6f))
      throw FormatError(g.path(), "key 'gemma2." + std::string(k) + "' is " + std::to_string(v) + ", expected > 0");
  c.arch.sliding_window = int(g.try_get_u32("gemma2.attention.sliding_window").value_or(4096));
  c.arch.swa_pattern = 2;
  c.arch.attn_scale = 1.0f / std::sqrt(float(c.n_layer == 46 ? c.n_embd / c.n_head : c.head_dim()));
}

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  const int C = c.n_embd, Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  std::vector<TensorSpec> s = {{"token_embd.weight", Role::TokEmbd, -1, c.n_vocab, C, true}};
  for (int l = 0; l < c.n_layer; ++l) {
    s.push_back(layer_weight(l, "attn_norm", Role::AttnNorm, 1, C));
    s.push_back(layer_weight(l, "attn_q", Role::Q, Q, C));
    s.push_back(layer_weight(l, "attn_k", Role::K, K, C));
    s.push_back(layer_weight(l, "attn_v", Role::V, K, C));
    s.push_back(layer_weight(l, "attn_output", Role::O, C, Q));
    s.push_back(layer_weight(l, "post_attention_norm", Role::AttnPostNorm, 1, C));
    s.push_back(layer_weight(l, "ffn_norm", Role::FfnNorm, 1, C));
    s.push_back(layer_weight(l, "ffn_gate", Role::Gate, F, C));
    s.push_back(layer_weight(l, "ffn_up", Role::Up, F, C));
    s.push_back(layer_weight(l, "ffn_down", Role::Down, C, F));
    s.push_back(layer_weight(l, "post_ffw_norm", Role::FfnPostNorm, 1, C));
  }
  s.push_back({"output_norm.weight", Role::OutNorm, -1, 1, C, true});
  add_cls_specs(s, c);  // a classifier lm-finetune --task classify wrote
  return s;
}

}  // namespace

extern const ArchDef kArchGemma2{"gemma2", read, tensors};

}  // namespace lm::model
