// Labelled lines (lib/dataset/labeled.*, lib/train/finetune.cpp): "label<TAB>text" and fastText
// "__label__NAME text" lines, split as lm-eval classify does, and loaded as lm-finetune
// --task classify does, with the file's own labels and with a fixed label set.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataset/labeled.hpp"
#include "fuzz_util.hpp"
#include "train/finetune.hpp"

using namespace lm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer tok = fuzz::seed_tokenizer();
  static const std::vector<std::string> fixed = {"neg", "pos"};
  static fuzz::MemFile file;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (size_t start = 0; start <= text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    const std::string_view label = dataset::line_label(line), rest = dataset::line_text(line);
    (void)dataset::has_label_field(line);
    // Both are views into the line.
    if (!label.empty() && (label.data() < line.data() || label.data() + label.size() > line.data() + line.size()))
      std::abort();
    if (!rest.empty() && (rest.data() < line.data() || rest.data() + rest.size() > line.data() + line.size()))
      std::abort();
    start = end + 1;
  }
  const std::string& path = file.set(data, size);
  fuzz::check([&] {
    train::LabeledData d = train::load_labeled(path, tok, true, 16, nullptr, 1);
    for (const train::LabeledExample& e : d.examples)
      if (e.label < 0 || size_t(e.label) >= d.labels.size() || e.tokens.empty() || e.tokens.size() > 16) std::abort();
  });
  fuzz::check([&] { (void)train::load_labeled(path, tok, false, 4, &fixed, 1); });
  return 0;
}
