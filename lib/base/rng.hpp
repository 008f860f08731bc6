// Seeded random numbers: xoshiro256** seeded through splitmix64. No global state: every
// random draw in lm takes an Rng that was seeded from --seed. The state is four u64 words,
// so checkpoints can store and restore it exactly.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace lm {

// splitmix64 step: also used to derive independent seeds (per line, per thread) from one seed.
inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Derives a child seed from (seed, stream) so that, e.g., line k's sampler does not depend on
// how many lines came before it or on the order of processing.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
  splitmix64(x);
  return splitmix64(x);
}

class Rng {
 public:
  using State = std::array<uint64_t, 4>;
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
  }
  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  uint32_t next_u32() { return uint32_t(next_u64() >> 32); }
  // Uniform in [0, 1) with 24 random bits (exactly representable as float).
  float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform_double() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method).
  uint64_t below(uint64_t n) {
    unsigned __int128 m = (unsigned __int128)next_u64() * n;
    uint64_t l = uint64_t(m);
    if (l < n) {
      uint64_t t = (0 - n) % n;
      while (l < t) {
        m = (unsigned __int128)next_u64() * n;
        l = uint64_t(m);
      }
    }
    return uint64_t(m >> 64);
  }
  // Standard normal via Box-Muller (one value per call; the pair's second half is dropped so
  // that the state is only the four words).
  float normal() {
    double u1 = 1.0 - uniform_double();  // (0, 1]
    double u2 = uniform_double();
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  const State& state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  State s_{};
};

}  // namespace lm
