// llama: Llama 1/2/3, Mistral, TinyLlama, SmolLM and the files lm trains. RMSNorm, RoPE in
// NORM order, SwiGLU, grouped-query attention; Llama 3.1's frequency scaling comes as
// rope_freqs.weight. The tensor order is param_layout()'s, which training shares.
#include "model/arch.hpp"

namespace lm::model {

namespace {

void read(const format::GgufFile& g, ModelConfig& c) { read_common(g, c, "attention.layer_norm_rms_epsilon"); }

std::vector<TensorSpec> tensors(const ModelConfig& c) {
  static constexpr Role kLayerRoles[kLayerParams] = {Role::AttnNorm, Role::Q,       Role::K,    Role::V,   Role::O,
                                                     Role::FfnNorm,  Role::Gate,    Role::Up,   Role::Down};
  std::vector<TensorSpec> specs;
  const std::vector<ParamView> views = param_layout(c);
  for (size_t i = 0; i < views.size(); ++i) {
    const ParamView& v = views[i];
    TensorSpec s{v.name, Role::TokEmbd, -1, v.rows, v.cols, true};
    if (i == 0) {
      s.role = Role::TokEmbd;
    } else if (i < output_norm_param(c)) {
      s.layer = int((i - 1) / kLayerParams);
      s.role = kLayerRoles[(i - 1) % kLayerParams];
    } else if (i == output_norm_param(c)) {
      s.role = Role::OutNorm;
    } else if (!c.tied && i == output_norm_param(c) + 1) {
      s.role = Role::Head;
    } else {
      s.role = v.rows == 1 ? Role::ClsB : Role::ClsW;
    }
    specs.push_back(s);
  }
  specs.push_back({"rope_freqs.weight", Role::RopeFreqs, -1, 1, c.n_rot() / 2, false});
  return specs;
}

}  // namespace

extern const ArchDef kArchLlama{"llama", read, tensors};

}  // namespace lm::model
