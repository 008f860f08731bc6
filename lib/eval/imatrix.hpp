// Importance matrices from a model run over text, as llama.cpp's llama-imatrix computes them:
// for every weight matrix of the layers (blk.N.*), the sum over tokens of each input column's
// squared activation and the number of tokens (quant/imatrix.hpp), which lm-quantize --imatrix
// (and llama-quantize) turn into per-column weights for the quantizers.
//
// Chunks as llama-imatrix cuts them: the stream, after a BOS token if the model adds one, is cut
// into non-overlapping chunks of n_ctx tokens; each chunk starts with BOS (replacing its first
// token) when add_bos and is evaluated from an empty cache in batches of n_batch tokens; a final
// partial chunk is not evaluated. As in llama-imatrix, products over fewer than 16 rows (the tail
// batch of a chunk) are left out, and so is the head unless process_output.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/session.hpp"
#include "quant/imatrix.hpp"

namespace lm::eval {

struct ImatrixOptions {
  int n_ctx = 512;              // chunk length (llama-imatrix -c)
  int n_batch = 512;            // tokens per forward pass
  bool add_bos = true;
  bool process_output = false;  // also output.weight (llama-imatrix --process-output)
};

// Inputs with fewer rows than this are not collected (llama-imatrix's rule).
inline constexpr int kImatrixMinRows = 16;

class ImatrixCollector : public model::MatmulObserver {
 public:
  // Collects into `out` while the scorer lives; `session` (n_ctx >= opts.n_ctx, n_batch >=
  // opts.n_batch) and `out` must outlive it. `names` maps (layer, role) to the model's tensor
  // names (imatrix_names). bos is the id of BOS (used when opts.add_bos).
  ImatrixCollector(model::Session& session, std::map<std::pair<int, model::Role>, std::string> names,
                   quant::Imatrix& out, const ImatrixOptions& opts, int bos);
  ~ImatrixCollector() override;
  // Feeds the next ids of the stream; every complete chunk is evaluated at once.
  void add(const int* ids, size_t n);
  void add(const std::vector<int>& ids) { add(ids.data(), ids.size()); }
  uint64_t chunks() const { return chunks_; }
  uint64_t fed() const { return fed_; }  // tokens fed (BOS not counted)

  void observe(int layer, model::Role role, const kernels::QWeight& W, const float* x, int rows) override;

 private:
  void run_chunk();
  model::Session& s_;
  std::map<std::pair<int, model::Role>, std::string> names_;
  quant::Imatrix& out_;
  ImatrixOptions o_;
  int bos_;
  std::vector<int> chunk_;
  uint64_t chunks_ = 0, fed_ = 0;
  std::string non_finite_;  // the first entry whose sums stopped being finite
};

// The tensor names of a model's weight matrices by (layer, role), from its architecture's
// tensor list (model/arch.hpp); layer -1 for the others (token_embd.weight, output.weight).
std::map<std::pair<int, model::Role>, std::string> imatrix_names(const model::ModelConfig& cfg);

}  // namespace lm::eval
