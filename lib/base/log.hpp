// The stderr logger handed to library functions: the library's only way to talk while it works.
// Warnings and info lines carry the tool's name ("lm-tokenize: warning: ...").
#pragma once

#include <cstdarg>
#include <string>

namespace lm {

class Logger {
 public:
  enum class Level { Quiet = 0, Normal = 1, Verbose = 2 };
  explicit Logger(std::string prefix = "lm", Level level = Level::Normal)
      : prefix_(std::move(prefix)), level_(level) {}
  void set_level(Level l) { level_ = l; }
  Level level() const { return level_; }
  // Printed unless quiet: "prefix: warning: ...".
  void warn(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  // Printed unless quiet: "prefix: ...".
  void info(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  // Printed only when verbose.
  void debug(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  const std::string& prefix() const { return prefix_; }

 private:
  void emit(const char* tag, const char* fmt, va_list ap) const;
  std::string prefix_;
  Level level_;
};

}  // namespace lm
