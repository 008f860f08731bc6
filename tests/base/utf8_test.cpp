// Tests for lib/base/utf8: which byte sequences are valid UTF-8.
#include <doctest/doctest.h>

#include <string>

#include "base/utf8.hpp"

TEST_CASE("valid_utf8 accepts UTF-8 and finds the first invalid byte") {
  CHECK(lm::valid_utf8(""));
  CHECK(lm::valid_utf8("plain ASCII"));
  CHECK(lm::valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // 2-, 3- and 4-byte sequences
  size_t bad = 99;
  CHECK_FALSE(lm::valid_utf8("ab\xff", &bad));
  CHECK(bad == 2);
  CHECK_FALSE(lm::valid_utf8("\x80"));                  // a stray continuation byte
  CHECK_FALSE(lm::valid_utf8("\xc3"));                  // truncated
  CHECK_FALSE(lm::valid_utf8("\xc0\xaf"));              // overlong '/'
  CHECK_FALSE(lm::valid_utf8("\xed\xa0\x80"));          // a surrogate
  CHECK_FALSE(lm::valid_utf8("\xf4\x90\x80\x80"));      // past U+10FFFF
  CHECK(lm::utf8_sequence_length("\xf4\x8f\xbf\xbf", 0) == 4);  // U+10FFFF itself
}
