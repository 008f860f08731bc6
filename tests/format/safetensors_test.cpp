// Tests for lib/format/safetensors: files written byte by byte here (8-byte length, JSON header,
// data), good ones read back with exact values, and the bad-file catalogue of
// docs/reliability.md (bad-input catalogue, B), one test per entry.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "format/safetensors.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::format;

namespace {

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(v >> (8 * i));
  return s;
}

// A safetensors file: the header padded with spaces to a multiple of 8, as Hugging Face's
// writer does, unless `pad` is false.
std::string st_file(const std::string& json, const std::string& data, bool pad = true) {
  std::string h = json;
  if (pad) h.resize((h.size() + 7) / 8 * 8, ' ');
  return u64le(h.size()) + h + data;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

SafetensorsFile parse(const std::string& bytes) { return SafetensorsFile::from_bytes(bytes, "bad.safetensors"); }

// Every message starts with the file's name.
void expect_bad(const std::string& bytes, const std::string& message) {
  CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains(("bad.safetensors: " + message).c_str()), FormatError);
}

std::vector<float> to_float(const SafetensorsTensor& t) {
  std::vector<float> out(t.elements);
  safetensors_to_float(t, out.data());
  return out;
}

// Three tensors of the three float dtypes, with metadata; the F32 values, the F16 and BF16
// bits and the floats they stand for.
const std::vector<float> kF32 = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
const std::vector<uint16_t> kF16 = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000};
const std::vector<float> kF16Values = {1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), -0.0f};
const std::vector<uint16_t> kBF16 = {0x3F80, 0xC000, 0x4049, 0x0000};
const std::vector<float> kBF16Values = {1.0f, -2.0f, 3.140625f, 0.0f};

std::string good_file() {
  const std::string json =
      R"({"__metadata__":{"format":"pt","note":"h\u00e9"},)"
      R"("w.f32":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("w.f16":{"dtype":"F16","shape":[6],"data_offsets":[24,36]},)"
      R"("w.bf16":{"data_offsets":[36,44],"shape":[2,2],"dtype":"BF16"}})";
  return st_file(json, raw(kF32) + raw(kF16) + raw(kBF16));
}

// A shard holding the given tensors, each F32 of shape [n] with values start, start + 1, ...
std::string f32_shard(const std::vector<std::pair<std::string, int>>& tensors, float start) {
  std::string json = "{", data;
  for (const auto& [name, n] : tensors) {
    std::vector<float> v(n);
    for (int i = 0; i < n; ++i) v[i] = start++;
    if (json.size() > 1) json += ',';
    json.append("\"").append(name).append("\":{\"dtype\":\"F32\",\"shape\":[").append(std::to_string(n));
    json.append("],\"data_offsets\":[").append(std::to_string(data.size())).append(",");
    json.append(std::to_string(data.size() + 4 * n)).append("]}");
    data += raw(v);
  }
  return st_file(json + "}", data);
}

}  // namespace

TEST_CASE("a good file loads with exact F32, F16 and BF16 values and its metadata") {
  const std::string bytes = good_file();
  SafetensorsFile f = parse(bytes);
  REQUIRE(f.tensors().size() == 3);
  CHECK(f.tensors()[0].name == "w.f32");  // header order
  CHECK(f.tensors()[2].name == "w.bf16");
  const SafetensorsTensor* a = f.find("w.f32");
  REQUIRE(a);
  CHECK(a->dtype == SafetensorsDtype::F32);
  CHECK(a->shape == std::vector<int64_t>{2, 3});
  CHECK(a->elements == 6);
  CHECK(a->bytes == 24);
  CHECK(a->offset == f.data_offset());
  CHECK(f.data_offset() == 8 + f.header_bytes());
  CHECK(f.header_bytes() % 8 == 0);
  CHECK(to_float(*a) == kF32);
  const SafetensorsTensor* h = f.find("w.f16");
  REQUIRE(h);
  CHECK(h->offset == f.data_offset() + 24);
  const std::vector<float> hv = to_float(*h);
  CHECK(hv == kF16Values);
  CHECK(std::signbit(hv[5]));
  const SafetensorsTensor* b = f.find("w.bf16");
  REQUIRE(b);
  CHECK(b->shape == std::vector<int64_t>{2, 2});
  CHECK(to_float(*b) == kBF16Values);
  CHECK(f.find("w") == nullptr);
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "h\xc3\xa9"}});

  // A part of a tensor, and a range past its end.
  float two[2];
  safetensors_to_float(*a, 3, 2, two);
  CHECK(two[0] == 0.0f);
  CHECK(two[1] == 1e-30f);
  CHECK_THROWS_AS(safetensors_to_float(*a, 5, 2, two), UsageError);

  // The same bytes from a file, moved around: the tensors keep pointing at the mapping.
  test::TempDir dir;
  test::write_file(dir.path() + "/m.safetensors", bytes);
  std::vector<SafetensorsFile> files;
  files.push_back(SafetensorsFile::open(dir.path() + "/m.safetensors"));
  files.push_back(parse(bytes));
  files.push_back(parse(st_file("{}", "")));  // a short file: its bytes must survive the moves too
  CHECK(files[0].path() == dir.path() + "/m.safetensors");
  CHECK(to_float(*files[0].find("w.bf16")) == kBF16Values);
  CHECK(to_float(*files[1].find("w.f16")) == kF16Values);
  CHECK(files[2].tensors().empty());
  CHECK(files[2].metadata().empty());
}

TEST_CASE("scalars, empty tensors, gaps, unpadded headers and the other dtypes") {
  const std::vector<double> f64 = {0.25, -1e300};
  const std::vector<int32_t> i32 = {-5, 7};
  const std::vector<uint8_t> e4m3 = {0x38, 0xB8, 0x7E, 0x01, 0x7F};  // 1, -1, 448, 2^-9, NaN
  const std::vector<uint8_t> e5m2 = {0x3C, 0x7C};                    // 1, inf
  const std::string json =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
      R"("d":{"dtype":"F64","shape":[2],"data_offsets":[8,24]},)"
      R"("i":{"dtype":"I32","shape":[2],"data_offsets":[24,32]},)"
      R"("q":{"dtype":"F8_E4M3","shape":[5],"data_offsets":[32,37]},)"
      R"("r":{"dtype":"F8_E5M2","shape":[2],"data_offsets":[37,39]},)"
      R"("c":{"dtype":"C64","shape":[1],"data_offsets":[40,48]},)"
      R"("p":{"dtype":"F4","shape":[2,3],"data_offsets":[48,51]}})";
  const std::string data = raw(std::vector<float>{42.0f}) + std::string(4, '\xff') + raw(f64) + raw(i32) + raw(e4m3) +
                           raw(e5m2) + std::string(1, '\0') + std::string(8, '\0') + std::string(3, '\0') + "trailing";
  SafetensorsFile f = parse(st_file(json, data, false));
  CHECK(f.header_bytes() == json.size());
  CHECK(f.find("s")->shape.empty());
  CHECK(f.find("s")->elements == 1);
  CHECK(to_float(*f.find("s")) == std::vector<float>{42.0f});
  CHECK(f.find("e")->elements == 0);
  CHECK(f.find("e")->bytes == 0);
  CHECK(to_float(*f.find("d")) == std::vector<float>{0.25f, -std::numeric_limits<float>::infinity()});
  CHECK(to_float(*f.find("i")) == std::vector<float>{-5.0f, 7.0f});
  const std::vector<float> q = to_float(*f.find("q"));
  CHECK(q[0] == 1.0f);
  CHECK(q[1] == -1.0f);
  CHECK(q[2] == 448.0f);
  CHECK(q[3] == std::ldexp(1.0f, -9));
  CHECK(std::isnan(q[4]));
  CHECK(to_float(*f.find("r")) == std::vector<float>{1.0f, std::numeric_limits<float>::infinity()});
  CHECK(f.find("p")->bytes == 3);  // 6 x 4 bits
  CHECK_FALSE(safetensors_to_float_supported(SafetensorsDtype::C64));
  std::vector<float> c(2);
  CHECK_THROWS_WITH_AS(safetensors_to_float(*f.find("c"), c.data(), "m.safetensors"),
                       "m.safetensors: tensor 'c' has dtype C64, which lm does not convert to float", FormatError);
}

TEST_CASE("the dtype table") {
  SafetensorsDtype t;
  for (const char* name : {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16", "BF16", "I32",
                           "U32", "F32", "F64", "I64", "U64", "C64", "F4", "F6_E2M3", "F6_E3M2"}) {
    REQUIRE(safetensors_dtype_from_name(name, &t));
    CHECK(std::string(safetensors_dtype_name(t)) == name);
  }
  CHECK(safetensors_dtype_bits(SafetensorsDtype::BF16) == 16);
  CHECK(safetensors_dtype_bits(SafetensorsDtype::BOOL) == 8);
  CHECK_FALSE(safetensors_dtype_from_name("f32", &t));
  CHECK_FALSE(safetensors_dtype_from_name("", &t));
}

TEST_CASE("B1: a header length of 2^63, or longer than the file") {
  expect_bad(u64le(uint64_t{1} << 63) + "{}",
             "header length 9223372036854775808 exceeds the 2 bytes after it (truncated or not a safetensors file) "
             "(at byte 0)");
  expect_bad(u64le(~uint64_t{0}) + "{}", "header length 18446744073709551615 exceeds the 2 bytes after it");
  expect_bad(u64le(100) + std::string(10, ' '), "header length 100 exceeds the 10 bytes after it");
  expect_bad(u64le(0), "header length 0 is too short for a JSON object");
}

TEST_CASE("B2: a header above the 100 MiB cap is refused before it is read") {
  // A sparse file: 8 bytes of length and a 101 MiB hole, so nothing is written or read.
  test::TempDir dir;
  const std::string path = dir.path() + "/big.safetensors";
  const uint64_t n = uint64_t{101} << 20;
  test::write_file(path, u64le(n));
  REQUIRE(::truncate(path.c_str(), off_t(8 + n)) == 0);
  CHECK_THROWS_WITH_AS(SafetensorsFile::open(path),
                       (path + ": header length 105906176 exceeds the limit of 104857600 bytes (100 MiB) (at byte 0)").c_str(),
                       FormatError);
}

TEST_CASE("B2: a header whose entries would need more memory than the file's size + 64 MiB") {
  // 100,000 empty tensors of 64 dimensions: 18 MB of JSON, about 130 MB parsed. Refused
  // part-way, when the entries read so far reach the budget.
  std::string dims = "0";
  for (int i = 1; i < 64; ++i) dims += ",0";
  std::string json = "{";
  for (int i = 0; i < 100000; ++i)
    json.append(i ? ",\"" : "\"").append(std::to_string(i)).append(R"(":{"dtype":"U8","shape":[)").append(dims).append(
        R"(],"data_offsets":[0,0]})");
  json += "}";
  CHECK_THROWS_WITH_AS(parse(st_file(json, "")),
                       doctest::Contains("tensors so far) need more memory than the file's size justifies (its size + 64 MiB)"),
                       FormatError);
  // A tenth of it loads.
  json = "{";
  for (int i = 0; i < 10000; ++i)
    json.append(i ? ",\"" : "\"").append(std::to_string(i)).append(R"(":{"dtype":"U8","shape":[)").append(dims).append(
        R"(],"data_offsets":[0,0]})");
  json += "}";
  CHECK(parse(st_file(json, "")).tensors().size() == 10000);
}

TEST_CASE("B3: empty, short and other files") {
  expect_bad("", "file is empty");
  expect_bad("{}", "truncated: need 8 bytes for the header length, file has 2");
  std::string gguf("GGUF\3\0\0\0", 8);
  gguf += std::string(16, '\0') + std::string(1000, 'x');
  expect_bad(gguf, "is a GGUF file, not a safetensors file");
  expect_bad("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n", "is a Git LFS pointer");
  test::TempDir dir;
  CHECK_THROWS_AS(SafetensorsFile::open(dir.path() + "/none.safetensors"), IoError);
  CHECK_THROWS_AS(SafetensorsFile::open(dir.path()), IoError);
}

TEST_CASE("B4: a header that is not JSON, not an object, or not of the format's shape") {
  expect_bad(st_file("{not json}", ""), "header is not valid JSON: ");
  expect_bad(st_file("{} x", ""), "header is not valid JSON: ");
  expect_bad(st_file(std::string("{\"\xff\":1}"), ""), "header is not valid JSON: ");
  expect_bad(st_file("[1,2]", ""), "header is an array, expected a JSON object of tensors");
  expect_bad(st_file("\"x\"", ""), "header is a string, expected a JSON object of tensors");
  expect_bad(st_file(R"({"a":[1]})", ""), "tensor 'a' is an array, expected an object with dtype, shape and data_offsets");
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1]}})", ""), "tensor 'a': no data_offsets");
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", std::string(4, '\0')),
             "tensor 'a': unknown field 'x', expected dtype, shape and data_offsets");
  expect_bad(st_file(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", ""), "tensor 'a': dtype is a number, expected a string");
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", ""),
             "tensor 'a': shape holds an array, expected integers");
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", ""),
             "tensor 'a': data_offsets has 1 values, expected [begin, end]");
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", ""),
             "tensor 'a': data_offsets has more than 2 values");
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", ""),
             "tensor 'a': data_offsets has a negative value -4");
  expect_bad(st_file(R"({"__metadata__":{"k":1}})", ""), "__metadata__ value of 'k' is a number, expected a string");
  expect_bad(st_file(R"({"__metadata__":"pt"})", ""), "__metadata__ is a string, expected an object of strings");
  expect_bad(st_file(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", ""), "a tensor name is empty");
}

TEST_CASE("B5: duplicate tensor names, fields and metadata keys") {
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                     R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                     std::string(12, '\0')),
             "duplicate tensor name 'a'");
  expect_bad(st_file(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
             "tensor 'a': the field 'dtype' appears twice");
  expect_bad(st_file(R"({"__metadata__":{"k":"1","k":"2"}})", ""), "__metadata__ has the key 'k' twice");
  expect_bad(st_file(R"({"__metadata__":{},"__metadata__":{}})", ""), "the key '__metadata__' appears twice");
}

TEST_CASE("B6: an unknown dtype") {
  expect_bad(st_file(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
             "tensor 'w': unknown dtype 'F17', expected one of BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, "
             "BF16, I32, U32, F32, F64, I64, U64, C64, F4, F6_E2M3, F6_E3M2");
  expect_bad(st_file(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
             "tensor 'w': unknown dtype 'f32'");
}

TEST_CASE("B7: negative, fractional, too many and overflowing dimensions") {
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", std::string(8, '\0')),
             "tensor 'w': shape dimension 0 is -1, expected 0 or more");
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[2,1.5],"data_offsets":[0,8]}})", std::string(8, '\0')),
             "tensor 'w': shape dimension 1 is 1.5, expected an integer from 0 to 2^63 - 1");
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}})", ""),
             "tensor 'w': shape dimension 0 is 18446744073709551616, expected an integer");
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", ""),
             "tensor 'w': shape dimension 0 is 9223372036854775808, expected at most 2^63 - 1");
  std::string dims = "1";
  for (int i = 1; i < 65; ++i) dims += ",1";
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[)" + dims + R"(],"data_offsets":[0,4]}})", std::string(4, '\0')),
             "tensor 'w': shape has more than 64 dimensions");
  // 2^62 x 8 elements wraps 2^64; 2^61 x F32 is 2^63 bytes, whose bit count wraps.
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", std::string(8, '\0')),
             "tensor 'w': shape [4611686018427387904, 8] has more than 2^64 elements");
  expect_bad(st_file(R"({"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}})", std::string(8, '\0')),
             "tensor 'w': shape [2305843009213693952] x F32 overflows 2^64 bits");
  // 3 x 4 bits is not a whole number of bytes.
  expect_bad(st_file(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", std::string(2, '\0')),
             "tensor 'w': shape [3] x F4 is 12 bits, not a whole number of bytes");
}

TEST_CASE("B8: shape x dtype size not equal to the byte range") {
  std::string bytes = st_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", std::string(16, '\0'));
  const uint64_t data_start = bytes.size() - 16;
  expect_bad(bytes, "tensor 'w': shape [2, 2] x F32 is 16 bytes, but data_offsets [0, 12] hold 12 (at byte " +
                        std::to_string(data_start) + ")");
  expect_bad(st_file(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
             "tensor 'w': shape [3] x BF16 is 6 bytes, but data_offsets [0, 8] hold 8");
}

TEST_CASE("B9: offsets past the end of the data or running backwards") {
  std::string bytes = st_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'));
  expect_bad(bytes, "tensor 'w': data_offsets [0, 16] end past the data section's 8 bytes (truncated file?) (at byte " +
                        std::to_string(bytes.size() - 8) + ")");
  expect_bad(st_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", std::string(8, '\0')),
             "tensor 'w': data_offsets [18446744073709551615, 0] end before they begin");
  expect_bad(st_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})", ""),
             "tensor 'w': data_offsets [18446744073709551615, 18446744073709551615] end past the data section's 0 bytes");
}

TEST_CASE("B10: overlapping tensors") {
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     std::string(12, '\0')),
             "tensors 'a' (bytes 0 to 8) and 'b' (from 4) overlap");
  // Listed in another order than their bytes, and an overlap with a tensor two places back.
  expect_bad(st_file(R"({"c":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                     R"("a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                     std::string(8, '\0')),
             "tensors 'a' (bytes 0 to 8) and 'b' (from 2) overlap");
  // The same tensor twice under two names.
  expect_bad(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                     std::string(4, '\0')),
             "tensors 'a' (bytes 0 to 4) and 'b' (from 0) overlap");
  // Empty tensors overlap nothing, even at another tensor's start.
  CHECK(parse(st_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("c":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                      std::string(4, '\0')))
            .tensors()
            .size() == 3);
}

TEST_CASE("a model directory: model.safetensors, or shards listed by model.safetensors.index.json") {
  test::TempDir dir;
  const std::string d = dir.path();
  // One file.
  test::write_file(d + "/model.safetensors", good_file());
  SafetensorsModel one = SafetensorsModel::open(d);
  CHECK_FALSE(one.sharded());
  CHECK(one.path() == d + "/model.safetensors");
  REQUIRE(one.tensors().size() == 3);
  CHECK(to_float(*one.find("w.bf16")) == kBF16Values);
  CHECK(&one.file_of(*one.find("w.f16")) == &one.shards()[0]);
  CHECK(SafetensorsModel::open(d + "/model.safetensors").tensors().size() == 3);

  // Two shards; the second holds a tensor the index does not list. The index wins over
  // model.safetensors in the same directory.
  test::write_file(d + "/model-00001-of-00002.safetensors", f32_shard({{"a", 2}, {"c", 1}}, 0));
  test::write_file(d + "/model-00002-of-00002.safetensors", f32_shard({{"b", 3}, {"extra", 1}}, 10));
  test::write_file(d + "/model.safetensors.index.json",
                   R"({"metadata":{"total_size":28,"nested":[{"weight_map":1}]},)"
                   R"("weight_map":{"b":"model-00002-of-00002.safetensors","a":"model-00001-of-00002.safetensors",)"
                   R"("c":"model-00001-of-00002.safetensors"}})");
  for (const std::string& path : {d, d + "/", d + "/model.safetensors.index.json"}) {
    SafetensorsModel m = SafetensorsModel::open(path);
    CHECK(m.sharded());
    CHECK(m.path() == d + "/model.safetensors.index.json");
    CHECK(m.shards().size() == 2);  // each opened once
    REQUIRE(m.tensors().size() == 3);
    CHECK(m.tensors()[0]->name == "b");  // weight_map order
    CHECK(to_float(*m.find("a")) == std::vector<float>{0, 1});
    CHECK(to_float(*m.find("b")) == std::vector<float>{10, 11, 12});
    CHECK(to_float(*m.find("c")) == std::vector<float>{2});
    CHECK(m.find("extra") == nullptr);
    CHECK(m.file_of(*m.find("c")).path() == d + "/model-00001-of-00002.safetensors");
    CHECK(m.file_of(*m.find("b")).path() == d + "/model-00002-of-00002.safetensors");
    CHECK(m.warnings() == std::vector<std::string>{d + "/model-00002-of-00002.safetensors: 1 tensors not in the "
                                                   "index's weight_map are left out"});
  }
}

TEST_CASE("B11: a sharded index pointing outside its directory, to a missing shard or a missing tensor") {
  test::TempDir dir;
  const std::string d = dir.path();
  ::mkdir((d + "/m").c_str(), 0755);
  test::write_file(d + "/outside.safetensors", f32_shard({{"a", 1}}, 0));
  test::write_file(d + "/m/s1.safetensors", f32_shard({{"a", 1}}, 0));
  const std::string index = d + "/m/model.safetensors.index.json";
  auto expect_index = [&](const std::string& json, const std::string& message) {
    test::write_file(index, json);
    CHECK_THROWS_WITH_AS(SafetensorsModel::open(d + "/m"), doctest::Contains(message.c_str()), FormatError);
  };
  expect_index(R"({"weight_map":{"a":"../outside.safetensors"}})",
               index + ": weight_map puts tensor 'a' in '../outside.safetensors', expected a file name in the "
                       "index's directory (no '/', '\\' or '..')");
  expect_index(R"({"weight_map":{"a":")" + d + R"(/outside.safetensors"}})", index + ": weight_map puts tensor 'a' in '");
  expect_index(R"({"weight_map":{"a":"sub/s1.safetensors"}})", "no '/'");
  expect_index(R"({"weight_map":{"a":".."}})", "no '/'");
  expect_index(R"({"weight_map":{"a":""}})", "no '/'");
  expect_index(R"({"weight_map":{"a":"s2.safetensors"}})",
               index + ": weight_map puts tensor 'a' in 's2.safetensors', which is not in " + d +
                   "/m/ (download every shard of the model)");
  expect_index(R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})",
               d + "/m/s1.safetensors: has no tensor 'b', which " + index + " puts in it");
  expect_index(R"({"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}})",
               index + ": weight_map lists tensor 'a' twice");
  expect_index(R"({"metadata":{}})", index + ": index has no weight_map");
  expect_index(R"({"weight_map":{"a":"s1.safetensors"},"weight_map":{}})", "the key 'weight_map' appears twice");
  expect_index(R"({"weight_map":{"a":1}})", "weight_map entry 'a' is a number, expected a shard file name");
  expect_index(R"({"weight_map":["a"]})", "weight_map is an array");
  expect_index(R"([])", "index is an array");
  expect_index(R"({"weight_map":)", index + ": index is not valid JSON: ");
  // A bad shard is reported with its own name.
  test::write_file(d + "/m/s1.safetensors", "{}");
  expect_index(R"({"weight_map":{"a":"s1.safetensors"}})", d + "/m/s1.safetensors: truncated");
  // A directory that is not a model.
  ::mkdir((d + "/empty").c_str(), 0755);
  CHECK_THROWS_WITH_AS(SafetensorsModel::open(d + "/empty"),
                       doctest::Contains("empty: directory has neither model.safetensors.index.json nor model.safetensors"),
                       FormatError);
}
