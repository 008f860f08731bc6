// Labeled lines and a classifier's input: what lm-finetune --task classify trains on and what
// lm-eval classify/predict read, so both sit below eval/ and train/ (docs/architecture.md).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace lm::dataset {

// fastText's label prefix.
inline constexpr std::string_view kLabelPrefix = "__label__";

// The label of one line of a labeled file: "__label__NAME rest" (fastText), "NAME<TAB>rest",
// or a bare "NAME" (a trailing '\r' and surrounding spaces removed). Empty when the line has
// none. Only the first fastText label counts; the rest of the line is the text.
std::string_view line_label(std::string_view line);
// The text of a labeled line: after the leading fastText labels, or after the first tab;
// surrounding spaces removed. Empty for a bare label.
std::string_view line_text(std::string_view line);
// True if the line has a label field ("__label__" prefix or a tab), as a line of text to
// classify must: without one, line_label() takes the whole line for a bare label.
bool has_label_field(std::string_view line);

// Token ids of one text for a classifier: BOS (if add_bos) and the text, cut to max_tokens.
// A long text is encoded from a prefix only, with the tokens the whole text would start with.
std::vector<int> classifier_input(const Tokenizer& tok, std::string_view text, bool add_bos, int max_tokens);

// An encoder's rows (docs/encoder.md) end with SEP, else EOS: that id, or none.
std::optional<int> encoder_end_token(const Tokenizer& tok);
// Makes ids (a classifier_input with the start token) an encoder's row of at most max_tokens:
// cut to leave room for the end token, which is then appended (when the vocabulary has one).
void finish_encoder_row(const Tokenizer& tok, std::vector<int>& ids, int max_tokens);

}  // namespace lm::dataset
