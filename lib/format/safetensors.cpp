// Safetensors parsing: the header length checked against the file and a cap before any JSON is
// read, the JSON read by nlohmann-json's SAX interface into the tensor list directly (no JSON
// tree, so no duplicate key is lost to last-wins), then the byte ranges checked.
#include "format/safetensors.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "base/error.hpp"
#include "base/half.hpp"

namespace lm::format {

namespace {

struct DtypeInfo {
  const char* name;
  unsigned bits;
};

// Index = SafetensorsDtype value.
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 8},     {"U8", 8},       {"I8", 8},       {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},
    {"U16", 16},     {"F16", 16},     {"BF16", 16},    {"I32", 32},    {"U32", 32},    {"F32", 32},    {"F64", 64},
    {"I64", 64},     {"U64", 64},     {"C64", 64},     {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6},
};
constexpr size_t kNumDtypes = sizeof kDtypes / sizeof *kDtypes;
static_assert(kNumDtypes == size_t(SafetensorsDtype::F6_E3M2) + 1);

std::string dtype_list() {
  std::string s;
  for (const DtypeInfo& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

// A name for messages: quoted, control and non-ASCII bytes as '?', cut after 80 bytes.
std::string quote_name(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) out += (uint8_t(c) >= 0x20 && uint8_t(c) < 0x7f) ? c : '?';
  return out + (s.size() > 80 ? "...'" : "'");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// What a file is when its first bytes are not a plausible header length.
std::string other_format(const uint8_t* p, size_t n) {
  std::string_view s(reinterpret_cast<const char*>(p), n);
  if (s.substr(0, 24) == "version https://git-lfs.") return "is a Git LFS pointer, not model data; run 'git lfs pull'";
  if (s.substr(0, 4) == "GGUF") return "is a GGUF file, not a safetensors file";
  if (s.substr(0, 4) == "PK\x03\x04") return "is a zip archive (a PyTorch checkpoint?), not a safetensors file";
  if (n >= 1 && p[0] == 0x80) return "looks like a Python pickle (a PyTorch .bin?), not a safetensors file";
  return {};
}

// Memory is held to what the file's size justifies, as in the GGUF reader (docs/reliability.md,
// GGUF reader bounds): the parsed entries may take at most the file's size + 64 MiB. An entry
// costs more than its JSON (an empty tensor is 50 bytes of JSON and about 260 in memory, with
// the list's growth and the name index), so a header of millions of empty tensors is refused
// rather than allowed to need 4 times its size; real files need a few hundred bytes a tensor.
constexpr uint64_t kMemorySlack = uint64_t{64} << 20;
class Budget {
 public:
  explicit Budget(uint64_t file_size) : left_(file_size + kMemorySlack) {}
  // False when the bytes are not left.
  bool spend(uint64_t bytes) {
    if (bytes > left_) return false;
    left_ -= bytes;
    return true;
  }

 private:
  uint64_t left_;
};
// Short strings live inside std::string; longer ones cost their length too.
uint64_t string_cost(const std::string& s) { return s.size() > 15 ? s.size() + 1 : 0; }

// The JSON header, read event by event. The grammar is fixed, so every event either fits the
// one place the parser is at or is an error naming the tensor or key: nothing is skipped and
// nothing nests deeper than an array in an object in the top object.
class HeaderSax {
 public:
  HeaderSax(const std::string& path, uint64_t file_size, std::vector<SafetensorsTensor>& tensors,
            std::map<std::string, std::string>& meta)
      : path_(path), budget_(file_size), tensors_(tensors), meta_(meta) {}

  bool null() { return unexpected("null"); }
  bool boolean(bool v) { return unexpected(v ? "true" : "false"); }
  bool number_integer(int64_t v) {
    if (v >= 0) return number_unsigned(uint64_t(v));
    if (at_ == At::Shape) fail(tensor_ctx() + dim_ctx() + " is " + std::to_string(v) + ", expected 0 or more");
    if (at_ == At::Offsets) fail(tensor_ctx() + "data_offsets has a negative value " + std::to_string(v));
    return unexpected("a number");
  }
  bool number_unsigned(uint64_t v) {
    if (at_ == At::Shape) {
      if (v > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(tensor_ctx() + dim_ctx() + " is " + std::to_string(v) + ", expected at most 2^63 - 1");
      if (tensors_.back().shape.size() == kMaxSafetensorsDims)
        fail(tensor_ctx() + "shape has more than " + std::to_string(kMaxSafetensorsDims) + " dimensions");
      spend(2 * sizeof(int64_t));  // with the vector's growth
      tensors_.back().shape.push_back(int64_t(v));
      return true;
    }
    if (at_ == At::Offsets) {
      if (n_offsets_ == 2) fail(tensor_ctx() + "data_offsets has more than 2 values, expected [begin, end]");
      offsets_[n_offsets_++] = v;
      return true;
    }
    return unexpected("a number");
  }
  bool number_float(double, const std::string& text) {
    if (at_ == At::Shape)
      fail(tensor_ctx() + dim_ctx() + " is " + text + ", expected an integer from 0 to 2^63 - 1");
    if (at_ == At::Offsets) fail(tensor_ctx() + "data_offsets value " + text + " is not an integer in 0..2^64 - 1");
    return unexpected("a number");
  }
  bool string(std::string& v) {
    if (at_ == At::Entry && field_ == Field::Dtype) {
      if (!safetensors_dtype_from_name(v, &tensors_.back().dtype))
        fail(tensor_ctx() + "unknown dtype " + quote_name(v) + ", expected one of " + dtype_list());
      return true;
    }
    if (at_ == At::Metadata) {
      spend(sizeof(std::pair<const std::string, std::string>) + 32 + string_cost(key_) + string_cost(v));
      if (!meta_.emplace(key_, std::move(v)).second) fail("__metadata__ has the key " + quote_name(key_) + " twice");
      return true;
    }
    return unexpected("a string");
  }
  bool binary(nlohmann::json::binary_t&) { return unexpected("binary data"); }

  bool start_object(size_t) {
    if (at_ == At::Start) {
      at_ = At::Top;
      return true;
    }
    if (at_ == At::Top && have_key_) {
      have_key_ = false;
      if (key_ == "__metadata__") {
        if (seen_metadata_) fail("the key '__metadata__' appears twice");
        seen_metadata_ = true;
        at_ = At::Metadata;
        return true;
      }
      // The entry twice (the list's growth), its name, the name index and sort order.
      spend(2 * sizeof(SafetensorsTensor) + string_cost(key_) + 64);
      tensors_.emplace_back();
      tensors_.back().name = key_;
      seen_ = 0;
      n_offsets_ = 0;
      at_ = At::Entry;
      return true;
    }
    return unexpected("an object");
  }
  bool key(std::string& k) {
    if (at_ == At::Top) {
      if (k.empty()) fail("a tensor name is empty");
      key_ = std::move(k);
      have_key_ = true;
      return true;
    }
    if (at_ == At::Entry) {
      Field f;
      if (k == "dtype") f = Field::Dtype;
      else if (k == "shape") f = Field::Shape;
      else if (k == "data_offsets") f = Field::Offsets;
      else fail(tensor_ctx() + "unknown field " + quote_name(k) + ", expected dtype, shape and data_offsets");
      if (seen_ & (1u << unsigned(f))) fail(tensor_ctx() + "the field " + quote_name(k) + " appears twice");
      seen_ |= 1u << unsigned(f);
      field_ = f;
      return true;
    }
    if (at_ == At::Metadata) {
      key_ = std::move(k);
      return true;
    }
    return unexpected("a key");  // not reached: keys only come inside objects
  }
  bool end_object() {
    if (at_ == At::Top) {
      at_ = At::Done;
      return true;
    }
    if (at_ == At::Entry) {
      for (Field f : {Field::Dtype, Field::Shape, Field::Offsets})
        if (!(seen_ & (1u << unsigned(f))))
          fail(tensor_ctx() + "no " + (f == Field::Dtype ? "dtype" : f == Field::Shape ? "shape" : "data_offsets") +
               ", expected dtype, shape and data_offsets");
      at_ = At::Top;
      return true;
    }
    if (at_ == At::Metadata) {
      at_ = At::Top;
      return true;
    }
    return unexpected("the end of an object");  // not reached
  }
  bool start_array(size_t) {
    if (at_ == At::Entry && field_ == Field::Shape) {
      at_ = At::Shape;
      return true;
    }
    if (at_ == At::Entry && field_ == Field::Offsets) {
      at_ = At::Offsets;
      return true;
    }
    return unexpected("an array");
  }
  bool end_array() {
    if (at_ == At::Shape) {
      at_ = At::Entry;
      return true;
    }
    if (at_ == At::Offsets) {
      if (n_offsets_ != 2)
        fail(tensor_ctx() + "data_offsets has " + std::to_string(n_offsets_) + " values, expected [begin, end]");
      tensors_.back().offset = offsets_[0];  // relative to the data section until validate()
      tensors_.back().bytes = offsets_[1];   // the end, until validate()
      at_ = At::Entry;
      return true;
    }
    return unexpected("the end of an array");  // not reached
  }
  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 6: syntax error while
    // parsing value - invalid literal; last read: 'tru}'": keep what went wrong.
    std::string what = e.what();
    const size_t colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    const size_t dash = what.find(" - ");
    if (what.rfind("syntax error while parsing ", 0) == 0 && dash != std::string::npos) what = what.substr(dash + 3);
    throw FormatError(path_, "header is not valid JSON: " + what, int64_t(8 + (position ? position - 1 : 0)));
  }

 private:
  enum class At { Start, Top, Entry, Metadata, Shape, Offsets, Done };
  enum class Field { Dtype, Shape, Offsets };

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(path_, what); }
  void spend(uint64_t bytes) {
    if (!budget_.spend(bytes))
      fail("the header's entries (" + std::to_string(tensors_.size()) +
           " tensors so far) need more memory than the file's size justifies (its size + 64 MiB)");
  }
  std::string tensor_ctx() const { return "tensor " + quote_name(tensors_.back().name) + ": "; }
  std::string dim_ctx() const { return "shape dimension " + std::to_string(tensors_.back().shape.size()); }
  // An event that does not fit where the parser is.
  bool unexpected(const std::string& found) const {
    switch (at_) {
      case At::Start:
        fail("header is " + found + ", expected a JSON object of tensors");
      case At::Top:
        if (have_key_ && key_ == "__metadata__") fail("__metadata__ is " + found + ", expected an object of strings");
        fail("tensor " + quote_name(key_) + " is " + found + ", expected an object with dtype, shape and data_offsets");
      case At::Entry:
        if (field_ == Field::Dtype) fail(tensor_ctx() + "dtype is " + found + ", expected a string");
        if (field_ == Field::Shape) fail(tensor_ctx() + "shape is " + found + ", expected an array of integers");
        fail(tensor_ctx() + "data_offsets is " + found + ", expected an array [begin, end]");
      case At::Metadata:
        fail("__metadata__ value of " + quote_name(key_) + " is " + found + ", expected a string");
      case At::Shape:
        fail(tensor_ctx() + "shape holds " + found + ", expected integers");
      case At::Offsets:
        fail(tensor_ctx() + "data_offsets holds " + found + ", expected integers");
      case At::Done:
        break;
    }
    fail("unexpected " + found + " after the header's object");
  }

  const std::string& path_;
  Budget budget_;
  std::vector<SafetensorsTensor>& tensors_;
  std::map<std::string, std::string>& meta_;
  At at_ = At::Start;
  Field field_ = Field::Dtype;
  unsigned seen_ = 0;  // bit per Field seen in the current entry
  std::string key_;    // the current top-level or metadata key
  bool have_key_ = false;
  bool seen_metadata_ = false;
  uint64_t offsets_[2] = {0, 0};
  size_t n_offsets_ = 0;
};

uint64_t read_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

const char* safetensors_dtype_name(SafetensorsDtype t) {
  return size_t(t) < kNumDtypes ? kDtypes[size_t(t)].name : "invalid";
}

unsigned safetensors_dtype_bits(SafetensorsDtype t) { return size_t(t) < kNumDtypes ? kDtypes[size_t(t)].bits : 0; }

bool safetensors_dtype_from_name(std::string_view name, SafetensorsDtype* out) {
  for (size_t i = 0; i < kNumDtypes; ++i)
    if (name == kDtypes[i].name) {
      *out = SafetensorsDtype(i);
      return true;
    }
  return false;
}

// ---- SafetensorsFile ----

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile(path, MappedFile::Accept::Regular);  // a device or FIFO would be read until memory runs out
  f.path_ = f.file_.path();
  f.data_ = f.file_.data();
  f.size_ = f.file_.size();
  f.parse();
  return f;
}

SafetensorsFile SafetensorsFile::from_bytes(std::string bytes, const std::string& name) {
  SafetensorsFile f;
  f.bytes_.assign(bytes.begin(), bytes.end());
  f.path_ = name;
  f.data_ = f.bytes_.data();
  f.size_ = f.bytes_.size();
  f.parse();
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse() {
  if (size_ == 0) throw FormatError(path_, "file is empty, expected a safetensors header length", 0);
  if (size_ < 8) {
    const std::string other = other_format(data_, size_);
    throw FormatError(path_, other.empty() ? "truncated: need 8 bytes for the header length, file has " + std::to_string(size_) : other, 0);
  }
  const uint64_t n = read_u64le(data_);
  const uint64_t after = size_ - 8;
  if (n > after) {
    const std::string other = other_format(data_, size_);
    if (!other.empty()) throw FormatError(path_, other, 0);
    throw FormatError(path_, "header length " + std::to_string(n) + " exceeds the " + std::to_string(after) +
                                 " bytes after it (truncated or not a safetensors file)",
                      0);
  }
  if (n > kMaxSafetensorsHeader)
    throw FormatError(path_, "header length " + std::to_string(n) + " exceeds the limit of " +
                                 std::to_string(kMaxSafetensorsHeader) + " bytes (100 MiB)",
                      0);
  if (n < 2) throw FormatError(path_, "header length " + std::to_string(n) + " is too short for a JSON object", 0);
  header_bytes_ = n;

  const char* json = reinterpret_cast<const char*>(data_ + 8);
  HeaderSax sax(path_, size_, tensors_, metadata_);
  nlohmann::json::sax_parse(json, json + n, &sax);  // throws FormatError from the handler

  // Byte ranges: inside the data section, of the size the shape and dtype give, not overlapping.
  const uint64_t data_start = 8 + n, data_size = size_ - data_start;
  for (SafetensorsTensor& t : tensors_) {
    const uint64_t begin = t.offset, end = t.bytes;
    const std::string ctx = "tensor " + quote_name(t.name) + ": ";
    const std::string range = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin > end) throw FormatError(path_, ctx + range + " end before they begin");
    if (end > data_size)
      throw FormatError(path_, ctx + range + " end past the data section's " + std::to_string(data_size) +
                                   " bytes (truncated file?)",
                        int64_t(data_start));
    uint64_t elements = 1;
    for (int64_t d : t.shape)
      if (__builtin_mul_overflow(elements, uint64_t(d), &elements))
        throw FormatError(path_, ctx + "shape " + shape_text(t.shape) + " has more than 2^64 elements");
    uint64_t bits;
    const unsigned dbits = safetensors_dtype_bits(t.dtype);
    if (__builtin_mul_overflow(elements, uint64_t(dbits), &bits))
      throw FormatError(path_, ctx + "shape " + shape_text(t.shape) + " x " + safetensors_dtype_name(t.dtype) +
                                   " overflows 2^64 bits");
    if (bits % 8 != 0)
      throw FormatError(path_, ctx + "shape " + shape_text(t.shape) + " x " + safetensors_dtype_name(t.dtype) + " is " +
                                   std::to_string(bits) + " bits, not a whole number of bytes");
    if (bits / 8 != end - begin)
      throw FormatError(path_, ctx + "shape " + shape_text(t.shape) + " x " + safetensors_dtype_name(t.dtype) + " is " +
                                   std::to_string(bits / 8) + " bytes, but " + range + " hold " +
                                   std::to_string(end - begin),
                        int64_t(data_start + begin));
    t.elements = elements;
    t.offset = data_start + begin;
    t.bytes = end - begin;
    t.data = data_ + t.offset;
  }
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const SafetensorsTensor &x = tensors_[a], &y = tensors_[b];
    return x.offset != y.offset ? x.offset < y.offset : x.bytes < y.bytes;
  });
  size_t reach = 0;  // the tensor whose bytes end last so far
  for (size_t k = 1; k < order.size(); ++k) {
    const SafetensorsTensor &prev = tensors_[order[reach]], &t = tensors_[order[k]];
    if (t.offset < prev.offset + prev.bytes)
      throw FormatError(path_, "tensors " + quote_name(prev.name) + " (bytes " + std::to_string(prev.offset - data_start) + " to " +
                                   std::to_string(prev.offset - data_start + prev.bytes) + ") and " + quote_name(t.name) +
                                   " (from " + std::to_string(t.offset - data_start) + ") overlap",
                        int64_t(t.offset));
    if (t.offset + t.bytes > prev.offset + prev.bytes) reach = k;
  }

  // Names are unique: built after the list is complete, since string_views into a growing
  // vector's short strings would move.
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (!index_.emplace(tensors_[i].name, i).second)
      throw FormatError(path_, "duplicate tensor name " + quote_name(tensors_[i].name));
}

// ---- conversion ----

namespace {


// float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
float e4m3_to_float(uint8_t b) {
  const int exp = (b >> 3) & 0xf, man = b & 7;
  float v;
  if (exp == 15 && man == 7) v = std::numeric_limits<float>::quiet_NaN();
  else if (exp == 0) v = std::ldexp(float(man), -9);
  else v = std::ldexp(float(8 + man), exp - 10);
  return (b & 0x80) ? -v : v;
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // the data is little-endian, like the machines lm runs on
  return v;
}

}  // namespace

bool safetensors_to_float_supported(SafetensorsDtype t) {
  switch (t) {
    case SafetensorsDtype::F8_E8M0:
    case SafetensorsDtype::C64:
    case SafetensorsDtype::F4:
    case SafetensorsDtype::F6_E2M3:
    case SafetensorsDtype::F6_E3M2:
      return false;
    default:
      return true;
  }
}

void safetensors_to_float(const SafetensorsTensor& t, uint64_t first, uint64_t count, float* dst,
                          const std::string& file) {
  if (!safetensors_to_float_supported(t.dtype))
    throw FormatError(file, "tensor " + quote_name(t.name) + " has dtype " + safetensors_dtype_name(t.dtype) +
                              ", which lm does not convert to float");
  if (first > t.elements || count > t.elements - first)
    throw UsageError("tensor " + quote_name(t.name) + ": elements " + std::to_string(first) + " + " + std::to_string(count) +
                     " are past its " + std::to_string(t.elements));
  const size_t size = safetensors_dtype_bits(t.dtype) / 8;
  const uint8_t* p = t.data + first * size;
  const size_t n = size_t(count);
  switch (t.dtype) {
    case SafetensorsDtype::F32:
      std::memcpy(dst, p, n * 4);
      break;
    case SafetensorsDtype::F16:
      for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(load<uint16_t>(p + 2 * i));
      break;
    case SafetensorsDtype::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint32_t bits = uint32_t(load<uint16_t>(p + 2 * i)) << 16;
        std::memcpy(&dst[i], &bits, 4);
      }
      break;
    case SafetensorsDtype::F64:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<double>(p + 8 * i));
      break;
    case SafetensorsDtype::F8_E5M2:  // the top byte of an IEEE half
      for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(uint16_t(p[i] << 8));
      break;
    case SafetensorsDtype::F8_E4M3:
      for (size_t i = 0; i < n; ++i) dst[i] = e4m3_to_float(p[i]);
      break;
    case SafetensorsDtype::BOOL:
      for (size_t i = 0; i < n; ++i) dst[i] = p[i] ? 1.0f : 0.0f;
      break;
    case SafetensorsDtype::U8:
      for (size_t i = 0; i < n; ++i) dst[i] = float(p[i]);
      break;
    case SafetensorsDtype::I8:
      for (size_t i = 0; i < n; ++i) dst[i] = float(int8_t(p[i]));
      break;
    case SafetensorsDtype::I16:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<int16_t>(p + 2 * i));
      break;
    case SafetensorsDtype::U16:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<uint16_t>(p + 2 * i));
      break;
    case SafetensorsDtype::I32:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<int32_t>(p + 4 * i));
      break;
    case SafetensorsDtype::U32:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<uint32_t>(p + 4 * i));
      break;
    case SafetensorsDtype::I64:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<int64_t>(p + 8 * i));
      break;
    case SafetensorsDtype::U64:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load<uint64_t>(p + 8 * i));
      break;
    default:
      break;  // refused above
  }
}

// ---- SafetensorsModel ----

namespace {

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// model.safetensors.index.json: {"weight_map": {tensor: shard}, anything else}. Other top-level
// values are skipped by depth; the weight map's keys must be unique and its values strings.
class IndexSax {
 public:
  IndexSax(const std::string& path, uint64_t file_size, std::vector<std::pair<std::string, std::string>>& map)
      : path_(path), budget_(file_size), map_(map) {}

  bool null() { return value("null"); }
  bool boolean(bool) { return value("a boolean"); }
  bool number_integer(int64_t) { return value("a number"); }
  bool number_unsigned(uint64_t) { return value("a number"); }
  bool number_float(double, const std::string&) { return value("a number"); }
  bool binary(nlohmann::json::binary_t&) { return value("binary data"); }
  bool string(std::string& v) {
    if (in_map_ && depth_ == 2) {
      // The entry twice (the list's growth), its strings, the name set and shard lookup.
      if (!budget_.spend(2 * sizeof(map_[0]) + string_cost(key_) + string_cost(v) + 48))
        fail("the weight_map's " + std::to_string(map_.size()) +
             " entries need more memory than the file's size justifies (its size + 64 MiB)");
      map_.emplace_back(std::move(key_), std::move(v));
      return true;
    }
    return value("a string");
  }
  bool start_object(size_t) {
    if (depth_ == 0) {
      ++depth_;
      return true;
    }
    if (depth_ == 1 && key_ == "weight_map") {
      if (seen_map_) fail("the key 'weight_map' appears twice");
      seen_map_ = in_map_ = true;
    } else if (in_map_ && depth_ == 2) {
      fail("weight_map entry " + quote_name(key_) + " is an object, expected a shard file name");
    }
    ++depth_;
    return true;
  }
  bool key(std::string& k) {
    if (depth_ == 1) {
      key_ = std::move(k);
    } else if (in_map_ && depth_ == 2) {
      if (k.empty()) fail("weight_map has an empty tensor name");
      key_ = std::move(k);
    }
    return true;
  }
  bool end_object() {
    if (--depth_ == 1) in_map_ = false;
    return true;
  }
  bool start_array(size_t) {
    if (depth_ == 0) fail("index is an array, expected a JSON object with a weight_map");
    if (depth_ == 1 && key_ == "weight_map") fail("weight_map is an array, expected an object of tensor: shard file");
    if (in_map_ && depth_ == 2) fail("weight_map entry " + quote_name(key_) + " is an array, expected a shard file name");
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
    std::string what = e.what();
    const size_t colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    throw FormatError(path_, "index is not valid JSON: " + what, int64_t(position ? position - 1 : 0));
  }
  bool seen_map() const { return seen_map_; }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(path_, what); }
  bool value(const char* found) {
    if (depth_ == 0) fail(std::string("index is ") + found + ", expected a JSON object with a weight_map");
    if (depth_ == 1 && key_ == "weight_map")
      fail(std::string("weight_map is ") + found + ", expected an object of tensor: shard file");
    if (in_map_ && depth_ == 2) fail("weight_map entry " + quote_name(key_) + " is " + found + ", expected a shard file name");
    return true;
  }

  const std::string& path_;
  Budget budget_;
  std::vector<std::pair<std::string, std::string>>& map_;
  int depth_ = 0;
  bool in_map_ = false, seen_map_ = false;
  std::string key_;
};

}  // namespace

SafetensorsModel SafetensorsModel::open(const std::string& path) {
  SafetensorsModel m;
  std::string file = path;
  if (is_directory(path)) {
    const std::string dir = ends_with(path, "/") ? path : path + "/";
    if (exists(dir + "model.safetensors.index.json")) file = dir + "model.safetensors.index.json";
    else if (exists(dir + "model.safetensors")) file = dir + "model.safetensors";
    else
      throw FormatError(path, "directory has neither model.safetensors.index.json nor model.safetensors, expected a "
                              "Hugging Face model directory");
  }
  m.path_ = file;
  if (!ends_with(file, ".json")) {
    m.shards_.push_back(SafetensorsFile::open(file));
    m.add_file_tensors(0);
    return m;
  }

  m.sharded_ = true;
  const MappedFile index(file, MappedFile::Accept::Regular);
  if (index.size() > kMaxSafetensorsIndex)
    throw FormatError(file, "index is " + std::to_string(index.size()) + " bytes, above the limit of " +
                                std::to_string(kMaxSafetensorsIndex) + " (64 MiB)");
  std::vector<std::pair<std::string, std::string>> map;
  IndexSax sax(file, index.size(), map);
  const char* json = reinterpret_cast<const char*>(index.data());
  nlohmann::json::sax_parse(json, json + index.size(), &sax);
  if (!sax.seen_map()) throw FormatError(file, "index has no weight_map, expected {\"weight_map\": {tensor: shard file}}");

  const size_t slash = file.rfind('/');
  // "./" for an index in the current directory: a shard named "-" is a file, not stdin.
  const std::string dir = slash == std::string::npos ? "./" : file.substr(0, slash + 1);
  std::map<std::string, size_t> shard_of;  // shard file name -> index in shards_
  std::unordered_set<std::string_view> names;
  std::vector<size_t> entry_shard(map.size());
  for (size_t i = 0; i < map.size(); ++i) {
    const auto& [tensor, shard] = map[i];
    if (!names.insert(tensor).second) throw FormatError(file, "weight_map lists tensor " + quote_name(tensor) + " twice");
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
        shard.find('\0') != std::string::npos || shard.find("..") != std::string::npos)
      throw FormatError(file, "weight_map puts tensor " + quote_name(tensor) + " in " + quote_name(shard) +
                                  ", expected a file name in the index's directory (no '/', '\\' or '..')");
    auto it = shard_of.find(shard);
    if (it == shard_of.end()) {
      if (!exists(dir + shard))
        throw FormatError(file, "weight_map puts tensor " + quote_name(tensor) + " in " + quote_name(shard) +
                                    ", which is not in " + dir + " (download every shard of the model)");
      it = shard_of.emplace(shard, m.shards_.size()).first;
      m.shards_.push_back(SafetensorsFile::open(dir + shard));
    }
    entry_shard[i] = it->second;
  }
  std::vector<size_t> used(m.shards_.size(), 0);
  m.tensors_.reserve(map.size());
  m.tensor_shard_.reserve(map.size());
  for (size_t i = 0; i < map.size(); ++i) {
    const SafetensorsFile& f = m.shards_[entry_shard[i]];
    const SafetensorsTensor* t = f.find(map[i].first);
    if (!t)
      throw FormatError(f.path(), "has no tensor " + quote_name(map[i].first) + ", which " + file + " puts in it");
    m.tensors_.push_back(t);
    m.tensor_shard_.push_back(entry_shard[i]);
    ++used[entry_shard[i]];
  }
  for (size_t s = 0; s < m.shards_.size(); ++s)
    if (used[s] < m.shards_[s].tensors().size())
      m.warnings_.push_back(m.shards_[s].path() + ": " + std::to_string(m.shards_[s].tensors().size() - used[s]) +
                            " tensors not in the index's weight_map are left out");
  m.index_.reserve(m.tensors_.size());
  for (size_t i = 0; i < m.tensors_.size(); ++i) m.index_.emplace(m.tensors_[i]->name, i);
  return m;
}

void SafetensorsModel::add_file_tensors(size_t shard) {
  for (const SafetensorsTensor& t : shards_[shard].tensors()) {
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(&t);
    tensor_shard_.push_back(shard);
  }
}

const SafetensorsTensor* SafetensorsModel::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : tensors_[it->second];
}

const SafetensorsFile& SafetensorsModel::file_of(const SafetensorsTensor& t) const {
  const auto it = index_.find(t.name);
  if (it == index_.end() || tensors_[it->second] != &t)
    throw UsageError("tensor " + quote_name(t.name) + " is not one of " + path_ + "'s tensors");
  return shards_[tensor_shard_[it->second]];
}

}  // namespace lm::format
