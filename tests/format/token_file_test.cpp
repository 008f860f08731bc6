// Tests for lib/format/token_file: round trips through files and pipes, and one named test
// per bad file (docs/reliability.md, bad-input catalogue, D).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/token_file.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::format;

namespace {

std::string write_tokens(const std::string& path, uint32_t vocab, const std::vector<int>& ids, uint64_t fp = 77) {
  OutputFile out(path);
  TokenFileWriter w(out, vocab, fp);
  w.write(ids.data(), ids.size() / 2);
  w.write(ids.data() + ids.size() / 2, ids.size() - ids.size() / 2);
  w.finish();
  out.commit();
  return load_file(path);
}

std::string good_file(uint32_t vocab = 1000) {
  test::TempDir dir;
  return write_tokens(dir.path() + "/g.tok", vocab, {1, 2, 3, 999});
}

void expect_bad(const std::string& bytes, const char* message) {
  test::TempDir dir;
  std::string path = dir.path() + "/bad.tok";
  test::write_file(path, bytes);
  CHECK_THROWS_WITH_AS(TokenFile{path}, doctest::Contains(message), FormatError);
  CHECK_THROWS_WITH_AS(TokenFile{path}, doctest::Contains(path.c_str()), FormatError);
}

void put32(std::string& s, size_t at, uint32_t v) { std::memcpy(&s[at], &v, 4); }
void put64(std::string& s, size_t at, uint64_t v) { std::memcpy(&s[at], &v, 8); }

}  // namespace

TEST_CASE("u16 and u32 token files round trip") {
  test::TempDir dir;
  for (uint32_t vocab : {1000u, 65536u, 65537u, 200000u}) {
    std::vector<int> ids;
    for (int i = 0; i < 5000; ++i) ids.push_back(int((uint64_t(i) * 7919) % vocab));
    std::string path = dir.path() + "/t.tok";
    std::string bytes = write_tokens(path, vocab, ids, 0x1234);
    TokenFile f(path);
    CHECK(f.info().token_bytes == (vocab <= 65536 ? 2u : 4u));
    CHECK(bytes.size() == 64 + ids.size() * f.info().token_bytes);
    CHECK(f.size() == ids.size());
    CHECK(f.info().vocab_size == vocab);
    CHECK(f.info().fingerprint == 0x1234);
    std::vector<int> back(ids.size());
    f.read(0, back.size(), back.data());
    CHECK(back == ids);
    CHECK(f.token(4999) == uint32_t(ids[4999]));
    f.check_range(vocab);
    f.check_fingerprint(0x1234, "tok.model");
  }
}

TEST_CASE("an empty stream is a valid token file of 0 tokens") {
  test::TempDir dir;
  std::string bytes = write_tokens(dir.path() + "/e.tok", 10, {});
  CHECK(bytes.size() == 64);
  TokenFile f(dir.path() + "/e.tok");
  CHECK(f.size() == 0);
  f.check_range(10);
}

TEST_CASE("a pipe gets the same bytes as a seekable file") {
  test::TempDir dir;
  std::vector<int> ids(100000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int(i % 300);
  std::string expected = write_tokens(dir.path() + "/f.tok", 300, ids);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::string got;
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, size_t(n));
  });
  int saved = dup(1);
  dup2(fds[1], 1);
  close(fds[1]);
  {
    OutputFile out("-");
    CHECK_FALSE(out.seekable());
    TokenFileWriter w(out, 300, 77);
    w.write(ids);
    w.finish();
    out.commit();
  }
  dup2(saved, 1);
  close(saved);
  reader.join();
  close(fds[0]);
  CHECK(got == expected);
}

TEST_CASE("D1 bad magic names what the file is") {
  expect_bad(std::string(64, 'x'), "looks like text");
  expect_bad("GGUF" + std::string(60, '\0'), "GGUF model file");
  std::string bin(64, '\0');
  bin[0] = '\x01';
  expect_bad(bin, "expected 'LMTOKENS'");
}

TEST_CASE("D1 a wrong magic is quoted with its control bytes escaped, on one line") {
  std::string f = good_file();
  f.replace(6, 2, std::string("\0\x1b", 2));  // "LMTOKE", NUL, ESC
  test::TempDir dir;
  const std::string path = dir.path() + "/bad.tok";
  test::write_file(path, f);
  CHECK_THROWS_WITH_AS(TokenFile{path},
                       (path + ": not a token file: magic 'LMTOKE\\x00\\x1b', expected 'LMTOKENS'; make one with "
                               "'lm-tokenize encode --format bin' (at byte 0)").c_str(),
                       FormatError);
  expect_bad("LMX", "not a token file: magic 'LMX', expected 'LMTOKENS'");  // shorter than the magic
}

TEST_CASE("D1 unsupported version") {
  std::string f = good_file();
  put32(f, 8, 2);
  expect_bad(f, "unsupported token file version 2");
}

TEST_CASE("D1 empty file and truncated header") {
  expect_bad("", "file is empty");
  expect_bad("LMTOKENS\x01", "truncated header: need 64 bytes, file has 9");
}

TEST_CASE("D2 incomplete writer marker") {
  std::string f = good_file();
  put64(f, 16, ~uint64_t{0});
  expect_bad(f, "incomplete");
}

TEST_CASE("D2 zero vocabulary and vocabulary too large for u16") {
  std::string f = good_file();
  put32(f, 24, 0);
  expect_bad(f, "vocabulary size 0");
  f = good_file();
  put32(f, 24, 70000);
  expect_bad(f, "does not fit 2-byte tokens");
}

TEST_CASE("D3 truncated and trailing bytes") {
  std::string f = good_file();
  expect_bad(f.substr(0, f.size() - 1), "truncated: header says 4 tokens, expected 72 bytes, file has 71");
  expect_bad(f + "x", "trailing bytes");
  std::string huge = good_file();
  put64(huge, 16, uint64_t{1} << 63);
  expect_bad(huge, "overflows");
}

TEST_CASE("D4 token beyond the vocabulary") {
  test::TempDir dir;
  write_tokens(dir.path() + "/v.tok", 1000, {1, 2, 999, 5});
  TokenFile f(dir.path() + "/v.tok");
  CHECK_THROWS_WITH_AS(f.check_range(500), doctest::Contains("token 999 at index 2 >= vocabulary size 500"), FormatError);
}

TEST_CASE("bad width, flags and reserved bytes") {
  std::string f = good_file();
  put32(f, 12, 3);
  expect_bad(f, "token width 3 bytes, expected 2 or 4");
  f = good_file();
  put32(f, 28, 1);
  expect_bad(f, "flags 1, expected 0");
  f = good_file();
  f[50] = 1;
  expect_bad(f, "reserved header bytes");
}

TEST_CASE("fingerprint mismatch names both fingerprints") {
  test::TempDir dir;
  write_tokens(dir.path() + "/fp.tok", 10, {1}, 0xabc);
  TokenFile f(dir.path() + "/fp.tok");
  CHECK_THROWS_WITH_AS(f.check_fingerprint(0xdef, "other.model"),
                       doctest::Contains("0000000000000abc, but other.model has 0000000000000def"), FormatError);
}

TEST_CASE("writer rejects a zero vocabulary") {
  test::TempDir dir;
  OutputFile out(dir.path() + "/z.tok");
  CHECK_THROWS_AS(TokenFileWriter(out, 0, 1), UsageError);
}
