// Parallel whole-text encoding (OpenMP over lines) and the piece index.
#include "tokenizer/text_batch.hpp"


#include <exception>

#include "base/error.hpp"
#include "base/threads.hpp"

namespace lm {


// Runs fn() inside an OpenMP region, which no exception may leave: the first one any thread
// throws is kept in `error`, for the caller to rethrow after the region.
template <class Fn>
static void keep_first_error(std::exception_ptr& error, const Fn& fn) {
  try {
    fn();
  } catch (...) {
#pragma omp critical(lm_keep_first_error)
    if (!error) error = std::current_exception();
  }
}

// Runs fn(i) for i in [0, n) on `threads` threads; the first exception is rethrown after the loop.
template <class Fn>
static void parallel_lines(size_t n, int threads, const Fn& fn) {
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 64) num_threads(resolve_threads(threads))
  for (long i = 0; i < long(n); ++i) keep_first_error(error, [&] { fn(size_t(i)); });
  if (error) std::rethrow_exception(error);
}

void run_pipeline(int threads, const std::function<size_t(int)>& read, const std::function<void(int, size_t)>& encode,
                  const std::function<void(int)>& write) {
  size_t n[2] = {read(0), 0};
  if (n[0] == 0) return;
  const int team = resolve_threads(threads);
  for (int cur = 0;; cur = 1 - cur) {
    const int other = 1 - cur;
    std::exception_ptr error;
#pragma omp parallel num_threads(team)
    {
      // One thread: the batch before this one out, the one after it in (both use slot `other`).
#pragma omp single nowait
      keep_first_error(error, [&] {
        if (n[other] > 0) write(other);
        n[other] = read(other);
      });
#pragma omp for schedule(dynamic, 64)
      for (long i = 0; i < long(n[cur]); ++i) keep_first_error(error, [&] { encode(cur, size_t(i)); });
    }
    if (error) std::rethrow_exception(error);
    if (n[other] == 0) {  // this batch was the last
      write(cur);
      return;
    }
  }
}

void encode_batch(const Tokenizer& tok, const std::vector<std::string>& lines, std::vector<std::vector<int>>& out,
                  int threads, bool parse_special) {
  out.resize(lines.size());
  parallel_lines(lines.size(), threads, [&](size_t i) {
    out[i].clear();
    tok.encode(lines[i], out[i], parse_special);
  });
}

void encode_text_batch(const Tokenizer& tok, const std::vector<std::string>& lines, const std::vector<uint8_t>& first,
                       const std::vector<uint8_t>& newline, std::vector<std::vector<int>>& out, int threads,
                       bool parse_special) {
  LM_ASSERT(first.size() == lines.size() && newline.size() == lines.size());
  out.resize(lines.size());
  parallel_lines(lines.size(), threads, [&](size_t i) {
    out[i].clear();
    tok.encode_line_of_text(lines[i], first[i] != 0, newline[i] != 0, out[i], parse_special);
  });
}

bool can_cut_before(const Tokenizer& tok, std::string_view line) {
  if (!tok.vocab_spec()) return true;
  if (line.empty()) return false;
  const char c = line[0];
  return c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v';
}

void DocumentBatch::add(std::string_view line, bool first, bool newline) {
  if (!first && !lines_.empty() && newline_.back() && !can_cut_before(tok_, line)) {
    lines_.back() += '\n';
    lines_.back() += line;
    newline_.back() = newline;
    return;
  }
  lines_.emplace_back(line);
  first_.push_back(first);
  newline_.push_back(newline);
}

void DocumentBatch::encode(std::vector<std::vector<int>>& out, int threads, bool all, bool parse_special) {
  std::string keep;
  uint8_t keep_first = 0, keep_newline = 0;
  const bool hold = !all && !lines_.empty();
  if (hold) {
    keep = std::move(lines_.back());
    keep_first = first_.back(), keep_newline = newline_.back();
    lines_.pop_back(), first_.pop_back(), newline_.pop_back();
  }
  encode_text_batch(tok_, lines_, first_, newline_, out, threads, parse_special);
  lines_.clear(), first_.clear(), newline_.clear();
  if (hold) {
    lines_.push_back(std::move(keep));
    first_.push_back(keep_first);
    newline_.push_back(keep_newline);
  }
}

PieceIndex::PieceIndex(const Tokenizer& tok) {
  index_.reserve(size_t(tok.vocab_size()));
  for (int id = 0; id < tok.vocab_size(); ++id) index_.emplace(tok.piece(id), id);
}

std::optional<int> PieceIndex::find(std::string_view piece) const {
  auto it = index_.find(piece);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}


TokenCounter::TokenCounter(const Tokenizer& tok) : counts_(size_t(tok.vocab_size())), kind_(size_t(tok.vocab_size())) {
  for (int id = 0; id < tok.vocab_size(); ++id)
    kind_[size_t(id)] = tok.type(id) == PieceType::Unknown ? 1 : tok.type(id) == PieceType::Byte ? 2 : 0;
}

void TokenCounter::add(const int* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    auto id = size_t(ids[i]);
    LM_ASSERT(id < counts_.size());
    ++counts_[id];
    unknown_ += kind_[id] == 1;
    bytes_ += kind_[id] == 2;
  }
  tokens_ += n;
}

uint64_t TokenCounter::distinct() const {
  uint64_t d = 0;
  for (uint64_t c : counts_) d += c != 0;
  return d;
}

}  // namespace lm
