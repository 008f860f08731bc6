#include "dataset/labeled.hpp"

#include <algorithm>

namespace lm::dataset {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view line_label(std::string_view line) {
  if (line.starts_with(kLabelPrefix)) {
    line.remove_prefix(kLabelPrefix.size());
    size_t end = 0;
    while (end < line.size() && !is_space(line[end])) ++end;
    return line.substr(0, end);
  }
  const size_t tab = line.find('\t');
  return trim(tab == std::string_view::npos ? line : line.substr(0, tab));
}

bool has_label_field(std::string_view line) {
  return line.starts_with(kLabelPrefix) || line.find('\t') != std::string_view::npos;
}

std::string_view line_text(std::string_view line) {
  if (line.starts_with(kLabelPrefix)) {
    while (line.starts_with(kLabelPrefix)) {
      size_t end = 0;
      while (end < line.size() && !is_space(line[end])) ++end;
      line = trim(line.substr(end));
    }
    return line;
  }
  const size_t tab = line.find('\t');
  return tab == std::string_view::npos ? std::string_view() : trim(line.substr(tab + 1));
}

std::vector<int> classifier_input(const Tokenizer& tok, std::string_view text, bool add_bos, int max_tokens) {
  std::vector<int> ids;
  // Only the first max_tokens count, so a long text is encoded from a prefix of 64 bytes per
  // token wanted (more than a piece spans), doubled while it yields too few tokens: an 8 MB
  // line costs what its first few kilobytes do. The cut lies far past the last token kept.
  const size_t bos = add_bos && tok.bos_id() ? 1 : 0;
  size_t prefix = size_t(std::max(max_tokens, 1)) * 64 + 1024;
  for (;;) {
    ids.clear();
    if (bos) ids.push_back(*tok.bos_id());
    const bool whole = prefix >= text.size();
    tok.encode_text(whole ? text : text.substr(0, prefix), ids);
    if (whole || int(ids.size()) > max_tokens) break;
    prefix *= 2;
  }
  if (int(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  return ids;
}

std::optional<int> encoder_end_token(const Tokenizer& tok) {
  if (auto s = tok.sep_id()) return s;
  return tok.eos_id();
}

void finish_encoder_row(const Tokenizer& tok, std::vector<int>& ids, int max_tokens) {
  const std::optional<int> end = encoder_end_token(tok);
  if (!end) {
    if (int(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
    return;
  }
  if (int(ids.size()) >= max_tokens) ids.resize(size_t(std::max(max_tokens - 1, 0)));
  ids.push_back(*end);
}

}  // namespace lm::dataset
