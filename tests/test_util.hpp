// Small helpers for unit tests: temp directories and file contents.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "quant/kquant.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lm-test-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    if (p) path_ = p;
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

inline bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  return names;
}

// Trains a tokenizer on `lines` in-process, quietly, on one thread (deterministic).
inline Tokenizer train_tokenizer(const std::vector<std::string>& lines, int vocab_size,
                                 TokenizerTrainOptions opts = TokenizerTrainOptions()) {
  opts.vocab_size = vocab_size;
  opts.threads = 1;
  size_t i = 0;
  Logger quiet("test", Logger::Level::Quiet);
  return Tokenizer::train(opts, [&](std::string& l) { return i < lines.size() ? (l = lines[i++], true) : false; }, quiet);
}

// Restores the best dot path (quant::limit_dot_path) when a test ends, passing or failing.
struct DotPathGuard {
  ~DotPathGuard() { quant::limit_dot_path(quant::DotPath::Avx512Vnni); }
};

}  // namespace lm::test
