// Logger: formats one line per call on stderr.
#include "base/log.hpp"

#include <cstdio>

namespace lm {

void Logger::emit(const char* tag, const char* fmt, va_list ap) const {
  char msg[2048];
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  std::fprintf(stderr, "%s: %s%s\n", prefix_.c_str(), tag, msg);
}

#define LM_LOG_BODY(min_level, tag)       \
  if (level_ < (min_level)) return;       \
  va_list ap;                             \
  va_start(ap, fmt);                      \
  emit(tag, fmt, ap);                     \
  va_end(ap)

void Logger::warn(const char* fmt, ...) const { LM_LOG_BODY(Level::Normal, "warning: "); }
void Logger::info(const char* fmt, ...) const { LM_LOG_BODY(Level::Normal, ""); }
void Logger::debug(const char* fmt, ...) const { LM_LOG_BODY(Level::Verbose, ""); }

#undef LM_LOG_BODY

}  // namespace lm
