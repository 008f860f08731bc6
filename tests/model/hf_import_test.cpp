// Tests for lib/model/hf_import: tiny Hugging Face directories written here (config.json and a
// safetensors file whose values say where they came from), read back as llama.cpp's converter
// lays them out: the q/k row permutation, GPT-2's transposed Conv1D, Gemma's +1, Llama 3.1's
// rope_freqs, tied heads; and the refusals, each naming the file and the key or tensor.
// tests/tools/hf_import_test.sh checks whole models against PyTorch.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "format/gguf.hpp"
#include "model/hf_import.hpp"
#include "test_util.hpp"

using namespace lm;
using lm::model::HfModel;

namespace {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::string dtype = "F32";  // F32, or I32 (values as integers)
};

// A safetensors file: 8-byte length, the JSON header padded with spaces, the data.
std::string safetensors(const std::map<std::string, Tensor>& ts) {
  Json h = Json::object();
  std::string data;
  for (const auto& [name, t] : ts) {
    const size_t begin = data.size();
    for (float v : t.values) {
      if (t.dtype == "I32") {
        const int32_t i = int32_t(v);
        data.append(reinterpret_cast<const char*>(&i), 4);
      } else {
        data.append(reinterpret_cast<const char*>(&v), 4);
      }
    }
    h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string json = h.dump();
  json.resize((json.size() + 7) / 8 * 8, ' ');
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[size_t(i)] = char(uint64_t(json.size()) >> (8 * i));
  return len + json + data;
}

// Values that name their position: row r, column c holds 100 r + c (+ `base`).
Tensor counting(std::vector<int64_t> shape, float base = 0) {
  Tensor t{shape, {}};
  const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.values.push_back(base + float(100 * r + c));
  return t;
}

// A llama: C = 8, 2 heads of 4, 1 kv head, F = 3, V = 5, one layer.
Json llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 8}, {"num_hidden_layers", 1},
          {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"intermediate_size", 3}, {"vocab_size", 5},
          {"max_position_embeddings", 16}, {"rms_norm_eps", 1e-5}, {"hidden_act", "silu"}, {"rope_theta", 10000.0}};
}
std::map<std::string, Tensor> llama_tensors(bool head = true) {
  std::map<std::string, Tensor> t = {{"model.embed_tokens.weight", counting({5, 8})},
                                     {"model.norm.weight", counting({8})}};
  const std::string p = "model.layers.0.";
  t[p + "input_layernorm.weight"] = counting({8});
  t[p + "self_attn.q_proj.weight"] = counting({8, 8});
  t[p + "self_attn.k_proj.weight"] = counting({4, 8});
  t[p + "self_attn.v_proj.weight"] = counting({4, 8});
  t[p + "self_attn.o_proj.weight"] = counting({8, 8});
  t[p + "post_attention_layernorm.weight"] = counting({8});
  t[p + "mlp.gate_proj.weight"] = counting({3, 8});
  t[p + "mlp.up_proj.weight"] = counting({3, 8});
  t[p + "mlp.down_proj.weight"] = counting({8, 3});
  if (head) t["lm_head.weight"] = counting({5, 8});
  return t;
}

void write_dir(const test::TempDir& d, const Json& config, const std::map<std::string, Tensor>& ts) {
  test::write_file(d.path() + "/config.json", config.dump());
  test::write_file(d.path() + "/model.safetensors", safetensors(ts));
}

// Tensor `name` of the import: its GGUF shape (ne) and values.
struct Got {
  std::vector<int64_t> ne;
  std::vector<float> v;
};
std::map<std::string, Got> read_all(const HfModel& m) {
  format::GgufWriter w;
  m.add_to(w);
  std::map<std::string, Got> out;
  // The writer's tensor infos are not public: rebuild the names and shapes from a written
  // header by writing the whole file and reading it back.
  test::TempDir d;
  const std::string path = d.path() + "/x.gguf";
  {
    OutputFile f(path);
    w.write(f, [&](size_t i, uint8_t* dst) { m.write_tensor(i, reinterpret_cast<float*>(dst)); });
    f.commit();
  }
  const format::GgufFile g = format::GgufFile::open(path);
  for (const auto& t : g.tensors()) {
    Got& o = out[t.name];
    o.ne.assign(t.ne, t.ne + t.n_dims);
    const float* p = reinterpret_cast<const float*>(t.data);
    o.v.assign(p, p + t.n_elements());
  }
  return out;
}

// Row r of a [rows][cols] tensor.
std::vector<float> row(const Got& g, int r) {
  const size_t cols = size_t(g.ne[0]);
  return {g.v.begin() + long(size_t(r) * cols), g.v.begin() + long(size_t(r + 1) * cols)};
}

std::string error_of(const std::string& dir) {
  try {
    HfModel::open(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("llama: q and k rows permuted per head to adjacent pairs, the rest copied") {
  test::TempDir d;
  write_dir(d, llama_config(), llama_tensors());
  const HfModel m = HfModel::open(d.path());
  CHECK(m.arch() == "llama");
  auto t = read_all(m);
  REQUIRE(t.size() == 12);
  // Head size 4: HF rows (first halves, then second halves) 0 1 2 3 become 0 2 1 3.
  const int q_order[] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r) CHECK(row(t["blk.0.attn_q.weight"], r)[0] == float(100 * q_order[r]));
  const int k_order[] = {0, 2, 1, 3};  // one kv head
  for (int r = 0; r < 4; ++r) CHECK(row(t["blk.0.attn_k.weight"], r)[1] == float(100 * k_order[r] + 1));
  CHECK(t["blk.0.attn_q.weight"].ne == std::vector<int64_t>{8, 8});
  CHECK(t["blk.0.attn_v.weight"].v == counting({4, 8}).values);
  CHECK(t["blk.0.ffn_down.weight"].ne == std::vector<int64_t>{3, 8});
  CHECK(t["blk.0.ffn_down.weight"].v == counting({8, 3}).values);
  CHECK(t["output.weight"].v == counting({5, 8}).values);
  CHECK(t["blk.0.ffn_norm.weight"].v == counting({8}).values);
  CHECK(t.count("rope_freqs.weight") == 0);
}

TEST_CASE("llama: tied embeddings give no output.weight; llama3 scaling gives rope_freqs as the converter computes them") {
  test::TempDir d;
  Json c = llama_config();
  c["rope_theta"] = 500000.0;
  c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 256}};
  write_dir(d, c, llama_tensors(false));
  auto t = read_all(HfModel::open(d.path()));
  CHECK(t.count("output.weight") == 0);
  REQUIRE(t.count("rope_freqs.weight") == 1);
  // Head size 4: frequencies 1 and 500000^-0.5; wavelengths 6.28 (< 256/4: kept) and 4443
  // (> 256: divided by the factor).
  CHECK(t["rope_freqs.weight"].v == std::vector<float>{1.0f, 8.0f});
  c["rope_theta"] = 400.0;  // wavelengths 6.28 and 125.7: the second in the smoothed band (64 to 256)
  write_dir(d, c, llama_tensors(false));
  auto u = read_all(HfModel::open(d.path()));
  const double wl = 2 * M_PI * 20.0, s = (256.0 / wl - 1.0) / 3.0;
  CHECK(u["rope_freqs.weight"].v[0] == 1.0f);
  CHECK(u["rope_freqs.weight"].v[1] == doctest::Approx(1.0 / ((1 - s) / 8.0 + s)).epsilon(1e-5));
}

TEST_CASE("gpt2: Conv1D weights transposed, positions kept, the mask buffer skipped") {
  test::TempDir d;
  const Json c = {{"architectures", {"GPT2LMHeadModel"}}, {"n_embd", 4}, {"n_layer", 1}, {"n_head", 2},
                  {"n_ctx", 6}, {"vocab_size", 5}, {"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"}};
  std::map<std::string, Tensor> ts = {{"wte.weight", counting({5, 4})}, {"wpe.weight", counting({6, 4})},
                                      {"ln_f.weight", counting({4})}, {"ln_f.bias", counting({4})}};
  for (const char* n : {"ln_1", "ln_2"}) {
    ts["h.0." + std::string(n) + ".weight"] = counting({4});
    ts["h.0." + std::string(n) + ".bias"] = counting({4});
  }
  ts["h.0.attn.c_attn.weight"] = counting({4, 12});
  ts["h.0.attn.c_attn.bias"] = counting({12});
  ts["h.0.attn.c_proj.weight"] = counting({4, 4});
  ts["h.0.attn.c_proj.bias"] = counting({4});
  ts["h.0.mlp.c_fc.weight"] = counting({4, 16});
  ts["h.0.mlp.c_fc.bias"] = counting({16});
  ts["h.0.mlp.c_proj.weight"] = counting({16, 4});
  ts["h.0.mlp.c_proj.bias"] = counting({4});
  ts["h.0.attn.bias"] = counting({1, 36});
  write_dir(d, c, ts);
  auto t = read_all(HfModel::open(d.path()));
  CHECK(t.count("output.weight") == 0);
  const Got& qkv = t["blk.0.attn_qkv.weight"];
  REQUIRE(qkv.ne == std::vector<int64_t>{4, 12});  // 12 rows of 4
  CHECK(row(qkv, 7) == std::vector<float>{7, 107, 207, 307});  // HF column 7
  CHECK(t["blk.0.ffn_down.weight"].ne == std::vector<int64_t>{16, 4});
  CHECK(t["position_embd.weight"].v == counting({6, 4}).values);
}

TEST_CASE("gemma2: every norm gain gets +1; lm_head.weight is left out") {
  test::TempDir d;
  const Json c = {{"architectures", {"Gemma2ForCausalLM"}}, {"hidden_size", 8}, {"num_hidden_layers", 1},
                  {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"head_dim", 8}, {"intermediate_size", 3},
                  {"vocab_size", 5}, {"max_position_embeddings", 16}, {"rms_norm_eps", 1e-6},
                  {"hidden_activation", "gelu_pytorch_tanh"}, {"query_pre_attn_scalar", 8},
                  {"attn_logit_softcapping", 50.0}, {"final_logit_softcapping", 30.0}, {"sliding_window", 4}};
  std::map<std::string, Tensor> ts = {{"model.embed_tokens.weight", counting({5, 8})},
                                      {"model.norm.weight", counting({8})}, {"lm_head.weight", counting({5, 8})}};
  const std::string p = "model.layers.0.";
  for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                        "post_feedforward_layernorm"})
    ts[p + n + ".weight"] = counting({8});
  ts[p + "self_attn.q_proj.weight"] = counting({16, 8});
  ts[p + "self_attn.k_proj.weight"] = counting({8, 8});
  ts[p + "self_attn.v_proj.weight"] = counting({8, 8});
  ts[p + "self_attn.o_proj.weight"] = counting({8, 16});
  ts[p + "mlp.gate_proj.weight"] = counting({3, 8});
  ts[p + "mlp.up_proj.weight"] = counting({3, 8});
  ts[p + "mlp.down_proj.weight"] = counting({8, 3});
  write_dir(d, c, ts);
  auto t = read_all(HfModel::open(d.path()));
  CHECK(t.count("output.weight") == 0);
  for (const char* n : {"blk.0.attn_norm.weight", "blk.0.post_attention_norm.weight", "blk.0.ffn_norm.weight",
                        "blk.0.post_ffw_norm.weight", "output_norm.weight"})
    CHECK(t[n].v == counting({8}, 1).values);
  CHECK(t["blk.0.attn_q.weight"].v == counting({16, 8}).values);  // NEOX RoPE: rows as they are
}

TEST_CASE("refusals name the file and the key or tensor") {
  test::TempDir d;
  const std::string cfg = d.path() + "/config.json", st = d.path() + "/model.safetensors";
  CHECK(error_of(d.path()).find(cfg) != std::string::npos);  // no config.json

  Json c = llama_config();
  c["architectures"] = {"FalconForCausalLM"};
  write_dir(d, c, llama_tensors());
  CHECK(error_of(d.path()) == cfg + ": architecture 'FalconForCausalLM' is not supported, expected one of " +
                                  model::hf_arch_names());

  c = llama_config();
  c.erase("vocab_size");
  write_dir(d, c, llama_tensors());
  CHECK(error_of(d.path()) == cfg + ": key 'vocab_size' is missing, expected an integer from 1 to 16777216");

  c = llama_config();
  c["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  write_dir(d, c, llama_tensors());
  CHECK(error_of(d.path()).find(cfg + ": key 'rope_scaling' has type 'dynamic'") == 0);

  c = llama_config();
  c["hidden_act"] = "gelu";
  write_dir(d, c, llama_tensors());
  CHECK(error_of(d.path()) == cfg + ": key 'hidden_act' is \"gelu\", expected silu");

  auto ts = llama_tensors();
  ts.erase("model.layers.0.mlp.up_proj.weight");
  write_dir(d, llama_config(), ts);
  CHECK(error_of(d.path()) == st + ": has no tensor 'model.layers.0.mlp.up_proj.weight', which llama needs (shape "
                                   "[3, 8] from config.json)");

  ts = llama_tensors();
  ts["model.layers.0.self_attn.k_proj.weight"] = counting({8, 8});
  write_dir(d, llama_config(), ts);
  CHECK(error_of(d.path()) == st + ": tensor 'model.layers.0.self_attn.k_proj.weight' has shape [8, 8], expected "
                                   "[4, 8] from config.json");

  ts = llama_tensors();
  ts["model.layers.0.self_attn.q_proj.bias"] = counting({8});
  write_dir(d, llama_config(), ts);
  CHECK(error_of(d.path()) == st + ": tensor 'model.layers.0.self_attn.q_proj.bias' is not one of llama's tensors "
                                   "for this config.json ([8])");

  ts = llama_tensors();
  ts["model.norm.weight"].dtype = "I32";
  write_dir(d, llama_config(), ts);
  CHECK(error_of(d.path()) == st + ": tensor 'model.norm.weight' has dtype I32, expected F32, F16, BF16 or F64");
}
