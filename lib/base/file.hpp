// Checked file I/O: whole-file reads, read-only mappings, a line reader, and atomic outputs
// (temp file in the target directory, fsync, rename). Parsing of file bytes lives in lib/format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lm {

class FormatError;

// "-" names stdin for inputs and stdout for outputs.
inline bool is_std_stream(const std::string& path) { return path.empty() || path == "-"; }
// Display name for messages: "<stdin>"/"<stdout>" for "-", else the path.
std::string display_name(const std::string& path, bool output = false);

// Reads a whole file (or stdin for "-") into memory. Throws IoError; FormatError if it is a directory.
std::string load_file(const std::string& path);

// True if both paths name the same existing file (same device and inode). Never throws.
bool same_file(const std::string& a, const std::string& b);

// A read-only view of a whole file: mmap for regular files, a heap copy for stdin and pipes.
// The bytes stay valid until the object is destroyed. Move-only.
class MappedFile {
 public:
  // What a MappedFile accepts. Any: also stdin, pipes and devices, read into memory. Regular:
  // only a regular file (stdin too when it is redirected from one): for models and tokenizers,
  // where a device such as /dev/zero or a FIFO would be read until memory runs out. The check
  // comes before anything is read, and opening a FIFO does not wait for a writer.
  enum class Accept { Any, Regular };
  MappedFile() = default;
  // Throws IoError (cannot open, EACCES, directory); FormatError for a file that is not regular
  // with Accept::Regular.
  explicit MappedFile(const std::string& path, Accept accept = Accept::Any);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

 private:
  void reset() noexcept;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string heap_;  // used instead of a mapping for stdin and non-regular files
};

// Buffered line reader over a file descriptor; keeps NUL bytes, handles EINTR and short reads.
// Every tool that reads text line by line reads through it, so its line-length limit is the one
// limit on a line of input text: memory stays bounded by it whatever the input.
class LineReader {
 public:
  // Opens `path` ("-" = stdin). Throws IoError. `max_line` caps a single line: a longer one throws
  // FormatError naming the file, the line number and the limit, after reading at most max_line
  // bytes of it (plus one read).
  explicit LineReader(const std::string& path, size_t max_line = kDefaultMaxLine);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line without its '\n' (a trailing '\r' is kept); a UTF-8 byte order mark at
  // the start of the input is dropped. Returns false at end of input.
  // `had_newline` tells whether the line ended with '\n' (false only for a last unterminated line).
  bool next(std::string& line, bool* had_newline = nullptr);
  const std::string& path() const { return path_; }
  uint64_t line_number() const { return line_no_; }

  // The documented limit (README, man pages): 1 MiB, far above a line of real text. It bounds
  // memory where it matters: the SentencePiece encoder needs about 230 bytes per byte of a line
  // (a 4 MB line took 930 MB), so the 64 MiB this once was let one line take 15 GB.
  static constexpr size_t kDefaultMaxLine = size_t{1} << 20;

 private:
  bool fill();
  [[noreturn]] void too_long() const;
  std::string path_;
  int fd_ = -1;
  bool own_fd_ = false;
  size_t max_line_;
  std::string buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t line_no_ = 0;
};

// The error for line `line_no` (1-based) of `name` being longer than max_line bytes, as
// LineReader reports it; for readers that split a mapped file into lines themselves.
FormatError line_too_long(const std::string& name, uint64_t line_no, size_t max_line);

// Buffered output with every error checked. For a path, bytes go to a temp file beside the
// target ("<dir>/.<name>.<pid>.XXXXXX.tmp", <pid> the writer's process id), created at construction (so an unwritable target fails
// before any work); commit() flushes, fsyncs and renames it into place. Destroying an
// uncommitted output unlinks the temp file, so a failed run never leaves a partial file.
// For "-" bytes go to stdout, and for an existing device or FIFO (/dev/null, a named pipe)
// straight to it; there commit() only flushes. Through a symlink, the file it names is replaced.
class OutputFile {
 public:
  // How a regular file is written: Atomic through a temp file (the default), or Direct into the
  // file itself, for logs that readers follow while they grow (e.g. a metrics file).
  enum class Mode { Atomic, Direct };
  // Throws IoError (directory missing or read-only, path is a directory).
  explicit OutputFile(const std::string& path, size_t buffer_bytes = size_t{1} << 20, Mode mode = Mode::Atomic);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void put(char c) {
    if (len_ == buf_.size()) flush();
    buf_[len_++] = c;
  }
  // Writes everything buffered so far. Throws IoError (ENOSPC, EBADF, EIO...).
  void flush();
  // Overwrites bytes already written at `offset` (e.g. a header). Only when seekable().
  void write_at(uint64_t offset, const void* data, size_t n);
  bool seekable() const { return seekable_; }
  uint64_t bytes_written() const { return written_ + len_; }
  // Makes the output final: see the class comment. Throws IoError.
  void commit();
  const std::string& path() const { return path_; }
  // The temp file being written (Atomic mode, before commit()), e.g. to read back what was
  // written after flush(); empty for stdout, devices and Direct mode.
  const std::string& temp_path() const { return tmp_path_; }

 private:
  std::string path_, target_, tmp_path_;
  int fd_ = -1;
  bool is_stdout_ = false, seekable_ = false, committed_ = false;
  std::string buf_;
  size_t len_ = 0;
  uint64_t written_ = 0;
};

// Removes the temp files an OutputFile for `path` leaves when its process dies before commit,
// so that a crash does not leave them for good (docs/reliability.md E7): every ".NAME.<pid>.XXXXXX.tmp" beside the
// target whose writer <pid> is not a live process (kill(pid, 0) fails with ESRCH), whatever
// its age; and every ".NAME.XXXXXX.tmp" (named before the pid was part of the name) not written
// to for min_age_s seconds. A temp file whose pid is alive (a save in progress, or a pid reused
// since) is kept. A writer in another pid namespace or on another machine sharing the
// directory would look dead: runs that share an output directory must share a pid namespace.
// Returns how many it removed. Never throws.
size_t remove_stale_temps(const std::string& path, double min_age_s = 60);

}  // namespace lm
