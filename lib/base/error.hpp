// lm::Error and its family: the only way the library reports failure (docs/reliability.md, errors).
// Messages read "<file>: <what failed>, <value found>, expected <what>; <how to fix>";
// tools prefix them with "lm-<tool>: " and never add anything else.
#pragma once

#include <cstdint>
#include <exception>
#include <string>

namespace lm {

// Root of every exception the library throws. what() is the full one-line message.
class Error : public std::exception {
 public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  // Appends context while unwinding, e.g. e.add_context("while reading tensor 'x'").
  void add_context(const std::string& context) { message_ += ", " + context; }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

// An option value or combination of options is invalid. Tools exit 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// Bad bytes in a file: the message names the file, and the offset and field where known.
class FormatError : public Error {
 public:
  // `path` may be empty for in-memory data; offset < 0 means unknown.
  FormatError(const std::string& path, const std::string& what, int64_t offset = -1);
  const std::string& path() const { return path_; }
  int64_t offset() const { return offset_; }

 private:
  std::string path_;
  int64_t offset_;
};

// A system call failed: carries the path and strerror(errno_value).
class IoError : public Error {
 public:
  IoError(const std::string& path, const std::string& what, int errno_value);
  const std::string& path() const { return path_; }
  int errno_value() const { return errno_; }

 private:
  std::string path_;
  int errno_;
};

// Not enough memory or disk: carries the number of bytes needed.
class ResourceError : public Error {
 public:
  ResourceError(const std::string& what, uint64_t bytes_needed);
  uint64_t bytes_needed() const { return bytes_; }

 private:
  uint64_t bytes_;
};

// Internal invariant check: aborts with file:line. Only for conditions no input can reach.
[[noreturn]] void assert_fail(const char* expr, const char* file, int line);
#define LM_ASSERT(x) ((x) ? (void)0 : ::lm::assert_fail(#x, __FILE__, __LINE__))

}  // namespace lm
