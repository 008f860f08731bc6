// phi3: Phi-3 (mini, medium). Fused q/k/v (attn_qkv: q rows, then k, then v) and fused
// gate/up (ffn_up: gate rows, then up), RoPE in NEOX order.
// The 128k-context files (Phi-3.5, Phi-3-*-128k) carry LongRoPE's rope_factors_long/short:
// the short factors up to rope.scaling.original_context_length, the long ones beyond, and
// cos and sin times rope.scaling.attn_factor, as llama.cpp applies them.
#include "model/arch.hpp"

#include "base/error.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) {
  c.arch.neox = true;
  read_common(g, c, "attention.layer_norm_rms_epsilon");
  // rope.scaling.attn_factor is read by read_common, for every architecture.
  if (g.find_tensor("rope_factors_long.weight") || g.find_tensor("rope_factors_short.weight"))
    c.arch.rope_ctx_orig = int(g.try_get_u32("phi3.rope.scaling.original_context_length").value_or(uint32_t(c.n_ctx)));
  // phi3.attention.sliding_window is ignored, as llama.cpp does (its converters write values
  // that do not match the models' training), so attention sees every earlier position.
}

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  const int C = c.n_embd, Q = c.q_dim(), K = c.kv_dim(), F = c.n_ff;
  std::vector<TensorSpec> s = {{"token_embd.weight", Role::TokEmbd, -1, c.n_vocab, C, true}};
  for (int l = 0; l < c.n_layer; ++l) {
    s.push_back(layer_weight(l, "attn_norm", Role::AttnNorm, 1, C));
    s.push_back(layer_weight(l, "attn_qkv", Role::Qkv, Q + 2 * K, C));
    s.push_back(layer_weight(l, "attn_output", Role::O, C, Q));
    s.push_back(layer_weight(l, "ffn_norm", Role::FfnNorm, 1, C));
    s.push_back(layer_weight(l, "ffn_up", Role::GateUp, 2 * F, C));
    s.push_back(layer_weight(l, "ffn_down", Role::Down, C, F));
  }
  s.push_back({"output_norm.weight", Role::OutNorm, -1, 1, C, true});
  s.push_back({"output.weight", Role::Head, -1, c.n_vocab, C, false});
  s.push_back({"output.bias", Role::HeadB, -1, 1, c.n_vocab, false});
  s.push_back({"rope_factors_long.weight", Role::RopeLong, -1, 1, c.n_rot() / 2, false});
  s.push_back({"rope_factors_short.weight", Role::RopeShort, -1, 1, c.n_rot() / 2, false});
  add_cls_specs(s, c);
  return s;
}

}  // namespace

extern const ArchDef kArchPhi3{"phi3", read, tensors};

}  // namespace lm::model
