// Writes small valid inputs for every fuzz target into DIR/TARGET/ (tests/fuzz/README.md):
// models, adapters, tokenizers and token files made by the library's own writers, and a few
// lines of JSON and labelled text. Usage: lm_fuzz_seeds DIR
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "base/file.hpp"
#include "base/rng.hpp"
#include "format/gguf.hpp"
#include "format/token_file.hpp"
#include "fuzz_util.hpp"
#include "model/lora.hpp"
#include "model/lstm.hpp"
#include "model/model_io.hpp"
#include "model/tokenizer_loader.hpp"

using namespace lm;

namespace {

std::string dir;

std::string out(const std::string& target, const std::string& name) {
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/" + target).c_str(), 0755);
  return dir + "/" + target + "/" + name;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw IoError(path, "cannot write", 0);
}

void fill(float* w, size_t n, Rng& rng) {
  for (size_t i = 0; i < n; ++i) w[i] = 0.1f * float(rng.normal());
}

void save_model(const Tokenizer& tok, const model::ModelConfig& cfg, const std::vector<std::string>& paths) {
  model::Params p(cfg, false);
  Rng rng(1);
  fill(p.w.data(), p.w.size(), rng);
  format::GgufWriter w;
  const std::vector<std::string> labels = cfg.n_cls ? std::vector<std::string>{"neg", "pos"} : std::vector<std::string>{};
  model::add_model(w, p, tok, "seed", labels);
  for (const std::string& path : paths) w.save(path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: lm_fuzz_seeds DIR\n");
    return 2;
  }
  dir = argv[1];
  try {
    const Tokenizer tok = fuzz::seed_tokenizer(), tok_bytes = fuzz::seed_tokenizer(true);
    const model::ModelConfig cfg = fuzz::seed_config(tok.vocab_size());

    save_model(tok, cfg, {out("model", "model.gguf"), out("gguf", "model.gguf")});
    save_model(tok, fuzz::seed_config(tok.vocab_size(), 2), {out("model", "classifier.gguf")});
    {  // An LSTM (docs/lstm.md), tied, with a projection: its own keys and tensor names.
      model::LstmConfig lc;
      lc.n_vocab = tok.vocab_size(), lc.n_ctx = 8, lc.n_embd = 8, lc.n_hidden = 12, lc.n_layer = 2, lc.n_proj = 8;
      model::LstmParams p(lc, false);
      Rng rng(2);
      fill(p.w.data(), p.w.size(), rng);
      format::GgufWriter w;
      model::add_lstm_model(w, p, tok, "seed");
      w.save(out("model", "lstm.gguf"));
    }

    // Tokenizers: .model bytes, with and without byte fallback, and GGUF without the bytes.
    write(out("spm", "bpe.model"), tok.model_proto());
    write(out("spm", "bpe_bytes.model"), tok_bytes.model_proto());
    {
      format::GgufWriter w;
      w.set_string(format::kKeyArchitecture, "llama");
      model::add_tokenizer(tok, w, false);
      w.save(out("spm", "vocab.gguf"));
      w.save(out("gguf", "vocab.gguf"));
    }

    // LoRA adapters for the seed model: rank 1 on every projection, rank 2 on attention only;
    // and for its phi3 twin, rank 1 on every projection (pairs on the fused tensors).
    for (auto [rank, targets, name] : {std::tuple{1, "all", "all_r1.gguf"}, std::tuple{2, "attn", "attn_r2.gguf"},
                                       std::tuple{1, "all", "phi3_all_r1.gguf"}}) {
      model::LoraOptions o;
      o.rank = rank;
      o.targets = model::parse_lora_targets(targets);
      model::Lora l(std::string(name).starts_with("phi3") ? fuzz::seed_config_phi3() : cfg, o);
      Rng rng(2);
      l.init(rng);
      fill(l.w.data(), l.w.size(), rng);
      format::GgufWriter w;
      model::add_adapter(w, l, "seed");
      w.save(out("lora", name));
      if (rank == 1) w.save(out("gguf", "lora.gguf"));
    }

    // Token files: u16 tokens of the seed tokenizer, and u32 (a vocabulary above 65536).
    std::vector<int> ids;
    tok.encode_text("the quick brown fox\njumps over the lazy dog\n", ids);
    for (auto [vocab, name] : {std::pair{uint32_t(tok.vocab_size()), "u16.tok"}, std::pair{70000u, "u32.tok"}}) {
      OutputFile f(out("token_file", name));
      format::TokenFileWriter w(f, vocab, tok.fingerprint());
      w.write(ids);
      w.finish();
      f.commit();
    }

    write(out("jsonl", "pairs.jsonl"),
          "{\"prompt\": \"the quick\", \"completion\": \" brown fox\"}\n"
          "\n"
          "{\"completion\": \"jumps \\\"over\\\"\\n\", \"prompt\": \"the fox \\u00e9\\ud83d\\ude00\\t\", \"id\": 7,"
          " \"tags\": [1.5e3, true, false, null, {\"a\": []}]}\r\n"
          "  {\"prompt\":\"\",\"completion\":\"a good film\"}\n");
    write(out("labeled", "tab.txt"), "pos\ta good film\nneg\ta bad film\n\npos\tthe end.  \r\n");
    write(out("labeled", "fasttext.txt"), "__label__pos a good film\n__label__neg __label__x a bad film\n__label__neg\tdog\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "lm_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
