// Shared by the libFuzzer targets in tests/fuzz/ and their seed generator (make_seeds.cpp).
//
// What counts as a finding: a sanitizer report, a crash or assertion, a timeout, memory past
// -rss_limit_mb / -malloc_limit_mb, and any exception but the ones a loader is documented to
// throw for bad bytes (lm::FormatError, lm::IoError, lm::ResourceError). A UsageError is a
// finding too: bytes in a file are never a usage error (exit 2), so check() aborts on it.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::fuzz {

// Runs f; returns normally for the errors bad input may cause, aborts for anything else.
template <class F>
void check(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "finding: UsageError from file bytes: %s\n", e.what());
    std::abort();
  } catch (const FormatError&) {
  } catch (const IoError&) {
  } catch (const ResourceError&) {
  }
  // Anything else (std::length_error, std::out_of_range, bad_alloc, ...) escapes: libFuzzer
  // reports the uncaught exception as a crash.
}

// An in-memory regular file (memfd) with a path, for loaders that take a path: no disk writes,
// and it passes the loaders' regular-file check as a real file does.
class MemFile {
 public:
  MemFile() : fd_(::memfd_create("lm-fuzz", 0)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  // Replaces the file's contents with data[0, size).
  const std::string& set(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, off_t(done));
      if (n <= 0) std::abort();
      done += size_t(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// The tokenizer the seeds use: BPE, 48 pieces, no byte fallback (a small vocabulary keeps the
// seed models a few KB). Deterministic: one thread.
inline Tokenizer seed_tokenizer(bool byte_fallback = false) {
  static const std::vector<std::string> lines = {
      "the quick brown fox jumps over the lazy dog",
      "a good film, a bad film; the end.",
      "Pack my box with five dozen liquor jugs!",
      "how vexingly quick daft zebras jump 0123456789",
  };
  TokenizerTrainOptions o;
  o.vocab_size = byte_fallback ? 320 : 48;
  o.byte_fallback = byte_fallback;
  o.threads = 1;
  size_t i = 0;
  Logger quiet("fuzz", Logger::Level::Quiet);
  return Tokenizer::train(o, [&](std::string& l) { return i < lines.size() ? (l = lines[i++], true) : false; },
                          quiet);
}

// The configuration of the seed models (and the base model the LoRA target loads adapters for).
inline model::ModelConfig seed_config(int n_vocab = 48, int n_cls = 0) {
  model::ModelConfig c;
  c.n_vocab = n_vocab;
  c.n_ctx = 16;
  c.n_layer = 1;
  c.n_embd = 8;
  c.n_head = 2;
  c.n_head_kv = 1;
  c.n_ff = 16;
  c.n_cls = n_cls;
  return c;
}
// The seed shape as phi3 (fused q, k, v and gate, up in its files and adapters).
inline model::ModelConfig seed_config_phi3() {
  model::ModelConfig c = seed_config();
  c.arch.name = "phi3", c.arch.neox = true;
  return c;
}

}  // namespace lm::fuzz
