// Status and progress lines on a terminal.
#include "common/progress.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/file.hpp"

namespace lm::tools {

uint64_t total_file_bytes(const std::vector<std::string>& paths) {
  uint64_t total = 0;
  for (const std::string& p : paths) {
    struct stat st{};
    const int rc = is_std_stream(p) ? ::fstat(STDIN_FILENO, &st) : ::stat(p.c_str(), &st);
    if (rc != 0 || !S_ISREG(st.st_mode)) return 0;
    total += uint64_t(st.st_size);
  }
  return total;
}

bool reads_terminal(const std::vector<std::string>& paths) {
  for (const std::string& p : paths)
    if (is_std_stream(p) && isatty(STDIN_FILENO)) return true;
  return false;
}

std::string human_time(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 5400) std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof buf, "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

StatusLine::StatusLine(const Logger& log, bool wanted)
    : enabled_(wanted && isatty(STDERR_FILENO) && log.level() != Logger::Level::Quiet) {}

void StatusLine::show(const std::string& text) {
  if (!enabled_) return;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void StatusLine::keep() {
  if (!shown_) return;
  std::fputc('\n', stderr);
  shown_ = false;
}

void StatusLine::clear() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

Progress::Progress(const Logger& log, std::string label, uint64_t total, Unit unit, std::string count_name,
                   std::string rate_name, bool wanted)
    : line_(log, wanted), label_(std::move(label)), count_name_(std::move(count_name)),
      rate_name_(std::move(rate_name)), total_(total), unit_(unit), start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::update(uint64_t done, uint64_t items) {
  if (!line_.enabled()) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  drawn_ = true;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  // Bytes in KiB, MiB or GiB, as the total (or what is done, when the total is unknown) suits.
  const double scale_of = double(total_ ? total_ : done);
  const double scale = scale_of >= double(1 << 30) ? double(1 << 30) : scale_of >= double(1 << 20) ? double(1 << 20) : 1024.0;
  const char* scale_name = scale == double(1 << 30) ? "GiB" : scale == double(1 << 20) ? "MiB" : "KiB";
  auto amount = [&](uint64_t n, bool with_unit) {
    char b[48];
    if (unit_ == Unit::Bytes)
      std::snprintf(b, sizeof b, scale == 1024.0 ? "%.0f%s%s" : "%.1f%s%s", double(n) / scale, with_unit ? " " : "",
                    with_unit ? scale_name : "");
    else std::snprintf(b, sizeof b, "%llu%s%s", (unsigned long long)n, with_unit ? " " : "", with_unit ? count_name_.c_str() : "");
    return std::string(b);
  };
  std::string text = label_ + ": ";
  if (total_ > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, " (%.0f%%)", 100.0 * double(std::min(done, total_)) / double(total_));
    text += amount(done, false) + "/" + amount(total_, true) + pct;
  } else {
    text += amount(done, true);
  }
  if (rate_name_.empty()) items = done;
  if (elapsed > 0.2 && items > 0) {
    char rate[64];
    if (!rate_name_.empty())
      std::snprintf(rate, sizeof rate, ", %.0f %s/s", double(items) / elapsed, rate_name_.c_str());
    else if (unit_ == Unit::Bytes)
      std::snprintf(rate, sizeof rate, ", %.1f MiB/s", double(items) / elapsed / (1 << 20));
    else
      std::snprintf(rate, sizeof rate, ", %.0f %s/s", double(items) / elapsed, count_name_.c_str());
    text += rate;
    if (total_ > done && done > 0) text += ", ETA " + human_time(elapsed * double(total_ - done) / double(done));
  }
  line_.show(text);
}

}  // namespace lm::tools
