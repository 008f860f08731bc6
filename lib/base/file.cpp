// Checked file I/O for lm: every read, write, fsync and rename is checked and reported with the path.
#include "base/file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <utility>

#include "base/error.hpp"

namespace lm {

std::string display_name(const std::string& path, bool output) {
  if (is_std_stream(path)) return output ? "<stdout>" : "<stdin>";
  return path;
}

static const char* file_kind(mode_t m) {
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a pipe (FIFO)";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// Opens an input; with regular_only, refuses anything but a regular file before reading a byte
// (O_NONBLOCK: opening a FIFO without a writer would otherwise wait for one).
static int open_input(const std::string& path, bool regular_only = false) {
  int fd = STDIN_FILENO;
  if (!is_std_stream(path)) {
    do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (regular_only ? O_NONBLOCK : 0));
    while (fd < 0 && errno == EINTR);
    if (fd < 0) throw IoError(path, "cannot open", errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return fd;  // reading will report the error
  auto fail = [&](auto&& error) {
    if (fd != STDIN_FILENO) ::close(fd);
    throw error;
  };
  if (S_ISDIR(st.st_mode)) fail(IoError(display_name(path), "cannot read", EISDIR));
  if (regular_only && !S_ISREG(st.st_mode))
    fail(FormatError(display_name(path), std::string("is ") + file_kind(st.st_mode) +
                                             ", not a regular file; models and tokenizers are read from files"));
  if (regular_only && fd != STDIN_FILENO) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

static void read_all(int fd, const std::string& path, std::string& out) {
  char chunk[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, chunk, sizeof chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw IoError(display_name(path), "read error", errno);
    }
    if (r == 0) break;
    out.append(chunk, size_t(r));
  }
}

std::string load_file(const std::string& path) {
  int fd = open_input(path);
  std::string out;
  try {
    read_all(fd, path, out);
  } catch (...) {
    if (fd != STDIN_FILENO) ::close(fd);
    throw;
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return out;
}

bool same_file(const std::string& a, const std::string& b) {
  if (is_std_stream(a) || is_std_stream(b)) return false;
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// ---- MappedFile ----

MappedFile::MappedFile(const std::string& path, Accept accept) : path_(display_name(path)) {
  int fd = open_input(path, accept == Accept::Regular);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    if (fd != STDIN_FILENO) ::close(fd);
    throw IoError(path_, "cannot stat", e);
  }
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    if (fd != STDIN_FILENO) ::close(fd);
    if (p == MAP_FAILED) throw IoError(path_, "cannot map", e);
    data_ = static_cast<const uint8_t*>(p);
    size_ = size_t(st.st_size);
    mapped_ = true;
    return;
  }
  try {
    read_all(fd, path, heap_);
  } catch (...) {
    if (fd != STDIN_FILENO) ::close(fd);
    throw;
  }
  if (fd != STDIN_FILENO) ::close(fd);
  data_ = reinterpret_cast<const uint8_t*>(heap_.data());
  size_ = heap_.size();
}

void MappedFile::reset() noexcept {
  if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
  heap_.clear();
}

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this == &o) return *this;
  reset();
  path_ = std::move(o.path_);
  mapped_ = o.mapped_;
  size_ = o.size_;
  if (mapped_) {
    data_ = o.data_;
  } else {
    heap_ = std::move(o.heap_);
    data_ = reinterpret_cast<const uint8_t*>(heap_.data());
  }
  o.data_ = nullptr;
  o.size_ = 0;
  o.mapped_ = false;
  return *this;
}

// ---- LineReader ----

LineReader::LineReader(const std::string& path, size_t max_line)
    : path_(display_name(path)), max_line_(max_line) {
  fd_ = open_input(path);
  own_fd_ = fd_ != STDIN_FILENO;
  buf_.resize(size_t{1} << 16);
}

LineReader::~LineReader() {
  if (own_fd_) ::close(fd_);
}

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {  // compact: keep the unread tail at the front
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
  for (;;) {
    ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "read error", errno);
    }
    if (r == 0) {
      eof_ = true;
      return false;
    }
    end_ += size_t(r);
    return true;
  }
}

// A UTF-8 byte order mark, which some editors put at the start of a text file, is not text.
static void drop_bom(std::string& line) {
  if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
}

FormatError line_too_long(const std::string& name, uint64_t line_no, size_t max_line) {
  const std::string limit = max_line % (size_t{1} << 20) == 0 ? std::to_string(max_line >> 20) + " MiB"
                                                             : std::to_string(max_line) + " bytes";
  return FormatError(name, "line " + std::to_string(line_no) + " is longer than " + limit +
                               ", the maximum line length; split the input into shorter lines");
}

void LineReader::too_long() const { throw line_too_long(path_, line_no_ + 1, max_line_); }

bool LineReader::next(std::string& line, bool* had_newline) {
  size_t scan = pos_;
  for (;;) {
    const void* nl = std::memchr(buf_.data() + scan, '\n', end_ - scan);
    if (nl) {
      size_t at = size_t(static_cast<const char*>(nl) - buf_.data());
      if (at - pos_ > max_line_) too_long();  // a long line that came in one read
      line.assign(buf_.data() + pos_, at - pos_);
      pos_ = at + 1;
      if (++line_no_ == 1) drop_bom(line);
      if (had_newline) *had_newline = true;
      return true;
    }
    if (end_ - pos_ > max_line_) too_long();
    size_t seen = end_ - pos_;
    if (!fill()) {
      if (end_ == pos_) return false;
      line.assign(buf_.data() + pos_, end_ - pos_);
      pos_ = end_;
      if (++line_no_ == 1) drop_bom(line);
      if (had_newline) *had_newline = false;
      return true;
    }
    scan = pos_ + seen;
  }
}

// ---- OutputFile ----

static void write_fully(int fd, const char* p, size_t n, const std::string& name) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError(name, "write error", errno);
    }
    p += w;
    n -= size_t(w);
  }
}

// Where an OutputFile for `path` puts its temp file: beside the file it replaces (through a
// symlink, the file the link names), named prefix + the writer's pid + "." + six mkstemps
// characters + ".tmp" (".m.gguf.4242.AbC123.tmp"), so that a later run can tell whether the
// process that wrote a temp file is still alive. Before the pid was in the name the suffix was
// the six characters alone (".m.gguf.AbC123.tmp").
struct TempPlace {
  std::string target, dir, prefix;  // dir is empty or ends with '/'; prefix is ".NAME."
};
static TempPlace temp_place(const std::string& path) {
  TempPlace t{path, {}, {}};
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    t.target = real;
    std::free(real);
  }
  const size_t slash = t.target.rfind('/');
  if (slash != std::string::npos) t.dir = t.target.substr(0, slash + 1);
  t.prefix.assign(1, '.');
  t.prefix.append(t.target, slash == std::string::npos ? 0 : slash + 1).push_back('.');
  return t;
}

OutputFile::OutputFile(const std::string& path, size_t buffer_bytes, Mode mode) : path_(display_name(path, true)) {
  buf_.resize(buffer_bytes);
  struct stat st;
  if (is_std_stream(path)) {
    is_stdout_ = true;
    fd_ = STDOUT_FILENO;
    seekable_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && ::lseek(fd_, 0, SEEK_CUR) == 0;
    return;
  }
  if (mode == Mode::Direct) {
    do fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) throw IoError(path, "cannot create output", errno);
    is_stdout_ = true;  // no temp file: commit() only flushes
    return;
  }
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw IoError(path, "cannot write output", EISDIR);
    if (!S_ISREG(st.st_mode)) {
      // A device or FIFO (/dev/null, /dev/stdout, a named pipe): write to it as it is. Renaming a
      // temp file over it would replace the device node itself.
      do fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      while (fd_ < 0 && errno == EINTR);
      if (fd_ < 0) throw IoError(path, "cannot open output", errno);
      is_stdout_ = true;  // same life cycle as stdout: no temp file, commit() only flushes
      return;
    }
  }
  const TempPlace place = temp_place(path);
  target_ = place.target;
  tmp_path_ = place.dir + place.prefix + std::to_string(::getpid()) + ".XXXXXX.tmp";
  fd_ = ::mkstemps(tmp_path_.data(), 4);
  if (fd_ < 0) throw IoError(path, "cannot create output", errno);
  ::fchmod(fd_, 0644 & ~[] { mode_t m = ::umask(0); ::umask(m); return m; }());
  seekable_ = true;
}

namespace {

// What a name after its temp prefix says about its writer.
enum class TempKind { NotOurs, DeadWriter, LiveWriter, NoPid };

bool is_temp_char(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// rest: a name without its prefix: "PID.XXXXXX.tmp" (the writer's pid), or "XXXXXX.tmp" (a
// temp file named before the pid was part of the name).
TempKind temp_kind(std::string_view rest) {
  if (rest.size() < 10 || !rest.ends_with(".tmp")) return TempKind::NotOurs;
  const std::string_view chars = rest.substr(rest.size() - 10, 6);
  if (!std::all_of(chars.begin(), chars.end(), is_temp_char)) return TempKind::NotOurs;
  if (rest.size() == 10) return TempKind::NoPid;
  const std::string_view pid_text = rest.substr(0, rest.size() - 10);
  if (pid_text.size() < 2 || pid_text.size() > 11 || pid_text.back() != '.') return TempKind::NotOurs;
  long long pid = 0;
  for (char c : pid_text.substr(0, pid_text.size() - 1)) {
    if (c < '0' || c > '9') return TempKind::NotOurs;
    pid = pid * 10 + (c - '0');
  }
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return TempKind::NotOurs;
  // EPERM: a live process of another user. Only ESRCH says that no process has this pid.
  return ::kill(pid_t(pid), 0) != 0 && errno == ESRCH ? TempKind::DeadWriter : TempKind::LiveWriter;
}

}  // namespace

size_t remove_stale_temps(const std::string& path, double min_age_s) {
  const TempPlace place = temp_place(path);
  DIR* d = ::opendir(place.dir.empty() ? "." : place.dir.c_str());
  if (!d) return 0;
  size_t removed = 0;
  const time_t now = ::time(nullptr);
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!name.starts_with(place.prefix)) continue;
    const TempKind kind = temp_kind(std::string_view(name).substr(place.prefix.size()));
    if (kind == TempKind::NotOurs || kind == TempKind::LiveWriter) continue;
    const std::string full = place.dir + name;
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (kind == TempKind::NoPid && double(now - st.st_mtime) < min_age_s) continue;
    if (::unlink(full.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

OutputFile::~OutputFile() {
  if (is_stdout_) {
    if (fd_ != STDOUT_FILENO) ::close(fd_);
    return;
  }
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_path_.c_str());
}

void OutputFile::write(const void* data, size_t n) {
  if (n == 0) return;  // data may be null for an empty range
  const char* p = static_cast<const char*>(data);
  if (len_ + n > buf_.size()) {
    flush();
    if (n >= buf_.size()) {
      write_fully(fd_, p, n, path_);
      written_ += n;
      return;
    }
  }
  std::memcpy(buf_.data() + len_, p, n);
  len_ += n;
}

void OutputFile::flush() {
  if (len_ == 0) return;
  size_t n = len_;
  len_ = 0;  // even on error: the bytes are lost, and a retry must not duplicate them
  write_fully(fd_, buf_.data(), n, path_);
  written_ += n;
}

void OutputFile::write_at(uint64_t offset, const void* data, size_t n) {
  LM_ASSERT(seekable_);
  flush();
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, n, off_t(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "write error", errno);
    }
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

void OutputFile::commit() {
  flush();
  if (is_stdout_) {
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0) throw IoError(path_, "cannot sync output", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw IoError(path_, "cannot close output", errno);
  if (::rename(tmp_path_.c_str(), target_.c_str()) != 0) throw IoError(path_, "cannot rename temp file into place", errno);
  committed_ = true;
  size_t slash = target_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : target_.substr(0, slash == 0 ? 1 : slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // make the rename durable; a failure here cannot undo it, so it is not reported
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace lm
