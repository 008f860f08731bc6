// Tests for lib/format/gguf: round trips through the writer, and the bad-file catalogue of
// docs/reliability.md (bad-input catalogue, A), one named test per entry.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/gguf.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::format;

namespace {

// Little-endian byte builder for hand-made files.
struct Bytes {
  std::string s;
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& u8(uint8_t v) { return raw(&v, 1); }
  Bytes& f32(float v) { return raw(&v, 4); }
  Bytes& str(std::string_view x) { return u64(x.size()).raw(x.data(), x.size()); }
  Bytes& raw(const void* p, size_t n) {
    s.append(static_cast<const char*>(p), n);
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) { return raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv); }
  Bytes& kv_u32(std::string_view k, uint32_t v) { return str(k).u32(uint32_t(GgufType::U32)).u32(v); }
  Bytes& kv_string(std::string_view k, std::string_view v) { return str(k).u32(uint32_t(GgufType::STRING)).str(v); }
  // A tensor info with 1 or 2 dims.
  Bytes& tensor(std::string_view name, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (int64_t d : ne) u64(uint64_t(d));
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t align = 32) {
    s.resize((s.size() + align - 1) / align * align, '\0');
    return *this;
  }
};

// Writes `w` through OutputFile into `dir` and returns the file's bytes.
std::string write_bytes(const GgufWriter& w, const test::TempDir& dir) {
  const std::string path = dir.path() + "/w.gguf";
  OutputFile out(path);
  w.write(out);
  out.commit();
  return load_file(path);
}

GgufValue scalar_value(GgufType t, uint64_t bits) {
  GgufValue v;
  v.type = t;
  v.bits = bits;
  return v;
}

GgufFile parse(const std::string& bytes) { return GgufFile::from_bytes(bytes, "bad.gguf"); }

void expect_bad(const std::string& bytes, const char* message) {
  CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains(message), FormatError);
}

// A valid file: two KVs, a 4x2 f32 tensor and an 8-element f32 tensor.
std::string valid_file(std::vector<float>* values = nullptr) {
  static std::vector<float> a = {1, 2, 3, 4, 5, 6, 7, 8};
  if (values) *values = a;
  Bytes b;
  b.header(2, 2).kv_string("general.architecture", "llama").kv_u32("llama.block_count", 1);
  b.tensor("a", {4, 2}, 0, 0).tensor("b", {8}, 0, 32);
  b.pad();
  b.raw(a.data(), 32).raw(a.data(), 32);
  return b.s;
}

}  // namespace

TEST_CASE("the hand-built valid file parses") {
  GgufFile f = parse(valid_file());
  CHECK(f.version() == 3);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_u32("llama.block_count") == 1);
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.find_tensor("b")->ne[0] == 8);
  float x;
  std::memcpy(&x, f.find_tensor("b")->data + 4, 4);
  CHECK(x == 2);
  CHECK(f.warnings().empty());
}

TEST_CASE("writer round trip: every value type, arrays and tensor types") {
  test::TempDir dir;
  std::vector<float> f32(64);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = float(i) * 0.5f;
  std::string q8(34 * 2, '\x11'), q4k(144 * 2, '\x22'), f16(2 * 32, '\x33');
  for (uint32_t align : {32u, 64u}) {
    GgufWriter w;
    if (align != 32) w.set_u32(kKeyAlignment, align);
    w.set_u8("t.u8", 200);
    w.set_u32("t.u32", 4000000000u);
    w.set_i32("t.i32", -5);
    w.set_u64("t.u64", uint64_t{1} << 40);
    w.set_f32("t.f32", 1.5f);
    w.set_bool("t.bool", true);
    w.set_string("t.string", "héllo");
    w.set_array_string("t.strings", {"a", "", "ccc"});
    w.set_array_f32("t.f32s", {1.0f, -2.0f});
    w.set_array_i32("t.i32s", {3, -4, 5});
    w.set_array_u8("t.bytes", std::string("\0\1\2", 3));
    w.set_string("t.string", "replaced");
    w.add_tensor("w.f32", GgmlType::F32, {16, 4}, f32.data());
    w.add_tensor("w.q8_0", GgmlType::Q8_0, {64}, q8.data());
    w.add_tensor("w.q4_k", GgmlType::Q4_K, {256, 2}, q4k.data());
    w.add_tensor("w.f16", GgmlType::F16, {32, 1}, f16.data());
    std::string path = dir.path() + "/rt.gguf";
    {
      OutputFile out(path);
      w.write(out);
      out.commit();
    }
    CHECK(load_file(path).size() == w.file_size());
    GgufFile f = GgufFile::open(path);
    CHECK(f.alignment() == align);
    CHECK(f.get_u32("t.u8") == 200);
    CHECK(f.get_u32("t.u32") == 4000000000u);
    CHECK(f.get_i32("t.i32") == -5);
    CHECK(f.get_u64("t.u64") == uint64_t{1} << 40);
    CHECK(f.get_f32("t.f32") == 1.5f);
    CHECK(f.get_bool("t.bool"));
    CHECK(f.get_string("t.string") == "replaced");
    CHECK(f.get_string_array("t.strings") == std::vector<std::string>{"a", "", "ccc"});
    CHECK(f.get_f32_array("t.f32s") == std::vector<float>{1.0f, -2.0f});
    CHECK(f.get_i32_array("t.i32s") == std::vector<int32_t>{3, -4, 5});
    CHECK(f.get_u8_array("t.bytes") == std::string_view("\0\1\2", 3));
    CHECK(f.metadata().size() == (align == 32 ? 11u : 12u));
    REQUIRE(f.tensors().size() == 4);
    for (const auto& t : f.tensors()) CHECK(t.offset % align == 0);
    CHECK(std::memcmp(f.find_tensor("w.f32")->data, f32.data(), 256) == 0);
    CHECK(f.find_tensor("w.f32")->ne[1] == 4);
    CHECK(std::string(reinterpret_cast<const char*>(f.find_tensor("w.q8_0")->data), 68) == q8);
    CHECK(f.find_tensor("w.q4_k")->n_bytes == 288);
    CHECK(f.find_tensor("w.f16")->type == GgmlType::F16);
    CHECK_FALSE(f.try_get_u32("missing").has_value());
  }
}

TEST_CASE("a file without tensors round trips") {
  GgufWriter w;
  w.set_string(kKeyArchitecture, "llama");
  test::TempDir dir;
  OutputFile out(dir.path() + "/e.gguf");
  w.write(out);
  out.commit();
  GgufFile f = GgufFile::open(dir.path() + "/e.gguf");
  CHECK(f.tensors().empty());
  CHECK(f.get_string(kKeyArchitecture) == "llama");
}

TEST_CASE("writer round trip: the remaining scalar and array types through set_value, in insertion order") {
  GgufWriter w;
  w.set_value("s.i8", scalar_value(GgufType::I8, uint8_t(-7)));
  w.set_value("s.u16", scalar_value(GgufType::U16, 65535));
  w.set_value("s.i16", scalar_value(GgufType::I16, uint16_t(-300)));
  w.set_value("s.i64", scalar_value(GgufType::I64, uint64_t(int64_t{-1} << 40)));
  double d = -0.25;
  uint64_t dbits;
  std::memcpy(&dbits, &d, 8);
  w.set_value("s.f64", scalar_value(GgufType::F64, dbits));
  GgufValue bools;
  bools.type = GgufType::ARRAY;
  bools.elem_type = GgufType::BOOL;
  bools.count = 3;
  bools.str = std::string("\1\0\1", 3);
  w.set_value("a.bool", bools);
  GgufValue u64s;
  u64s.type = GgufType::ARRAY;
  u64s.elem_type = GgufType::U64;
  u64s.count = 1;
  u64s.str = std::string("\1\2\3\4\5\6\7\x80", 8);
  w.set_value("a.u64", u64s);
  w.set_array_u8("a.empty", "");
  w.set_value("s.i8", scalar_value(GgufType::I8, 5));  // replaced in place, keeps its position
  test::TempDir dir;
  const std::string bytes = write_bytes(w, dir);
  CHECK(bytes.size() == w.file_size());
  GgufFile f = parse(bytes);
  std::vector<std::string> keys;
  for (const auto& kv : f.metadata()) keys.push_back(kv.first);
  CHECK(keys == std::vector<std::string>{"s.i8", "s.u16", "s.i16", "s.i64", "s.f64", "a.bool", "a.u64", "a.empty"});
  CHECK(f.get_i32("s.i8") == 5);
  CHECK(f.get_u32("s.u16") == 65535);
  CHECK(f.get_u64("s.u16") == 65535);
  CHECK(f.get_i32("s.i16") == -300);
  CHECK(f.find("s.i64")->type == GgufType::I64);
  CHECK(int64_t(f.find("s.i64")->bits) == int64_t{-1} << 40);
  double back;
  std::memcpy(&back, &f.find("s.f64")->bits, 8);
  CHECK(back == -0.25);
  CHECK(f.find("a.bool")->elem_type == GgufType::BOOL);
  CHECK(f.find("a.bool")->str == std::string("\1\0\1", 3));
  CHECK(f.find("a.u64")->count == 1);
  CHECK(f.find("a.u64")->str == u64s.str);
  CHECK(f.get_u8_array("a.empty").empty());
  CHECK_THROWS_WITH_AS(f.get_u32("s.i64"), doctest::Contains("value -1099511627776 does not fit u32"), FormatError);
}

TEST_CASE("zero tensors with alignment 64 round trip, and so do version 2 files") {
  GgufWriter w;
  w.set_u32(kKeyAlignment, 64);
  w.set_string(kKeyArchitecture, "llama");
  test::TempDir dir;
  const std::string bytes = write_bytes(w, dir);
  CHECK(bytes.size() == w.file_size());
  CHECK(bytes.size() % 64 == 0);
  GgufFile f = parse(bytes);
  CHECK(f.alignment() == 64);
  CHECK(f.tensors().empty());
  CHECK(f.warnings().empty());
  CHECK(f.data_offset() == bytes.size());
  Bytes v2;
  v2.header(0, 1, 2).kv_string("general.architecture", "gpt2");
  CHECK(parse(v2.s).version() == 2);
  CHECK(parse(v2.s).get_string(kKeyArchitecture) == "gpt2");
}

// A vocabulary of zero tokens has empty arrays: reading them copied from a null pointer
// (undefined behaviour that UBSan reports), both in the hand-made file and through the writer.
TEST_CASE("empty f32, i32, string and u8 arrays read back as empty") {
  Bytes b;
  b.header(0, 3);
  b.str("a.f32").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::F32)).u64(0);
  b.str("a.i32").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::I32)).u64(0);
  b.str("a.str").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(0);
  GgufFile f = parse(b.s);
  CHECK(f.get_f32_array("a.f32").empty());
  CHECK(f.get_i32_array("a.i32").empty());
  CHECK(f.get_string_array("a.str").empty());
  CHECK(f.try_get_f32_array("a.f32")->empty());
  CHECK(f.try_get_i32_array("a.i32")->empty());

  GgufWriter w;
  w.set_array_f32("w.f32", {});
  w.set_array_i32("w.i32", {});
  w.set_array_string("w.str", {});
  w.set_array_u8("w.u8", std::string_view());
  test::TempDir dir;
  GgufFile g = parse(write_bytes(w, dir));
  CHECK(g.get_f32_array("w.f32").empty());
  CHECK(g.get_i32_array("w.i32").empty());
  CHECK(g.get_string_array("w.str").empty());
  CHECK(g.get_u8_array("w.u8").empty());
}

TEST_CASE("try_ getters return nothing for a missing key and still throw for a wrong type") {
  GgufFile f = parse(valid_file());
  CHECK_FALSE(f.try_get_u64("x").has_value());
  CHECK_FALSE(f.try_get_i32("x").has_value());
  CHECK_FALSE(f.try_get_f32("x").has_value());
  CHECK_FALSE(f.try_get_bool("x").has_value());
  CHECK_FALSE(f.try_get_string("x").has_value());
  CHECK(f.try_get_string_array("x") == nullptr);
  CHECK_FALSE(f.try_get_f32_array("x").has_value());
  CHECK_FALSE(f.try_get_i32_array("x").has_value());
  CHECK_FALSE(f.try_get_u8_array("x").has_value());
  CHECK(f.try_get_u64("llama.block_count") == 1u);
  CHECK(f.try_get_string("general.architecture") == "llama");
  CHECK_THROWS_AS(f.try_get_string_array("general.architecture"), FormatError);
  CHECK_THROWS_AS(f.try_get_i32_array("llama.block_count"), FormatError);
}

TEST_CASE("writer rejects keys and values the reader would refuse") {
  GgufWriter w;
  CHECK_THROWS_AS(w.set_u32("", 1), UsageError);
  CHECK_THROWS_AS(w.set_u32(std::string("a\0b", 3), 1), UsageError);
  CHECK_THROWS_AS(w.set_u32("k\xc3\xa9", 1), UsageError);
  CHECK_THROWS_AS(w.set_u32(kKeyAlignment, 0), UsageError);
  CHECK_THROWS_AS(w.set_u32(kKeyAlignment, 48), UsageError);
  CHECK_THROWS_AS(w.set_u32(kKeyAlignment, 1u << 21), UsageError);
  CHECK_THROWS_AS(w.set_i32(kKeyAlignment, 32), UsageError);
  CHECK_THROWS_AS(w.set_value("b", scalar_value(GgufType::BOOL, 2)), UsageError);
  GgufValue nested;
  nested.type = GgufType::ARRAY;
  nested.elem_type = GgufType::ARRAY;
  CHECK_THROWS_AS(w.set_value("n", nested), UsageError);
  GgufValue short_array;
  short_array.type = GgufType::ARRAY;
  short_array.elem_type = GgufType::U32;
  short_array.count = 2;
  short_array.str = "1234";
  CHECK_THROWS_AS(w.set_value("s", short_array), UsageError);
  CHECK(w.file_size() == 32);  // nothing was added: the 24-byte header padded to 32
}

TEST_CASE("writer rejects bad tensors") {
  GgufWriter w;
  float x[64] = {};
  CHECK_THROWS_AS(w.add_tensor("q", GgmlType::Q4_0, {33}, x), UsageError);
  CHECK_THROWS_AS(w.add_tensor(std::string(64, 'n'), GgmlType::F32, {1}, x), UsageError);
  CHECK_THROWS_AS(w.add_tensor("", GgmlType::F32, {1}, x), UsageError);
  CHECK_THROWS_AS(w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, x), UsageError);
  CHECK_THROWS_AS(w.add_tensor("neg", GgmlType::F32, {-1}, x), UsageError);
  CHECK_THROWS_AS(w.add_tensor("bad_type", GgmlType(4), {1}, x), UsageError);
  CHECK_THROWS_AS(w.add_tensor("null", GgmlType::F32, {1}, nullptr), UsageError);
  w.add_tensor("a", GgmlType::F32, {1}, x);
  CHECK_THROWS_AS(w.add_tensor("a", GgmlType::F32, {1}, x), UsageError);
}

TEST_CASE("deferred tensors get their bytes from write()'s fill, in order; header() can be rewritten in place") {
  test::TempDir dir;
  GgufWriter w;
  const float a[3] = {1, 2, 3};
  w.set_u32("n", 1);
  w.add_tensor_deferred("d0", GgmlType::F32, {5});
  w.add_tensor("a", GgmlType::F32, {3}, a);
  w.add_tensor_deferred("d1", GgmlType::Q8_0, {32, 2});
  CHECK(w.n_tensors() == 3);
  CHECK(w.tensor_bytes(2) == 68);
  const std::string path = dir.path() + "/d.gguf";
  std::vector<size_t> calls;
  {
    OutputFile out(path);
    w.write(out, [&](size_t i, uint8_t* dst) {
      calls.push_back(i);
      std::memset(dst, int(0x10 + i), size_t(w.tensor_bytes(i)));
    });
    CHECK(out.bytes_written() == w.file_size());
    w.set_u32("n", 7);  // same size: the header is rewritten over the first one
    const std::string h = w.header();
    out.write_at(0, h.data(), h.size());
    out.commit();
  }
  CHECK(calls == std::vector<size_t>{0, 2});
  const GgufFile g = GgufFile::open(path);
  CHECK(g.get_u32("n") == 7);
  REQUIRE(g.tensors().size() == 3);
  CHECK(g.tensors()[0].data[19] == 0x10);
  CHECK(std::memcmp(g.tensors()[1].data, a, sizeof a) == 0);
  CHECK(g.tensors()[2].data[67] == 0x12);
  CHECK(g.tensors()[2].type == GgmlType::Q8_0);
  CHECK_THROWS_AS(w.add_tensor_deferred("q", GgmlType::Q4_0, {33}), UsageError);
}

TEST_CASE("ggml type table: sizes and removed types") {
  CHECK(ggml_type_info(GgmlType::Q8_0).block_bytes == 34);
  CHECK(ggml_type_info(GgmlType::Q6_K).block_bytes == 210);
  CHECK(ggml_type_info(4) == nullptr);
  CHECK(ggml_type_info(31) == nullptr);
  CHECK(ggml_type_info(255) == nullptr);
  CHECK(ggml_type_info(uint32_t(-1)) == nullptr);
  uint64_t n;
  int64_t ne[2] = {4096, 4096};
  REQUIRE(ggml_tensor_bytes(GgmlType::Q4_0, ne, 2, &n));
  CHECK(n == 4096u / 32 * 18 * 4096);
  struct Row { GgmlType t; uint32_t block, bytes; const char* name; };
  const Row rows[] = {
      {GgmlType::F32, 1, 4, "f32"},       {GgmlType::F16, 1, 2, "f16"},         {GgmlType::BF16, 1, 2, "bf16"},
      {GgmlType::F64, 1, 8, "f64"},       {GgmlType::I8, 1, 1, "i8"},           {GgmlType::I16, 1, 2, "i16"},
      {GgmlType::I32, 1, 4, "i32"},       {GgmlType::I64, 1, 8, "i64"},         {GgmlType::Q4_0, 32, 18, "q4_0"},
      {GgmlType::Q4_1, 32, 20, "q4_1"},   {GgmlType::Q5_0, 32, 22, "q5_0"},     {GgmlType::Q5_1, 32, 24, "q5_1"},
      {GgmlType::Q8_0, 32, 34, "q8_0"},   {GgmlType::Q8_1, 32, 36, "q8_1"},     {GgmlType::Q2_K, 256, 84, "q2_K"},
      {GgmlType::Q3_K, 256, 110, "q3_K"}, {GgmlType::Q4_K, 256, 144, "q4_K"},   {GgmlType::Q5_K, 256, 176, "q5_K"},
      {GgmlType::Q6_K, 256, 210, "q6_K"}, {GgmlType::Q8_K, 256, 292, "q8_K"},   {GgmlType::IQ2_XXS, 256, 66, "iq2_xxs"},
      {GgmlType::IQ2_XS, 256, 74, "iq2_xs"}, {GgmlType::IQ3_XXS, 256, 98, "iq3_xxs"}, {GgmlType::IQ1_S, 256, 50, "iq1_s"},
      {GgmlType::IQ4_NL, 32, 18, "iq4_nl"}, {GgmlType::IQ3_S, 256, 110, "iq3_s"}, {GgmlType::IQ2_S, 256, 82, "iq2_s"},
      {GgmlType::IQ4_XS, 256, 136, "iq4_xs"}, {GgmlType::IQ1_M, 256, 56, "iq1_m"}, {GgmlType::TQ1_0, 256, 54, "tq1_0"},
      {GgmlType::TQ2_0, 256, 66, "tq2_0"}, {GgmlType::MXFP4, 32, 17, "mxfp4"},
  };
  size_t valid = 0;
  for (uint32_t raw = 0; raw < 64; ++raw) valid += ggml_type_info(raw) != nullptr;
  CHECK(valid == sizeof rows / sizeof *rows);
  for (const Row& r : rows) {
    CAPTURE(r.name);
    REQUIRE(ggml_type_info(uint32_t(r.t)) != nullptr);
    CHECK(ggml_type_info(r.t).block == r.block);
    CHECK(ggml_type_info(r.t).block_bytes == r.bytes);
    CHECK(std::string(ggml_type_info(r.t).name) == r.name);
  }
}

TEST_CASE("A1 empty file") { expect_bad("", "file is empty, expected GGUF magic"); }

TEST_CASE("A2 three bytes GGU") { expect_bad("GGU", "truncated header: need 24 bytes, file has 3"); }

TEST_CASE("A3 other magics are named") {
  expect_bad("FUGG" + std::string(30, '\0'), "not a GGUF file (magic 'FUGG'");
  Bytes st;
  st.u64(20).raw("{\"a\":{}}", 8);
  expect_bad(st.s, "safetensors");
  expect_bad(std::string("PK\x03\x04", 4) + std::string(40, 'x'), "zip archive");
  expect_bad("\x80\x02}q" + std::string(30, 'x'), "pickle");
}

TEST_CASE("A4 Git LFS pointer") {
  expect_bad("version https://git-lfs.github.com/spec/v1\noid sha256:1234\nsize 99\n", "Git LFS pointer");
}

TEST_CASE("A5 unsupported and byte-swapped versions") {
  for (uint32_t v : {0u, 1u, 4u}) {
    Bytes b;
    b.header(0, 0, v);
    expect_bad(b.s, ("unsupported GGUF version " + std::to_string(v)).c_str());
  }
  Bytes b;
  b.header(0, 0, 0x03000000);
  expect_bad(b.s, "looks big-endian");
  Bytes v2;  // version 2 has the same layout and is accepted
  v2.header(0, 0, 2);
  CHECK(parse(v2.s).version() == 2);
}

TEST_CASE("A6 huge tensor counts") {
  for (uint64_t n : {~uint64_t{0}, uint64_t{1} << 63}) {
    Bytes b;
    b.header(n, 0);
    expect_bad(b.s, "tensor count");
  }
  Bytes c;  // each count fits on its own, their sum does not
  c.header(1, 2).kv_u32("a", 1).kv_u32("b", 2).raw("xxxxxxxxxxxxxxx", 15);
  expect_bad(c.s, "together exceed what the file can hold");
}

TEST_CASE("A7 huge metadata count") {
  Bytes b;
  b.header(0, uint64_t{1} << 62);
  expect_bad(b.s, "metadata count");
}

TEST_CASE("A8 key length beyond the file") {
  Bytes b;
  b.header(0, 1).u64(~uint64_t{0}).raw("abcdefghijklmnop", 16);
  expect_bad(b.s, "key length 18446744073709551615 exceeds the remaining");
  Bytes s;  // a string value over the 1 GiB cap is named as such (no allocation is attempted)
  s.header(0, 1).str("k").u32(uint32_t(GgufType::STRING)).u64((uint64_t{1} << 30) + 1).raw("abc", 3);
  expect_bad(s.s, "exceeds the remaining");
}

TEST_CASE("A9 empty and non-ASCII keys") {
  Bytes b;
  b.header(0, 1).kv_u32("", 1);
  expect_bad(b.s, "key #0 is empty");
  Bytes c;
  c.header(0, 1).kv_u32(std::string("a\0b", 3), 1);
  expect_bad(c.s, "not printable ASCII");
  Bytes d;
  d.header(0, 1).kv_u32("k\xc3\xa9y", 1);
  expect_bad(d.s, "not printable ASCII");
}

TEST_CASE("A10 duplicate key") {
  Bytes b;
  b.header(0, 2).kv_string("general.architecture", "llama").kv_string("general.architecture", "gpt2");
  expect_bad(b.s, "duplicate key 'general.architecture'");
}

TEST_CASE("A11 unknown value types") {
  for (uint32_t t : {13u, ~0u, 0x80000000u}) {
    Bytes b;
    b.header(0, 1).str("k").u32(t).u64(0);
    expect_bad(b.s, "key 'k' has unknown type");
  }
}

TEST_CASE("A12 nested arrays and oversized arrays") {
  Bytes b;
  b.header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::ARRAY)).u64(1);
  expect_bad(b.s, "arrays of arrays are not supported");
  Bytes c;
  c.header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::U32)).u64(uint64_t{1} << 63);
  expect_bad(c.s, "exceeds the remaining");
  Bytes d;
  d.header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::U64)).u64(100).u64(1);
  expect_bad(d.s, "array of 100 elements exceeds the remaining");
  Bytes e;
  e.header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(3).str("a").u64(1000);
  expect_bad(e.s, "exceeds the remaining");
  // 2^22 empty strings: 32 MiB of file, but 128 MiB as std::string objects (> 32 MiB + 64 MiB).
  // Built lazily: only the count and the first bytes matter, the reader fails before reading on.
  Bytes f;
  f.header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(uint64_t{1} << 22);
  f.s.resize(f.s.size() + (size_t{8} << 22), '\0');
  expect_bad(f.s, "strings needs 134217728 bytes of memory");
}

TEST_CASE("A13 bool value that is not 0 or 1") {
  Bytes b;
  b.header(0, 1).str("flag").u32(uint32_t(GgufType::BOOL)).u8(2);
  expect_bad(b.s, "key 'flag': bool value 2 is not 0 or 1");
}

TEST_CASE("A14 bad alignment values and types") {
  Bytes a;
  a.header(0, 1).str("general.alignment").u32(uint32_t(GgufType::I32)).u32(32);
  expect_bad(a.s, "key 'general.alignment' has type i32, expected u32");
  for (uint32_t v : {0u, 13u, 0x80000000u}) {
    Bytes b;
    b.header(0, 1).kv_u32("general.alignment", v);
    expect_bad(b.s, "expected a u32 power of two from 1 to 1048576");
  }
}

TEST_CASE("A15 array with the wrong element type") {
  Bytes b;
  b.header(0, 1).str("tokenizer.ggml.scores").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::U8)).u64(2).u8(1).u8(2);
  GgufFile f = parse(b.s);
  CHECK_THROWS_WITH_AS(f.get_f32_array("tokenizer.ggml.scores"),
                       doctest::Contains("has type array of u8, expected array of f32"), FormatError);
}

TEST_CASE("A16 malformed byte-token text is the tokenizer's to reject; the reader keeps it verbatim") {
  Bytes b;
  b.header(0, 1).str("tokenizer.ggml.tokens").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(2);
  b.str("<0x-1>").str("<0xZZ>");
  CHECK(parse(b.s).get_string_array("tokenizer.ggml.tokens")[1] == "<0xZZ>");
}

TEST_CASE("A17 long and duplicate tensor names") {
  Bytes a;
  a.header(1, 0).tensor(std::string(64, 't'), {4}, 0, 0).pad().raw("0123456789abcdef", 16);
  expect_bad(a.s, "is 64 bytes, expected at most 63");
  Bytes b;
  b.header(2, 0).tensor("x", {8}, 0, 0).tensor("x", {8}, 0, 32).pad();
  b.s.append(64, '\0');
  expect_bad(b.s, "duplicate tensor name 'x'");
  Bytes e;
  e.header(1, 0).tensor("", {8}, 0, 0).pad();
  e.s.append(32, '\0');
  expect_bad(e.s, "tensor #0 has an empty name");
}

TEST_CASE("A18 too many dimensions") {
  for (uint32_t nd : {5u, ~0u, 0u}) {
    Bytes b;
    b.header(1, 0).str("t").u32(nd).u64(1).u64(1).u64(1).u64(1).u64(1).u32(0).u64(0);
    expect_bad(b.s, "dimensions, expected 1 to 4");
  }
}

TEST_CASE("A19 negative and zero dimensions") {
  Bytes b;
  b.header(1, 0).tensor("t", {-1}, 0, 0).pad();
  expect_bad(b.s, "has dimension -1");
  Bytes z;  // a zero-element tensor is accepted as empty
  z.header(1, 0).tensor("t", {4, 0}, 0, 0).pad();
  GgufFile f = parse(z.s);
  CHECK(f.tensors()[0].n_bytes == 0);
}

TEST_CASE("A20 sizes that overflow") {
  Bytes a;
  a.header(1, 0).tensor("t", {int64_t{1} << 42 | 1, int64_t{1} << 42 | 1}, 0, 0).pad();
  expect_bad(a.s, "byte size overflows");
  Bytes b;
  b.header(1, 0).tensor("t", {4LL * INT32_MAX, 4LL * INT32_MAX, 4LL * INT32_MAX, 4LL * INT32_MAX}, 0, 0).pad();
  expect_bad(b.s, "byte size overflows");
  Bytes c;
  c.header(1, 0).tensor("t", {int64_t(~uint64_t{0} >> 1) / 32 * 32, 16}, 2, 0).pad();
  expect_bad(c.s, "byte size overflows");
  Bytes d;  // ne[0] near 2^63: the padding arithmetic must not wrap either
  d.header(1, 0).tensor("t", {(int64_t{1} << 62) - 2}, 8, 0).pad();
  CHECK_THROWS_AS(parse(d.s), FormatError);
  Bytes e;  // q4_0 bytes (2^57 * 18 * 4) fit in 64 bits, the element count 2^64 does not
  e.header(1, 0).tensor("t", {int64_t{1} << 62, 4}, uint32_t(GgmlType::Q4_0), 0).pad();
  expect_bad(e.s, "tensor 't': byte size overflows");
  Bytes f;  // f64 with ne[0] near 2^63: ne[0] * 8 itself wraps
  f.header(1, 0).tensor("t", {int64_t{1} << 61}, uint32_t(GgmlType::F64), 0).pad();
  expect_bad(f.s, "tensor 't': byte size overflows");
}

TEST_CASE("A21 unsupported tensor types") {
  for (uint32_t t : {4u, 255u, ~0u}) {
    Bytes b;
    b.header(1, 0).tensor("t", {32}, t, 0).pad();
    expect_bad(b.s, "has unsupported type");
  }
}

TEST_CASE("A22 first dimension not a multiple of the block size") {
  Bytes b;
  b.header(1, 0).tensor("t", {33}, uint32_t(GgmlType::Q4_0), 0).pad();
  expect_bad(b.s, "first dimension 33 is not a multiple of the q4_0 block size 32");
}

TEST_CASE("A23 misaligned, out-of-order, overlapping and gapped offsets") {
  for (uint64_t second : {uint64_t{8}, uint64_t{0}, uint64_t{64}, ~uint64_t{0}}) {
    Bytes b;
    b.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, second).pad();
    b.s.append(128, '\0');
    expect_bad(b.s, ("tensor 'b': offset " + std::to_string(second) + ", expected 32").c_str());
  }
  Bytes a;  // the first tensor must start at 0
  a.header(1, 0).tensor("a", {8}, 0, 32).pad();
  a.s.append(64, '\0');
  expect_bad(a.s, "tensor 'a': offset 32, expected 0");
}

TEST_CASE("A24 data one byte short") {
  std::string f = valid_file();
  expect_bad(f.substr(0, f.size() - 1), "tensor 'b' extends past the end of the file");
}

TEST_CASE("A25 tensor region smaller than its type needs") {
  Bytes b;
  b.header(1, 0).tensor("q", {256, 4}, uint32_t(GgmlType::Q4_K), 0).pad();
  b.s.append(144 * 3, '\0');  // needs 4 rows of 144 bytes
  expect_bad(b.s, "extends past the end of the file");
}

TEST_CASE("A26 trailing bytes are accepted with a warning") {
  GgufFile f = parse(valid_file() + std::string(1 << 20, 'z'));
  REQUIRE(f.warnings().size() == 1);
  CHECK(f.warnings()[0].find("1048576 bytes after the tensor data") != std::string::npos);
  Bytes z;  // without tensors too
  z.header(0, 1).kv_u32("a", 1).pad().raw("junk", 4);
  GgufFile g = parse(z.s);
  REQUIRE(g.warnings().size() == 1);
  CHECK(g.warnings()[0].find("4 bytes after") != std::string::npos);
}

TEST_CASE("A27 missing keys are named by the typed getters") {
  GgufFile f = parse(valid_file());
  CHECK_THROWS_WITH_AS(f.get_u32("llama.embedding_length"), doctest::Contains("missing key 'llama.embedding_length'"),
                       FormatError);
  CHECK_THROWS_WITH_AS(f.get_string("tokenizer.ggml.model"), doctest::Contains("missing key"), FormatError);
}

TEST_CASE("A28 wrong types and out-of-range values are named by the typed getters") {
  GgufFile f = parse(valid_file());
  CHECK_THROWS_WITH_AS(f.get_u32("general.architecture"),
                       doctest::Contains("key 'general.architecture' has type string, expected u32"), FormatError);
  CHECK_THROWS_WITH_AS(f.get_string("llama.block_count"), doctest::Contains("has type u32, expected string"),
                       FormatError);
  Bytes b;
  b.header(0, 1).str("n").u32(uint32_t(GgufType::I32)).u32(uint32_t(-3));
  CHECK_THROWS_WITH_AS(parse(b.s).get_u32("n"), doctest::Contains("does not fit u32"), FormatError);
}

TEST_CASE("A29 NaN and Inf in weights are found by check_finite") {
  std::vector<float> values;
  std::string f = valid_file(&values);
  GgufFile ok = parse(f);
  for (const auto& t : ok.tensors()) check_finite(ok, t);
  size_t at = f.size() - 32 + 4 * 5;  // element 5 of tensor 'b'
  float nan = std::nanf("");
  std::memcpy(&f[at], &nan, 4);
  GgufFile bad = parse(f);
  CHECK_THROWS_WITH_AS(check_finite(bad, *bad.find_tensor("b")), doctest::Contains("tensor 'b' contains NaN at element 5"),
                       FormatError);
  float inf = INFINITY;
  std::memcpy(&f[at], &inf, 4);
  GgufFile bad2 = parse(f);
  CHECK_THROWS_WITH_AS(check_finite(bad2, *bad2.find_tensor("b")), doctest::Contains("tensor 'b' contains Inf at element 5"),
                       FormatError);
}

TEST_CASE("A29 check_finite scans f16 and bf16 too, and skips quantized types") {
  // f16: 0x3c00 = 1.0, 0x7c00 = +Inf, 0x7e00 = NaN. bf16: 0x3f80 = 1.0, 0xff80 = -Inf, 0x7fc1 = NaN.
  auto file_with = [](GgmlType type, std::vector<uint16_t> halves) {
    Bytes b;
    b.header(1, 0).tensor("h", {int64_t(halves.size())}, uint32_t(type), 0).pad();
    b.raw(halves.data(), halves.size() * 2).pad();
    return b.s;
  };
  GgufFile ok = parse(file_with(GgmlType::F16, {0x3c00, 0x3c00}));
  check_finite(ok, ok.tensors()[0]);
  GgufFile inf16 = parse(file_with(GgmlType::F16, {0x3c00, 0x7c00}));
  CHECK_THROWS_WITH_AS(check_finite(inf16, inf16.tensors()[0]), doctest::Contains("contains Inf at element 1"), FormatError);
  GgufFile nan16 = parse(file_with(GgmlType::F16, {0x7e00, 0x3c00}));
  CHECK_THROWS_WITH_AS(check_finite(nan16, nan16.tensors()[0]), doctest::Contains("contains NaN at element 0"), FormatError);
  GgufFile inf_bf = parse(file_with(GgmlType::BF16, {0x3f80, 0x3f80, 0xff80}));
  CHECK_THROWS_WITH_AS(check_finite(inf_bf, inf_bf.tensors()[0]), doctest::Contains("contains Inf at element 2"), FormatError);
  GgufFile nan_bf = parse(file_with(GgmlType::BF16, {0x7fc1}));
  try {
    check_finite(nan_bf, nan_bf.tensors()[0]);
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("contains NaN at element 0") != std::string::npos);
    CHECK(e.offset() == int64_t(nan_bf.data_offset()));
  }
  Bytes q;  // all-ones q8_0 bytes are not floats: not scanned
  q.header(1, 0).tensor("q", {32}, uint32_t(GgmlType::Q8_0), 0).pad();
  q.s.append(34, '\xff');
  GgufFile qf = parse(q.s);
  check_finite(qf, qf.tensors()[0]);
}

TEST_CASE("errors carry the byte offset of the problem") {
  Bytes b;
  b.header(0, 1).str("flag").u32(uint32_t(GgufType::BOOL)).u8(7);
  try {
    parse(b.s);
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(e.offset() == 24 + 8 + 4 + 4);
    CHECK(std::string(e.what()).rfind("bad.gguf: ", 0) == 0);
  }
  Bytes t;  // a layout error points at the tensor's offset field
  t.header(1, 0).tensor("a", {8}, 0, 64).pad();
  t.s.append(128, '\0');
  try {
    parse(t.s);
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(e.offset() == 24 + 8 + 1 + 4 + 8 + 4);
  }
  Bytes a;  // a bad alignment points at the key's type field
  a.header(0, 1).str("general.alignment").u32(uint32_t(GgufType::I32)).u32(32);
  try {
    parse(a.s);
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(e.offset() == 24 + 8 + 17);
  }
}

TEST_CASE("every single-byte corruption and every truncation of a valid file parses or throws FormatError") {
  GgufWriter w;
  w.set_string(kKeyArchitecture, "llama");
  w.set_array_string(kKeyTokens, {"a", "bc"});
  w.set_array_f32(kKeyScores, {0.5f, -1.0f});
  w.set_bool(kKeyAddSpacePrefix, true);
  std::vector<float> f32(8, 1.0f);
  std::string q8(34, '\x01');
  w.add_tensor("w", GgmlType::F32, {4, 2}, f32.data());
  w.add_tensor("q", GgmlType::Q8_0, {32}, q8.data());
  test::TempDir dir;
  const std::string good = write_bytes(w, dir);
  size_t parsed = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    try {
      GgufFile f = parse(bytes);
      for (const auto& t : f.tensors()) {
        try {  // reads every float: ASan builds catch a tensor that extends past the bytes
          check_finite(f, t);
        } catch (const FormatError&) {
        }
      }
      ++parsed;
    } catch (const FormatError&) {
      ++rejected;
    }
  };
  for (size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n));
  for (size_t i = 0; i < good.size(); ++i)
    for (uint8_t v : {uint8_t(0), uint8_t(0xff), uint8_t(0x80), uint8_t(good[i] + 1)}) {
      std::string bad = good;
      bad[i] = char(v);
      attempt(bad);
    }
  CHECK(rejected > 0);
  CHECK(parsed > 0);
}
