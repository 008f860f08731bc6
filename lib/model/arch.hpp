// The architecture registry (docs/architectures.md): what each general.architecture reads from
// a GGUF file and which tensors it has, by llama.cpp's names. The forward pass is shared
// (session.cpp) and reads the roles below; one file per architecture in lib/model/arch/.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "format/gguf.hpp"
#include "model/model.hpp"

namespace lm::model {

// What a tensor is for. Layer roles repeat per block; the others appear once.
enum class Role : int {
  // once
  TokEmbd, PosEmbd, TokTypes, EmbdNorm, EmbdNormB, OutNorm, OutNormB, Head, HeadB, RopeFreqs, RopeLong, RopeShort, ClsW, ClsB,
  // per layer
  AttnNorm, AttnNormB, Q, K, V, Qkv, QB, KB, VB, QkvB, O, OB, AttnPostNorm,
  FfnNorm, FfnNormB, Gate, Up, GateUp, Down, GateB, UpB, DownB, FfnPostNorm,
  // per layer of a recurrent model (lstm): input and recurrent matrices, bias, projection
  LstmIh, LstmHh, LstmB, LstmProj,
  Count
};
inline constexpr int kRoles = int(Role::Count);

// One tensor of an architecture: its GGUF name, role, layer (-1 for the others), shape as
// [rows][cols] (GGUF ne = {cols, rows}; rows 1 for a vector) and whether a file must have it.
struct TensorSpec {
  std::string name;
  Role role;
  int layer;
  int rows, cols;
  bool required;
};

// Where each role's tensor sits in Weights::w, or -1.
struct TensorMap {
  std::array<int, kRoles> top;
  std::vector<std::array<int, kRoles>> layer;
  TensorMap() { top.fill(-1); }
  int at(int l, Role r) const { return layer[size_t(l)][size_t(r)]; }
};

struct ArchDef {
  const char* name;  // general.architecture
  // Reads NAME.* keys beyond the common ones (arch.cpp: read_common) into cfg and checks them.
  // Throws FormatError naming the file and key.
  void (*read)(const format::GgufFile& g, ModelConfig& cfg);
  // The architecture's tensors for cfg, by llama.cpp's names.
  std::vector<TensorSpec> (*tensors)(const ModelConfig& cfg);
};

// The definition for general.architecture `name`, or nullptr.
const ArchDef* find_arch(const std::string& name);
// "gpt2, llama, phi3, qwen2": for messages.
std::string arch_names();

// The u32 key `key` of g, which must be in [lo, hi]: FormatError naming the key otherwise.
int read_u32_in(const format::GgufFile& g, const std::string& key, uint32_t lo, uint32_t hi);

// Keys every architecture shares, under NAME.: context_length, embedding_length, block_count,
// feed_forward_length, attention.head_count(_kv), the norm epsilon (`eps_key`), rope.freq_base,
// rope.dimension_count, rope.scaling.type/factor. Throws FormatError naming the key.
void read_common(const format::GgufFile& g, ModelConfig& c, const char* eps_key);

// The tensor map of a list of specs (Weights::w in the same order).
TensorMap map_tensors(const std::vector<TensorSpec>& specs, int n_layer);

// Index of the spec named `name` in specs, or specs.size() when there is none.
size_t find_spec(const std::vector<TensorSpec>& specs, const std::string& name);

// Spec helpers for the architecture files: "blk.L.NAME.weight" and "blk.L.NAME.bias".
TensorSpec layer_weight(int l, const char* name, Role role, int rows, int cols, bool required = true);
TensorSpec layer_bias(int l, const char* name, Role role, int n, bool required = true);
// A classifier's head (cfg.n_cls > 0: lm-finetune --task classify), llama.cpp's single-layer
// cls.output.weight (n_cls, C) and cls.output.bias, appended to s; nothing when n_cls is 0.
void add_cls_specs(std::vector<TensorSpec>& s, const ModelConfig& c);

}  // namespace lm::model
