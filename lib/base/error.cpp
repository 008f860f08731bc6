// Message formatting for the lm::Error family.
#include "base/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lm {

static std::string with_path(const std::string& path, const std::string& what) {
  return path.empty() ? what : path + ": " + what;
}

FormatError::FormatError(const std::string& path, const std::string& what, int64_t offset)
    : Error(with_path(path, offset >= 0 ? what + " (at byte " + std::to_string(offset) + ")" : what)),
      path_(path),
      offset_(offset) {}

IoError::IoError(const std::string& path, const std::string& what, int errno_value)
    : Error(with_path(path, what + ": " + std::strerror(errno_value))), path_(path), errno_(errno_value) {}

ResourceError::ResourceError(const std::string& what, uint64_t bytes_needed)
    : Error(what + " (" + std::to_string(bytes_needed) + " bytes needed)"), bytes_(bytes_needed) {}

void assert_fail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "lm: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace lm
