// Safetensors reader (lib/format/safetensors.*): the input as a .safetensors file, every tensor
// found by name and converted to float; then, if it starts with '{', as a model.safetensors.index.json
// in a directory that holds two valid shards (s1.safetensors: a, b; s2.safetensors: c), opened
// as SafetensorsModel opens a Hugging Face model directory.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "format/safetensors.hpp"
#include "fuzz_util.hpp"

using namespace lm;

namespace {

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(v >> (8 * i));
  return s;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) std::abort();
}

// The directory, made once per process and removed at exit.
const std::string& model_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lm-fuzz-safetensors-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    const std::string s1 = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}})";
    const std::string s2 = R"({"c":{"dtype":"F16","shape":[],"data_offsets":[0,2]}})";
    write(tmpl + "/s1.safetensors", u64le(s1.size()) + s1 + std::string(12, '\x3f'));
    write(tmpl + "/s2.safetensors", u64le(s2.size()) + s2 + std::string(2, '\x3c'));
    static std::string remove = tmpl;
    std::atexit([] {
      ::unlink((remove + "/s1.safetensors").c_str());
      ::unlink((remove + "/s2.safetensors").c_str());
      ::unlink((remove + "/model.safetensors.index.json").c_str());
      ::rmdir(remove.c_str());
    });
    return tmpl;
  }();
  return dir;
}

void convert_all(const std::vector<const format::SafetensorsTensor*>& tensors) {
  std::vector<float> buf;
  for (const format::SafetensorsTensor* t : tensors) {
    if (!format::safetensors_to_float_supported(t->dtype)) {
      fuzz::check([&] { format::safetensors_to_float(*t, 0, 0, buf.data()); });
      continue;
    }
    buf.resize(t->elements);  // elements <= bytes: bounded by the input
    format::safetensors_to_float(*t, buf.data());
    if (t->elements > 1) format::safetensors_to_float(*t, t->elements / 2, t->elements - t->elements / 2, buf.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  fuzz::check([&] {
    format::SafetensorsFile f = format::SafetensorsFile::from_bytes(bytes, "fuzz.safetensors");
    std::vector<const format::SafetensorsTensor*> all;
    for (const format::SafetensorsTensor& t : f.tensors()) {
      if (f.find(t.name) != &t) std::abort();
      if (t.offset < f.data_offset() || t.offset + t.bytes > size) std::abort();
      all.push_back(&t);
    }
    convert_all(all);
    for (const auto& [k, v] : f.metadata()) (void)(k.size() + v.size());
  });
  // Only inputs that start like a JSON object go through the index: writing the file and
  // opening the shards for every input would slow the target tenfold.
  if (size == 0 || data[0] != '{') return 0;
  const std::string& dir = model_dir();
  write(dir + "/model.safetensors.index.json", bytes);
  fuzz::check([&] {
    format::SafetensorsModel m = format::SafetensorsModel::open(dir);
    for (const format::SafetensorsTensor* t : m.tensors()) {
      if (m.find(t->name) != t) std::abort();
      (void)m.file_of(*t);
    }
    convert_all(m.tensors());
  });
  return 0;
}
