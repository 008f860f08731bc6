// GGUF parsing with one bounded cursor and checked arithmetic, and the GGUF writer.
#include "format/gguf.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <unordered_set>

#include "base/error.hpp"

namespace lm::format {

// ---- ggml types ----

const GgmlTypeInfo* ggml_type_info(uint32_t raw) {
  // Index = type value; {nullptr} marks removed or unknown values.
  static const GgmlTypeInfo kTable[] = {
      {"f32", 1, 4},        {"f16", 1, 2},        {"q4_0", 32, 18},     {"q4_1", 32, 20},
      {nullptr, 0, 0},      {nullptr, 0, 0},      {"q5_0", 32, 22},     {"q5_1", 32, 24},
      {"q8_0", 32, 34},     {"q8_1", 32, 36},     {"q2_K", 256, 84},    {"q3_K", 256, 110},
      {"q4_K", 256, 144},   {"q5_K", 256, 176},   {"q6_K", 256, 210},   {"q8_K", 256, 292},
      {"iq2_xxs", 256, 66}, {"iq2_xs", 256, 74},  {"iq3_xxs", 256, 98}, {"iq1_s", 256, 50},
      {"iq4_nl", 32, 18},   {"iq3_s", 256, 110},  {"iq2_s", 256, 82},   {"iq4_xs", 256, 136},
      {"i8", 1, 1},         {"i16", 1, 2},        {"i32", 1, 4},        {"i64", 1, 8},
      {"f64", 1, 8},        {"iq1_m", 256, 56},   {"bf16", 1, 2},       {nullptr, 0, 0},
      {nullptr, 0, 0},      {nullptr, 0, 0},      {"tq1_0", 256, 54},   {"tq2_0", 256, 66},
      {nullptr, 0, 0},      {nullptr, 0, 0},      {nullptr, 0, 0},      {"mxfp4", 32, 17},
  };
  if (raw >= sizeof kTable / sizeof *kTable || !kTable[raw].name) return nullptr;
  return &kTable[raw];
}

bool ggml_tensor_bytes(GgmlType t, const int64_t* ne, uint32_t n_dims, uint64_t* bytes) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(t));
  if (!info || n_dims == 0 || n_dims > 4) return false;
  for (uint32_t d = 0; d < n_dims; ++d)
    if (ne[d] < 0) return false;
  if (uint64_t(ne[0]) % info->block != 0) return false;
  // The element count must fit int64 too (ggml's nelements), not only the byte count: for
  // block types bytes < elements, so checking bytes alone lets prod(ne) wrap.
  int64_t elements = ne[0];
  uint64_t n;
  if (__builtin_mul_overflow(uint64_t(ne[0]) / info->block, uint64_t(info->block_bytes), &n)) return false;
  for (uint32_t d = 1; d < n_dims; ++d)
    if (__builtin_mul_overflow(n, uint64_t(ne[d]), &n) || __builtin_mul_overflow(elements, ne[d], &elements))
      return false;
  *bytes = n;
  return true;
}

const char* gguf_type_name(GgufType t) {
  static const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) < 13 ? kNames[uint32_t(t)] : "invalid";
}

namespace {

constexpr uint64_t kMaxString = uint64_t{1} << 30;
constexpr uint64_t kMaxArray = uint64_t{1} << 30;
constexpr uint32_t kMaxAlignment = uint32_t{1} << 20;
constexpr size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME is 64 with the NUL

// Size of a scalar GGUF type, 0 for string/array/invalid.
size_t scalar_size(uint32_t t) {
  static const size_t kSizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return t < 13 ? kSizes[t] : 0;
}

bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// In-memory entries are bigger than their smallest encoding (an empty string is 8 bytes in the
// file and 32 in a std::string), so counts are also held to a peak-RSS budget: the remaining
// file bytes + 64 MiB (docs/reliability.md, GGUF reader bounds). Real files stay far below (a
// 256K vocabulary needs 8 MiB).
constexpr uint64_t kMemorySlack = uint64_t{64} << 20;
bool memory_ok(uint64_t count, uint64_t per_item, uint64_t left) {
  uint64_t need, budget;
  return !__builtin_mul_overflow(count, per_item, &need) && add_ok(left, kMemorySlack, &budget) && need <= budget;
}
bool pad_ok(uint64_t x, uint64_t align, uint64_t* out) {  // align is a power of two
  uint64_t t;
  if (!add_ok(x, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) out += (uint8_t(c) >= 0x20 && uint8_t(c) < 0x7f) ? c : '?';
  return out + (s.size() > 80 ? "...'" : "'");
}

// The bounded reader: every read checks the bytes left first.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : p_(data), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  void need(uint64_t n, const char* what) const {
    if (n > left())
      throw FormatError(path_, std::string("truncated ") + what + ": need " + std::to_string(n) + " bytes, " +
                                   std::to_string(left()) + " left (corrupted or incomplete file)",
                        int64_t(pos_));
  }
  uint64_t uint(size_t n, const char* what) {
    need(n, what);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(p_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string_view string(const char* what) {
    size_t at = pos_;
    uint64_t n = uint(8, what);
    if (n > kMaxString && n <= left())
      throw FormatError(path_, std::string(what) + " length " + std::to_string(n) + " exceeds the cap of " +
                                   std::to_string(kMaxString) + " bytes (1 GiB)",
                        int64_t(at));
    if (n > left())
      throw FormatError(path_, std::string(what) + " length " + std::to_string(n) + " exceeds the remaining " +
                                   std::to_string(left()) + " bytes",
                        int64_t(at));
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  [[noreturn]] void fail(const std::string& what, size_t at) const { throw FormatError(path_, what, int64_t(at)); }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Names what a non-GGUF file is, for the first error line.
std::string not_gguf(const uint8_t* p, size_t n) {
  std::string_view s(reinterpret_cast<const char*>(p), n);
  if (s.substr(0, 24) == "version https://git-lfs.") return "is a Git LFS pointer, not model data; run 'git lfs pull'";
  if (s.substr(0, 4) == "PK\x03\x04") return "is a zip archive (a PyTorch checkpoint?), not a GGUF file; convert it to GGUF";
  if (n >= 1 && p[0] == 0x80) return "looks like a Python pickle (a PyTorch .bin?), not a GGUF file; convert it to GGUF";
  if (n >= 9 && p[8] == '{') return "looks like a safetensors file, not a GGUF file; convert it to GGUF";
  if (s.substr(0, 8) == "LMTOKENS") return "is a token file, not a model; pass it as data instead of -m";
  return "not a GGUF file (magic " + quoted(s.substr(0, 4)) + ", expected 'GGUF')";
}

}  // namespace

// ---- GgufFile ----

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.file_ = MappedFile(path, MappedFile::Accept::Regular);  // a device or FIFO would be read until memory runs out
  f.path_ = f.file_.path();
  f.data_ = f.file_.data();
  f.size_ = f.file_.size();
  f.parse();
  return f;
}

GgufFile GgufFile::from_bytes(std::string bytes, const std::string& name) {
  GgufFile f;
  f.bytes_ = std::move(bytes);
  f.path_ = name;
  f.data_ = reinterpret_cast<const uint8_t*>(f.bytes_.data());
  f.size_ = f.bytes_.size();
  f.parse();
  return f;
}

void GgufFile::parse() {
  if (size_ == 0) throw FormatError(path_, "file is empty, expected GGUF magic", 0);
  if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
    if (size_ < 4 && std::string_view(reinterpret_cast<const char*>(data_), size_) == std::string_view("GGUF", size_))
      throw FormatError(path_, "truncated header: need 24 bytes, file has " + std::to_string(size_), 0);
    throw FormatError(path_, not_gguf(data_, size_), 0);
  }
  if (size_ < 24) throw FormatError(path_, "truncated header: need 24 bytes, file has " + std::to_string(size_), 0);
  Cursor c(data_, size_, path_);
  c.uint(4, "magic");
  version_ = uint32_t(c.uint(4, "version"));
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && version_ != 0)
      c.fail("GGUF version " + std::to_string(version_) + " looks big-endian; only little-endian files are supported", 4);
    c.fail("unsupported GGUF version " + std::to_string(version_) + ", expected 3", 4);
  }
  const uint64_t n_tensors = c.uint(8, "tensor count");
  const uint64_t n_kv = c.uint(8, "metadata count");
  // Smallest entries: a key (8 + 1) + type (4) + a 1-byte value; a tensor info with one dim.
  if (n_kv > c.left() / 14)
    c.fail("metadata count " + std::to_string(n_kv) + " exceeds what the file can hold (at most " +
               std::to_string(c.left() / 14) + ")",
           16);
  if (n_tensors > c.left() / 33)
    c.fail("tensor count " + std::to_string(n_tensors) + " exceeds what the file can hold (at most " +
               std::to_string(c.left() / 33) + ")",
           8);
  // Check the sum as well as each term (CVE-2025-53630 was a sum that wrapped).
  uint64_t kv_min, tensor_min, all_min;
  if (__builtin_mul_overflow(n_kv, uint64_t{14}, &kv_min) || __builtin_mul_overflow(n_tensors, uint64_t{33}, &tensor_min) ||
      __builtin_add_overflow(kv_min, tensor_min, &all_min) || all_min > c.left())
    c.fail("metadata count " + std::to_string(n_kv) + " and tensor count " + std::to_string(n_tensors) +
               " together exceed what the file can hold (" + std::to_string(c.left()) + " bytes left)",
           8);

  size_t alignment_at = 0;  // offset of general.alignment's type field, for messages
  // Entry + index + duplicate-detection set, per item.
  const uint64_t kv_cost = sizeof(std::pair<std::string, GgufValue>) + 64, tensor_cost = sizeof(GgufTensorInfo) + 96;
  if (!memory_ok(n_kv, kv_cost, c.left()) || !memory_ok(n_tensors, tensor_cost, c.left()))
    c.fail("metadata count " + std::to_string(n_kv) + " / tensor count " + std::to_string(n_tensors) +
               " needs more memory than the file's size justifies",
           8);
  std::unordered_set<std::string> keys;  // kv_index_ is built after the loop: kv_ may still move
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    std::string_view key = c.string("key");
    if (key.empty()) c.fail("key #" + std::to_string(i) + " is empty", at);
    for (char ch : key)
      if (uint8_t(ch) < 0x20 || uint8_t(ch) > 0x7e)
        c.fail("key #" + std::to_string(i) + " " + quoted(key) + " is not printable ASCII", at);
    if (!keys.insert(std::string(key)).second) c.fail("duplicate key " + quoted(key), at);
    const std::string ctx = "key " + quoted(key);
    const size_t type_at = c.pos();
    if (key == kKeyAlignment) alignment_at = type_at;
    const auto type = uint32_t(c.uint(4, "value type"));
    if (type > 12) c.fail(ctx + " has unknown type " + std::to_string(type) + ", expected 0 to 12", type_at);
    GgufValue v;
    v.type = GgufType(type);
    auto read_scalar = [&](uint32_t t, uint64_t* bits) {
      size_t vat = c.pos();
      *bits = c.uint(scalar_size(t), "value");
      if (GgufType(t) == GgufType::BOOL && *bits > 1)
        c.fail(ctx + ": bool value " + std::to_string(*bits) + " is not 0 or 1", vat);
    };
    if (v.type == GgufType::STRING) {
      v.str = std::string(c.string("string value"));
    } else if (v.type == GgufType::ARRAY) {
      const size_t eat = c.pos();
      const auto elem = uint32_t(c.uint(4, "array element type"));
      if (elem > 12) c.fail(ctx + ": array element type " + std::to_string(elem) + " is unknown, expected 0 to 12", eat);
      if (GgufType(elem) == GgufType::ARRAY) c.fail(ctx + ": arrays of arrays are not supported", eat);
      v.elem_type = GgufType(elem);
      v.count = c.uint(8, "array count");
      const uint64_t min_elem = elem == uint32_t(GgufType::STRING) ? 8 : scalar_size(elem);
      if (v.count > kMaxArray || v.count > c.left() / min_elem)
        c.fail(ctx + ": array of " + std::to_string(v.count) + " elements exceeds the remaining " +
                   std::to_string(c.left()) + " bytes",
               eat + 4);
      if (v.elem_type == GgufType::STRING) {
        if (!memory_ok(v.count, sizeof(std::string), c.left()))
          c.fail(ctx + ": array of " + std::to_string(v.count) + " strings needs " +
                     std::to_string(v.count * sizeof(std::string)) + " bytes of memory, more than the remaining " +
                     std::to_string(c.left()) + " file bytes + 64 MiB",
                 eat + 4);
        v.strings.reserve(size_t(v.count));
        for (uint64_t k = 0; k < v.count; ++k) v.strings.emplace_back(c.string("string array element"));
      } else {
        const size_t n = size_t(v.count) * scalar_size(elem);
        c.need(n, "array");
        v.str.assign(reinterpret_cast<const char*>(data_ + c.pos()), n);
        for (uint64_t k = 0; k < v.count; ++k) {
          uint64_t bits;
          read_scalar(elem, &bits);  // advances and validates bools
        }
      }
    } else {
      read_scalar(type, &v.bits);
    }
    kv_.emplace_back(std::string(key), std::move(v));
  }
  for (size_t i = 0; i < kv_.size(); ++i) kv_index_.emplace(kv_[i].first, i);

  if (const GgufValue* a = find(kKeyAlignment)) {
    if (a->type != GgufType::U32)
      throw FormatError(path_, "key 'general.alignment' has type " + std::string(gguf_type_name(a->type)) +
                                   ", expected u32",
                        int64_t(alignment_at));
    const uint64_t al = a->bits;
    if (al == 0 || (al & (al - 1)) != 0 || al > kMaxAlignment)
      throw FormatError(path_, "key 'general.alignment' is " + std::to_string(al) +
                                   ", expected a u32 power of two from 1 to " + std::to_string(kMaxAlignment),
                        int64_t(alignment_at + 4));
    alignment_ = uint32_t(al);
  }

  std::unordered_set<std::string> names;  // no reserve: counts come from the file
  std::vector<size_t> info_at;             // offset of each tensor info, for layout messages
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    GgufTensorInfo t;
    std::string_view name = c.string("tensor name");
    if (name.empty()) c.fail("tensor #" + std::to_string(i) + " has an empty name", at);
    if (name.size() > kMaxTensorName)
      c.fail("tensor name " + quoted(name) + " is " + std::to_string(name.size()) + " bytes, expected at most " +
                 std::to_string(kMaxTensorName),
             at);
    t.name = std::string(name);
    const std::string ctx = "tensor " + quoted(name);
    if (!names.insert(t.name).second) c.fail("duplicate tensor name " + quoted(name), at);
    const size_t dims_at = c.pos();
    t.n_dims = uint32_t(c.uint(4, "tensor dimension count"));
    if (t.n_dims < 1 || t.n_dims > 4)
      c.fail(ctx + " has " + std::to_string(t.n_dims) + " dimensions, expected 1 to 4", dims_at);
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      const size_t ne_at = c.pos();
      t.ne[d] = int64_t(c.uint(8, "tensor shape"));
      if (t.ne[d] < 0) c.fail(ctx + " has dimension " + std::to_string(t.ne[d]) + ", expected >= 0", ne_at);
    }
    const size_t type_at = c.pos();
    const auto raw_type = uint32_t(c.uint(4, "tensor type"));
    const GgmlTypeInfo* info = ggml_type_info(raw_type);
    if (!info) c.fail(ctx + " has unsupported type " + std::to_string(int32_t(raw_type)), type_at);
    t.type = GgmlType(raw_type);
    if (uint64_t(t.ne[0]) % info->block != 0)
      c.fail(ctx + ": first dimension " + std::to_string(t.ne[0]) + " is not a multiple of the " + info->name +
                 " block size " + std::to_string(info->block),
             dims_at);
    if (!ggml_tensor_bytes(t.type, t.ne, t.n_dims, &t.n_bytes)) c.fail(ctx + ": byte size overflows", dims_at);
    info_at.push_back(c.pos());
    t.offset = c.uint(8, "tensor offset");
    tensors_.push_back(std::move(t));
  }

  if (!pad_ok(c.pos(), alignment_, &data_offset_)) c.fail("data offset overflows", c.pos());
  uint64_t running = 0;  // where the next tensor must start, relative to the data section
  for (size_t i = 0; i < tensors_.size(); ++i) {
    auto& t = tensors_[i];
    if (t.offset != running)
      c.fail("tensor " + quoted(t.name) + ": offset " + std::to_string(t.offset) + ", expected " +
                 std::to_string(running) + " (tensors must be aligned to " + std::to_string(alignment_) +
                 ", in order, without gaps or overlaps)",
             info_at[i]);
    uint64_t begin = 0, end = 0;
    const bool wraps = !add_ok(data_offset_, t.offset, &begin) || !add_ok(begin, t.n_bytes, &end);
    if (wraps || end > size_)
      c.fail("tensor " + quoted(t.name) + " extends past the end of the file (needs bytes up to " +
                 (wraps ? std::string("beyond 2^64") : std::to_string(end)) + ", file has " +
                 std::to_string(size_) + "; corrupted or incomplete download)",
             info_at[i]);
    t.data = data_ + begin;
    uint64_t next;
    if (!add_ok(t.offset, t.n_bytes, &next) || !pad_ok(next, alignment_, &running))
      c.fail("tensor " + quoted(t.name) + ": data size overflows", info_at[i]);
  }
  for (size_t i = 0; i < tensors_.size(); ++i) tensor_index_.emplace(tensors_[i].name, i);
  // Without tensors the data section is empty and may even be missing its padding.
  uint64_t data_end;
  if (!add_ok(data_offset_, running, &data_end)) c.fail("data section size overflows", c.pos());
  const uint64_t used = tensors_.empty() ? std::max<uint64_t>(c.pos(), std::min<uint64_t>(data_offset_, size_)) : data_end;
  if (size_ > used)
    warnings_.push_back(path_ + ": " + std::to_string(size_ - used) + " bytes after the tensor data were ignored");
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::type_error(std::string_view key, const GgufValue& v, const char* expected) const {
  std::string found = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) found += " of " + std::string(gguf_type_name(v.elem_type));
  throw FormatError(path_, "key '" + std::string(key) + "' has type " + found + ", expected " + expected);
}

const GgufValue& GgufFile::need(std::string_view key, GgufType type) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(path_, "missing key '" + std::string(key) + "'");
  if (v->type != type) type_error(key, *v, gguf_type_name(type));
  return *v;
}

// Integer value of any integer type, as a signed 128-bit number for range checks.
static bool integer_value(const GgufValue& v, __int128* out) {
  switch (v.type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: *out = v.bits; return true;
    case GgufType::I8: *out = int8_t(v.bits); return true;
    case GgufType::I16: *out = int16_t(v.bits); return true;
    case GgufType::I32: *out = int32_t(v.bits); return true;
    case GgufType::I64: *out = int64_t(v.bits); return true;
    default: return false;
  }
}

template <class T>
static T integer(const GgufFile& f, std::string_view key, const GgufValue* v, const char* name) {
  __int128 x;
  if (!integer_value(*v, &x))
    throw FormatError(f.path(), "key '" + std::string(key) + "' has type " + gguf_type_name(v->type) + ", expected " + name);
  if (x < __int128(std::numeric_limits<T>::min()) || x > __int128(std::numeric_limits<T>::max()))
    throw FormatError(f.path(), "key '" + std::string(key) + "' value " +
                                    (x < 0 ? "-" + std::to_string(uint64_t(-x)) : std::to_string(uint64_t(x))) +
                                    " does not fit " + name);
  return T(x);
}

uint32_t GgufFile::get_u32(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(path_, "missing key '" + std::string(key) + "'");
  return integer<uint32_t>(*this, key, v, "u32");
}
uint64_t GgufFile::get_u64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(path_, "missing key '" + std::string(key) + "'");
  return integer<uint64_t>(*this, key, v, "u64");
}
int32_t GgufFile::get_i32(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(path_, "missing key '" + std::string(key) + "'");
  return integer<int32_t>(*this, key, v, "i32");
}
float GgufFile::get_f32(std::string_view key) const {
  const GgufValue& v = need(key, GgufType::F32);
  float f;
  auto b = uint32_t(v.bits);
  std::memcpy(&f, &b, 4);
  return f;
}
bool GgufFile::get_bool(std::string_view key) const { return need(key, GgufType::BOOL).bits != 0; }
const std::string& GgufFile::get_string(std::string_view key) const { return need(key, GgufType::STRING).str; }

const std::vector<std::string>& GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = need(key, GgufType::ARRAY);
  if (v.elem_type != GgufType::STRING) type_error(key, v, "array of string");
  return v.strings;
}
std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue& v = need(key, GgufType::ARRAY);
  if (v.elem_type != GgufType::F32) type_error(key, v, "array of f32");
  std::vector<float> out(size_t(v.count));
  if (!out.empty()) std::memcpy(out.data(), v.str.data(), out.size() * 4);  // an empty vector's data() may be null
  return out;
}
std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue& v = need(key, GgufType::ARRAY);
  if (v.elem_type != GgufType::I32) type_error(key, v, "array of i32");
  std::vector<int32_t> out(size_t(v.count));
  if (!out.empty()) std::memcpy(out.data(), v.str.data(), out.size() * 4);
  return out;
}
std::string_view GgufFile::get_u8_array(std::string_view key) const {
  const GgufValue& v = need(key, GgufType::ARRAY);
  if (v.elem_type != GgufType::U8 && v.elem_type != GgufType::I8) type_error(key, v, "array of u8");
  return v.str;
}

std::optional<uint32_t> GgufFile::try_get_u32(std::string_view key) const {
  return has(key) ? std::optional(get_u32(key)) : std::nullopt;
}
std::optional<uint64_t> GgufFile::try_get_u64(std::string_view key) const {
  return has(key) ? std::optional(get_u64(key)) : std::nullopt;
}
std::optional<int32_t> GgufFile::try_get_i32(std::string_view key) const {
  return has(key) ? std::optional(get_i32(key)) : std::nullopt;
}
const std::vector<std::string>* GgufFile::try_get_string_array(std::string_view key) const {
  return has(key) ? &get_string_array(key) : nullptr;
}
std::optional<std::vector<float>> GgufFile::try_get_f32_array(std::string_view key) const {
  return has(key) ? std::optional(get_f32_array(key)) : std::nullopt;
}
std::optional<std::vector<int32_t>> GgufFile::try_get_i32_array(std::string_view key) const {
  return has(key) ? std::optional(get_i32_array(key)) : std::nullopt;
}
std::optional<float> GgufFile::try_get_f32(std::string_view key) const {
  return has(key) ? std::optional(get_f32(key)) : std::nullopt;
}
std::optional<bool> GgufFile::try_get_bool(std::string_view key) const {
  return has(key) ? std::optional(get_bool(key)) : std::nullopt;
}
std::optional<std::string> GgufFile::try_get_string(std::string_view key) const {
  return has(key) ? std::optional(get_string(key)) : std::nullopt;
}
std::optional<std::string_view> GgufFile::try_get_u8_array(std::string_view key) const {
  return has(key) ? std::optional(get_u8_array(key)) : std::nullopt;
}

void check_finite(const GgufFile& file, const GgufTensorInfo& t) {
  const uint64_t n = t.n_elements();
  // An all-ones exponent is Inf when the mantissa is zero and NaN otherwise.
  auto fail = [&](uint64_t i, bool nan, size_t elem_size) {
    throw FormatError(file.path(),
                      "tensor " + quoted(t.name) + " contains " + (nan ? "NaN" : "Inf") + " at element " +
                          std::to_string(i) + "; the model is corrupted or diverged in training",
                      int64_t(file.data_offset() + t.offset + i * elem_size));
  };
  if (t.type == GgmlType::F32) {
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t b;
      std::memcpy(&b, t.data + 4 * i, 4);
      if ((b & 0x7f800000u) == 0x7f800000u) fail(i, (b & 0x007fffffu) != 0, 4);
    }
  } else if (t.type == GgmlType::F16 || t.type == GgmlType::BF16) {
    const uint32_t exp = t.type == GgmlType::F16 ? 0x7c00u : 0x7f80u;
    for (uint64_t i = 0; i < n; ++i) {
      const uint32_t b = uint32_t(t.data[2 * i + 1]) << 8 | t.data[2 * i];
      if ((b & exp) == exp) fail(i, (b & (exp ^ 0x7fffu)) != 0, 2);
    }
  }
}

// ---- GgufWriter ----

void GgufWriter::set_value(std::string_view key, GgufValue v) {
  const std::string ctx = "GGUF key " + quoted(key);
  if (key.empty()) throw UsageError("GGUF key must not be empty");
  if (key.size() > kMaxString) throw UsageError(ctx + " is longer than 1 GiB");
  for (char ch : key)
    if (uint8_t(ch) < 0x20 || uint8_t(ch) > 0x7e) throw UsageError(ctx + " must be printable ASCII (0x20 to 0x7e)");
  if (uint32_t(v.type) > 12) throw UsageError(ctx + " has unknown type " + std::to_string(uint32_t(v.type)));
  if (v.type == GgufType::BOOL && v.bits > 1) throw UsageError(ctx + ": bool value must be 0 or 1");
  if (v.type == GgufType::STRING && v.str.size() > kMaxString) throw UsageError(ctx + ": string longer than 1 GiB");
  if (v.type == GgufType::ARRAY) {
    const auto e = uint32_t(v.elem_type);
    if (e > 12 || v.elem_type == GgufType::ARRAY) throw UsageError(ctx + ": array element type must be 0 to 12, not an array");
    if (v.count > kMaxArray) throw UsageError(ctx + ": array longer than 2^30 elements");
    if (v.elem_type == GgufType::STRING ? v.strings.size() != v.count : v.str.size() != v.count * scalar_size(e))
      throw UsageError(ctx + ": array count " + std::to_string(v.count) + " does not match its elements");
    if (v.elem_type == GgufType::BOOL)
      for (char b : v.str)
        if (uint8_t(b) > 1) throw UsageError(ctx + ": bool element must be 0 or 1");
  }
  if (key == kKeyAlignment && (v.type != GgufType::U32 || v.bits == 0 || (v.bits & (v.bits - 1)) != 0 || v.bits > kMaxAlignment))
    throw UsageError("general.alignment must be a u32 power of two from 1 to " + std::to_string(kMaxAlignment));
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(std::string(key), std::move(v));
}

static GgufValue scalar(GgufType t, uint64_t bits) {
  GgufValue v;
  v.type = t;
  v.bits = bits;
  return v;
}
static GgufValue numeric_array(GgufType elem, const void* data, size_t count, size_t elem_size) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.count = count;
  if (count > 0) v.str.assign(static_cast<const char*>(data), count * elem_size);  // data may be null when empty
  return v;
}

void GgufWriter::set_u8(std::string_view k, uint8_t x) { set_value(k, scalar(GgufType::U8, x)); }
void GgufWriter::set_u32(std::string_view k, uint32_t x) { set_value(k, scalar(GgufType::U32, x)); }
void GgufWriter::set_i32(std::string_view k, int32_t x) { set_value(k, scalar(GgufType::I32, uint32_t(x))); }
void GgufWriter::set_u64(std::string_view k, uint64_t x) { set_value(k, scalar(GgufType::U64, x)); }
void GgufWriter::set_f32(std::string_view k, float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  set_value(k, scalar(GgufType::F32, b));
}
void GgufWriter::set_bool(std::string_view k, bool x) { set_value(k, scalar(GgufType::BOOL, x ? 1 : 0)); }
void GgufWriter::set_string(std::string_view k, std::string_view x) {
  GgufValue v;
  v.type = GgufType::STRING;
  v.str = std::string(x);
  set_value(k, std::move(v));
}
void GgufWriter::set_array_string(std::string_view k, const std::vector<std::string>& x) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = GgufType::STRING;
  v.count = x.size();
  v.strings = x;
  set_value(k, std::move(v));
}
void GgufWriter::set_array_f32(std::string_view k, const std::vector<float>& x) {
  set_value(k, numeric_array(GgufType::F32, x.data(), x.size(), 4));
}
void GgufWriter::set_array_i32(std::string_view k, const std::vector<int32_t>& x) {
  set_value(k, numeric_array(GgufType::I32, x.data(), x.size(), 4));
}
void GgufWriter::set_array_u8(std::string_view k, std::string_view bytes) {
  set_value(k, numeric_array(GgufType::U8, bytes.data(), bytes.size(), 1));
}

void GgufWriter::add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne, const void* data) {
  if (name.empty() || name.size() > kMaxTensorName)
    throw UsageError("tensor name " + quoted(name) + " must be 1 to " + std::to_string(kMaxTensorName) + " bytes");
  for (const auto& t : tensors_)
    if (t.name == name) throw UsageError("duplicate tensor name " + quoted(name));
  uint64_t bytes;
  if (ne.empty() || ne.size() > 4 || !ggml_tensor_bytes(type, ne.data(), uint32_t(ne.size()), &bytes))
    throw UsageError("tensor " + quoted(name) + ": shape does not fit type " +
                     (ggml_type_info(uint32_t(type)) ? ggml_type_info(type).name : "?"));
  if (!data && bytes != 0) throw UsageError("tensor " + quoted(name) + ": data is null");
  tensors_.push_back({std::string(name), type, ne, bytes, data, false});
}

void GgufWriter::add_tensor_deferred(std::string_view name, GgmlType type, const std::vector<int64_t>& ne) {
  static const char kNoData = 0;
  add_tensor(name, type, ne, &kNoData);
  tensors_.back().data = nullptr;
  tensors_.back().deferred = true;
}

uint32_t GgufWriter::alignment() const {
  for (const auto& [k, v] : kv_)
    if (k == kKeyAlignment && v.type == GgufType::U32) return uint32_t(v.bits);
  return kGgufDefaultAlignment;
}

static void put(std::string& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out += char(uint8_t(v >> (8 * i)));
}
static void put_string(std::string& out, std::string_view s) {
  put(out, s.size(), 8);
  out.append(s);
}

std::string GgufWriter::header_bytes() const {
  std::string h;
  h.append("GGUF");
  put(h, kGgufVersion, 4);
  put(h, tensors_.size(), 8);
  put(h, kv_.size(), 8);
  for (const auto& [key, v] : kv_) {
    put_string(h, key);
    put(h, uint32_t(v.type), 4);
    if (v.type == GgufType::STRING) {
      put_string(h, v.str);
    } else if (v.type == GgufType::ARRAY) {
      put(h, uint32_t(v.elem_type), 4);
      put(h, v.count, 8);
      if (v.elem_type == GgufType::STRING)
        for (const auto& s : v.strings) put_string(h, s);
      else
        h.append(v.str);
    } else {
      put(h, v.bits, scalar_size(uint32_t(v.type)));
    }
  }
  const uint64_t align = alignment();
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(h, t.name);
    put(h, t.ne.size(), 4);
    for (int64_t d : t.ne) put(h, uint64_t(d), 8);
    put(h, uint32_t(t.type), 4);
    put(h, offset, 8);
    offset = (offset + t.n_bytes + align - 1) & ~(align - 1);
  }
  h.resize((h.size() + align - 1) & ~(align - 1), '\0');
  return h;
}

uint64_t GgufWriter::file_size() const {
  const uint64_t align = alignment();
  uint64_t size = header_bytes().size();
  for (const auto& t : tensors_) size += (t.n_bytes + align - 1) & ~(align - 1);
  return size;
}

void GgufWriter::write(OutputFile& out, const std::function<void(size_t i, uint8_t* dst)>& fill) const {
  const uint64_t align = alignment();
  out.write(header_bytes());
  static const char zeros[kMaxAlignment] = {};
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (t.deferred) {
      LM_ASSERT(fill);
      buffer.resize(size_t(t.n_bytes));
      fill(i, buffer.data());
      out.write(buffer.data(), buffer.size());
    } else {
      out.write(t.data, size_t(t.n_bytes));
    }
    out.write(zeros, size_t(((t.n_bytes + align - 1) & ~(align - 1)) - t.n_bytes));
  }
}

void GgufWriter::save(const std::string& path) const {
  OutputFile out(path);
  write(out);
  out.commit();
}

}  // namespace lm::format
