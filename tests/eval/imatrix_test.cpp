// Tests for lib/eval/imatrix: llama-imatrix's chunks and names, the first layer's sums against a
// plain loop over the model's own normalized embeddings, and a session that gives the same
// logits with the observer as without.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "base/error.hpp"
#include "eval/imatrix.hpp"
#include "kernels/kernels.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::eval;

namespace {

struct Fixture {
  model::Params p;
  std::vector<int> stream;
  static model::ModelConfig cfg(bool tied = true) {
    model::ModelConfig c;
    c.tied = tied;
    c.n_vocab = 50, c.n_ctx = 32, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 48;
    return c;
  }
  explicit Fixture(bool tied = true) : p(cfg(tied), false) {
    Rng rng(7);
    p.init(rng);
    for (auto& w : p.w) w *= 10.0f;
    for (int i = 0; i < 100; ++i) stream.push_back(3 + int(rng.below(47)));
  }
};

constexpr int kBos = 1;

}  // namespace

TEST_CASE("imatrix: every layer matrix of llama's names, counts of llama-imatrix's chunks") {
  Fixture f;
  model::Session s(f.p, 32, 32);
  quant::Imatrix m;
  ImatrixOptions o;
  o.n_ctx = 32, o.n_batch = 20;  // batches of 20 and 12 rows: the 12 are below llama-imatrix's 16
  {
    ImatrixCollector c(s, imatrix_names(f.p.cfg), m, o, kBos);
    c.add(f.stream.data(), 40);  // fed in pieces: BOS + 100 tokens make 3 chunks of 32
    c.add(f.stream.data() + 40, 60);
    CHECK(c.chunks() == 3);
    CHECK(c.fed() == 100);
  }
  std::set<std::string> names;
  for (const auto& [name, e] : m.entries) {
    names.insert(name);
    REQUIRE(e.n_mat() == 1);
    CHECK(e.counts[0] == 3 * 20);
  }
  std::set<std::string> want;
  for (int l = 0; l < 2; ++l)
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      want.insert("blk." + std::to_string(l) + "." + w + ".weight");
  CHECK(names == want);  // no token_embd, no output.weight
  CHECK(m.chunk_count == 3);
  CHECK(m.chunk_size == 32);
  CHECK(m.entries["blk.0.ffn_down.weight"].cols == 48);
  // One input, several matrices: the same sums.
  CHECK(m.entries["blk.1.attn_q.weight"].sums == m.entries["blk.1.attn_k.weight"].sums);
  CHECK(m.entries["blk.1.attn_q.weight"].sums == m.entries["blk.1.attn_v.weight"].sums);
  CHECK(m.entries["blk.0.ffn_gate.weight"].sums == m.entries["blk.0.ffn_up.weight"].sums);

  // Layer 0's attention input is rmsnorm(token embedding) * gain: its squares summed over the
  // first 20 rows of each chunk, in a plain loop.
  const int C = 32;
  const float* E = f.p.get(f.p.find("token_embd.weight"));
  const float* g = f.p.get(f.p.find("blk.0.attn_norm.weight"));
  std::vector<int> seq = {kBos};
  seq.insert(seq.end(), f.stream.begin(), f.stream.end());
  std::vector<double> want_sums(C, 0.0);
  for (int c = 0; c < 3; ++c)
    for (int r = 0; r < 20; ++r) {
      const int tok = r == 0 ? kBos : seq[size_t(c * 32 + r)];
      const float* x = E + size_t(tok) * C;
      double ss = 0;
      for (int j = 0; j < C; ++j) ss += double(x[j]) * x[j];
      const double inv = 1.0 / std::sqrt(ss / C + double(f.p.cfg.norm_eps));
      for (int j = 0; j < C; ++j) {
        const double y = x[j] * inv * g[j];
        want_sums[size_t(j)] += y * y;
      }
    }
  const auto& got = m.entries["blk.0.attn_q.weight"].sums;
  for (int j = 0; j < C; ++j) CHECK(got[size_t(j)] == doctest::Approx(want_sums[size_t(j)]).epsilon(1e-4));
}

TEST_CASE("imatrix: the head only with process_output, and never a tied one") {
  for (bool tied : {true, false})
    for (bool head : {false, true}) {
      CAPTURE(tied);
      CAPTURE(head);
      Fixture f(tied);
      model::Session s(f.p, 32, 32);
      quant::Imatrix m;
      ImatrixOptions o;
      o.n_ctx = 32, o.n_batch = 32, o.process_output = head;
      ImatrixCollector c(s, imatrix_names(f.p.cfg), m, o, kBos);
      c.add(f.stream.data(), 31);
      CHECK(c.chunks() == 1);
      CHECK(m.entries.count("token_embd.weight") == 0);
      const bool want_head = head && !tied;
      CHECK(m.entries.count("output.weight") == size_t(want_head));
      CHECK(m.entries.size() == 14 + size_t(want_head));
      if (want_head) CHECK(m.entries["output.weight"].counts[0] == 32);  // every row's logits
    }
}

TEST_CASE("imatrix: the observer leaves the logits as they were") {
  Fixture f;
  model::Session a(f.p, 32, 32), b(f.p, 32, 32);
  quant::Imatrix m;
  ImatrixOptions o;
  o.n_ctx = 32;
  o.n_batch = 32;
  ImatrixCollector c(b, imatrix_names(f.p.cfg), m, o, kBos);
  const float* la = a.eval(f.stream.data(), 24, true);
  std::vector<float> want(la, la + 24 * 50);
  const float* lb = b.eval(f.stream.data(), 24, true);
  CHECK(std::memcmp(want.data(), lb, want.size() * sizeof(float)) == 0);
  CHECK(m.entries.size() == 14);  // it saw them
  CHECK(m.entries["blk.0.attn_q.weight"].counts[0] == 24);
}

TEST_CASE("imatrix: chunk length and batch checked against the session") {
  Fixture f;
  model::Session s(f.p, 32, 16);
  quant::Imatrix m;
  ImatrixOptions o;
  o.n_ctx = 64;
  CHECK_THROWS_AS(ImatrixCollector(s, imatrix_names(f.p.cfg), m, o, kBos), UsageError);
  o.n_ctx = 32, o.n_batch = 32;
  CHECK_THROWS_AS(ImatrixCollector(s, imatrix_names(f.p.cfg), m, o, kBos), UsageError);
}
