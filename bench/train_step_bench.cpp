// Training-step throughput of lm's model code: forward + backward + AdamW on random tokens,
// at the presets' shapes (default small: B 8 x T 512). Prints tokens/s as median
// [min-max] over the timed steps, model GFLOP/s by the PaLM convention (6N + 12 L C T per token)
// and MFU against 385 GFLOP/s. The LSTM presets (lstm-tiny, lstm-small, lstm-medium: docs/lstm.md)
// train B 32 streams x T windows with the state carried, FLOPs 6N per token. The encoder presets
// (bert-tiny, bert-small: docs/encoder.md) train the masked-language-model objective on B 32 x
// T 128 rows, 15% of the positions predicted, FLOPs as lm-train counts them. gpt2-tiny,
// gpt2-small, gpt2-medium: the preset's sizes as a gpt2 (lm-train --arch gpt2).
// Usage: train_step_bench [tiny|small|medium|gpt2-*|lstm-*|bert-tiny|bert-small] [steps] [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "model/encoder.hpp"
#include "model/lstm.hpp"
#include "model/model.hpp"
#include "train/run.hpp"

using namespace lm;

namespace {

// The vocabulary of the transformer preset of the same size.
int lstm_vocab(const std::string& name) { return name == "lstm-tiny" ? 4096 : name == "lstm-small" ? 8192 : 32000; }

int bench_lstm(const std::string& name, int steps, int threads) {
  train::ModelShape shape;
  shape.arch = "lstm";
  shape.preset = name;
  const model::LstmConfig cfg = train::make_lstm_config(shape, lstm_vocab(name));
  const int T = cfg.n_ctx, B = 32;
  model::LstmParams p(cfg);
  Rng rng(1);
  p.init(rng);
  std::vector<float> m(p.w.size()), v(p.w.size());
  model::LstmModel net(cfg, B, T);
  model::LstmState st;
  st.resize(cfg, B);
  std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
  std::printf("%s: %zu parameters, B %d x T %d, %d threads, activations %.0f MiB, OpenBLAS core %s\n", name.c_str(),
              cfg.n_params(), B, T, threads, double(net.activation_bytes()) / (1 << 20), kernels::blas_info().core.c_str());
  std::vector<double> tps;
  for (int s = 0; s < steps + 2; ++s) {
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(uint64_t(cfg.n_vocab)));
    for (size_t i = 0; i + 1 < tokens.size(); ++i) targets[i] = tokens[i + 1];
    targets.back() = int(rng.below(uint64_t(cfg.n_vocab)));
    auto t0 = std::chrono::steady_clock::now();
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    float loss = net.forward(p, tokens.data(), targets.data(), B, T, st);
    net.backward(p);
    kernels::adamw_step(p.w.data(), p.grad.data(), m.data(), v.data(), p.w.size(), 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 2) tps.push_back(double(B) * T / secs);
    std::printf("step %d loss %.4f %.0f tok/s\n", s, loss, double(B) * T / secs);
  }
  std::sort(tps.begin(), tps.end());
  const double med = tps[tps.size() / 2];
  const double flops = 6.0 * double(cfg.n_params());
  std::printf("train %s: %.0f tok/s [%.0f-%.0f], %.0f GFLOP/s, MFU %.0f%%\n", name.c_str(), med, tps.front(),
              tps.back(), med * flops / 1e9, 100.0 * med * flops / 1e9 / 385.0);
  return 0;
}

int bench_encoder(const std::string& name, int steps, int threads) {
  model::ModelConfig base = model::preset(name == "bert-tiny" ? "tiny" : "small");
  base.n_ctx = 128;
  const model::ModelConfig cfg = model::encoder_config(base);
  const int T = cfg.n_ctx, B = 32;
  model::Params p(cfg);
  Rng rng(1);
  p.init(rng);
  std::vector<float> m(p.w.size()), v(p.w.size());
  model::EncoderModel net(cfg, B, T);
  std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
  std::printf("%s: %zu parameters, B %d x T %d, %d threads, activations %.0f MiB, OpenBLAS core %s\n", name.c_str(),
              cfg.n_params(), B, T, threads, double(net.activation_bytes()) / (1 << 20), kernels::blas_info().core.c_str());
  std::vector<double> tps;
  for (int s = 0; s < steps + 2; ++s) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = int(rng.below(uint64_t(cfg.n_vocab)));
      targets[i] = rng.uniform() < 0.15f ? tokens[i] : -1;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    float loss = net.forward(p, tokens.data(), nullptr, targets.data(), B, T);
    net.backward(p);
    kernels::adamw_step(p.w.data(), p.grad.data(), m.data(), v.data(), p.w.size(), 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 2) tps.push_back(double(B) * T / secs);
    std::printf("step %d loss %.4f %.0f tok/s\n", s, loss, double(B) * T / secs);
  }
  std::sort(tps.begin(), tps.end());
  const double med = tps[tps.size() / 2];
  const double C = cfg.n_embd, layer = 4 * C * C + 2 * C * cfg.n_ff;
  const double flops = 6.0 * cfg.n_layer * layer + 12.0 * cfg.n_layer * C * T + 6.0 * 0.15 * C * cfg.n_vocab;
  std::printf("train %s: %.0f tok/s [%.0f-%.0f], %.0f GFLOP/s, MFU %.0f%%\n", name.c_str(), med, tps.front(),
              tps.back(), med * flops / 1e9, 100.0 * med * flops / 1e9 / 385.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "small";
  const int steps = argc > 2 ? std::atoi(argv[2]) : 7;
  const int threads = kernels::set_threads(argc > 3 ? std::atoi(argv[3]) : 2);
  if (name.starts_with("lstm-")) return bench_lstm(name, steps, threads);
  if (name.starts_with("bert-")) return bench_encoder(name, steps, threads);
  const bool gpt2 = name.starts_with("gpt2-");
  const std::string size = gpt2 ? name.substr(5) : name;
  model::ModelConfig cfg = model::preset(size);
  if (gpt2) cfg = model::gpt2_config(cfg);
  const int T = cfg.n_ctx, B = (size == "tiny" ? 4096 : size == "small" ? 4096 : 2048) / T;
  model::Params p(cfg);
  Rng rng(1);
  p.init(rng);
  std::vector<float> m(p.w.size()), v(p.w.size());
  model::Model net(cfg, B, T);
  std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
  std::printf("%s: %zu parameters, B %d x T %d, %d threads, activations %.0f MiB, OpenBLAS core %s\n", name.c_str(),
              cfg.n_params(), B, T, threads, double(net.activation_bytes()) / (1 << 20), kernels::blas_info().core.c_str());
  std::vector<double> tps;
  for (int s = 0; s < steps + 2; ++s) {
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int(rng.below(uint64_t(cfg.n_vocab)));
    for (size_t i = 0; i + 1 < tokens.size(); ++i) targets[i] = tokens[i + 1];
    targets.back() = int(rng.below(uint64_t(cfg.n_vocab)));
    auto t0 = std::chrono::steady_clock::now();
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    float loss = net.forward(p, tokens.data(), targets.data(), B, T);
    net.backward(p);
    kernels::adamw_step(p.w.data(), p.grad.data(), m.data(), v.data(), p.w.size(), 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 2) tps.push_back(double(B) * T / secs);
    std::printf("step %d loss %.4f %.0f tok/s\n", s, loss, double(B) * T / secs);
  }
  std::sort(tps.begin(), tps.end());
  const double med = tps[tps.size() / 2];
  const double flops = 6.0 * double(cfg.n_params()) + 12.0 * cfg.n_layer * cfg.n_embd * T;
  std::printf("train %s: %.0f tok/s [%.0f-%.0f], %.0f GFLOP/s, MFU %.0f%%\n", name.c_str(), med, tps.front(),
              tps.back(), med * flops / 1e9, 100.0 * med * flops / 1e9 / 385.0);
  return 0;
}
