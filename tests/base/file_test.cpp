// Tests for lib/base/file: atomic outputs, line reading, mapping.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/error.hpp"
#include "base/file.hpp"
#include "test_util.hpp"

using namespace lm;

TEST_CASE("OutputFile commits atomically and leaves nothing behind on failure") {
  test::TempDir dir;
  std::string path = dir.path() + "/out.bin";
  {
    OutputFile out(path);
    out.write("hello");
    CHECK(test::list_dir(dir.path()).size() == 1);  // only the temp file
    CHECK_FALSE(test::exists(path));
    out.commit();
  }
  CHECK(load_file(path) == "hello");
  CHECK(test::list_dir(dir.path()).size() == 1);
  {
    OutputFile out(path);
    out.write("partial");
    // destroyed without commit: the old file stays, the temp file is removed
  }
  CHECK(load_file(path) == "hello");
  CHECK(test::list_dir(dir.path()).size() == 1);
}

TEST_CASE("OutputFile write_at patches a header") {
  test::TempDir dir;
  std::string path = dir.path() + "/h.bin";
  OutputFile out(path, 4);
  out.write("xxxx-body-that-is-longer-than-the-buffer");
  out.write_at(0, "HEAD", 4);
  out.commit();
  CHECK(load_file(path) == "HEAD-body-that-is-longer-than-the-buffer");
}

TEST_CASE("OutputFile reports a missing directory and a directory target before any work") {
  test::TempDir dir;
  CHECK_THROWS_AS(OutputFile(dir.path() + "/no/such/dir/x"), IoError);
  CHECK_THROWS_AS(OutputFile(dir.path()), IoError);
}

TEST_CASE("OutputFile to a full device reports ENOSPC") {
  // Point fd 1 at /dev/full for the duration of the test, then restore it.
  int saved = dup(1);
  int full = open("/dev/full", O_WRONLY);
  REQUIRE(full >= 0);
  dup2(full, 1);
  close(full);
  bool threw = false;
  int err = 0;
  try {
    OutputFile out("-");
    out.write("x");
    out.commit();
  } catch (const IoError& e) {
    threw = true;
    err = e.errno_value();
  }
  dup2(saved, 1);
  close(saved);
  CHECK(threw);
  CHECK(err == ENOSPC);
}

TEST_CASE("LineReader keeps NULs, CR and reports an unterminated last line") {
  test::TempDir dir;
  std::string path = dir.path() + "/lines.txt";
  test::write_file(path, std::string("a\0b\r\n\nlast", 10));
  LineReader r(path);
  std::string line;
  bool nl = false;
  REQUIRE(r.next(line, &nl));
  CHECK(line == std::string("a\0b\r", 4));
  CHECK(nl);
  REQUIRE(r.next(line, &nl));
  CHECK(line.empty());
  REQUIRE(r.next(line, &nl));
  CHECK(line == "last");
  CHECK_FALSE(nl);
  CHECK_FALSE(r.next(line, &nl));
}

TEST_CASE("LineReader rejects a line beyond the cap with the file name") {
  test::TempDir dir;
  std::string path = dir.path() + "/long.txt";
  test::write_file(path, std::string(300000, 'x'));
  LineReader r(path, 100000);
  std::string line;
  CHECK_THROWS_WITH_AS(r.next(line), doctest::Contains(path.c_str()), FormatError);
}

// Issue 27: the limit holds however a long line arrives, in one read or over many, and the
// error names the file, the line and the limit.
TEST_CASE("LineReader: a line of max_line bytes is read, one byte more is an error naming file, line and limit") {
  test::TempDir dir;
  const std::string path = dir.path() + "/limit.txt";
  test::write_file(path, "short\n" + std::string(100, 'a') + "\n" + std::string(101, 'b') + "\nafter\n");
  LineReader r(path, 100);
  std::string line;
  REQUIRE(r.next(line));
  REQUIRE(r.next(line));
  CHECK(line.size() == 100);
  CHECK_THROWS_WITH_AS(r.next(line),
                       (path + ": line 3 is longer than 100 bytes, the maximum line length; split the input into shorter lines").c_str(),
                       FormatError);
  // The same without a newline at the end, and over many reads (the buffer grows from 64 KiB).
  test::write_file(path, std::string(200001, 'c'));
  LineReader s(path, 200000);
  CHECK_THROWS_WITH_AS(s.next(line),
                       (path + ": line 1 is longer than 200000 bytes, the maximum line length; split the input into shorter lines").c_str(),
                       FormatError);
  test::write_file(path, std::string(200000, 'c'));
  LineReader t(path, 200000);
  REQUIRE(t.next(line));
  CHECK(line.size() == 200000);
  CHECK(line_too_long("x.txt", 7, LineReader::kDefaultMaxLine).message() ==
        "x.txt: line 7 is longer than 1 MiB, the maximum line length; split the input into shorter lines");
}

TEST_CASE("MappedFile with Accept::Regular refuses devices, FIFOs and directories before reading") {
  test::TempDir dir;
  CHECK_THROWS_WITH_AS(MappedFile("/dev/zero", MappedFile::Accept::Regular),
                       "/dev/zero: is a character device, not a regular file; models and tokenizers are read from files",
                       FormatError);
  const std::string fifo = dir.path() + "/fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  // No writer: a blocking open would wait forever.
  CHECK_THROWS_WITH_AS(MappedFile(fifo, MappedFile::Accept::Regular),
                       (fifo + ": is a pipe (FIFO), not a regular file; models and tokenizers are read from files").c_str(),
                       FormatError);
  CHECK_THROWS_AS(MappedFile(dir.path(), MappedFile::Accept::Regular), IoError);
  const std::string path = dir.path() + "/f";
  test::write_file(path, "abc");
  CHECK(MappedFile(path, MappedFile::Accept::Regular).view() == "abc");
}

TEST_CASE("LineReader reads lines longer than its initial buffer") {
  test::TempDir dir;
  std::string path = dir.path() + "/big.txt";
  std::string big(200000, 'y');
  test::write_file(path, big + "\nz\n");
  LineReader r(path);
  std::string line;
  REQUIRE(r.next(line));
  CHECK(line == big);
  REQUIRE(r.next(line));
  CHECK(line == "z");
}

TEST_CASE("MappedFile maps regular files and handles empty ones") {
  test::TempDir dir;
  std::string path = dir.path() + "/m.bin";
  test::write_file(path, "abc");
  MappedFile m(path);
  CHECK(m.view() == "abc");
  MappedFile moved = std::move(m);
  CHECK(moved.view() == "abc");
  test::write_file(path, "");
  MappedFile e(path);
  CHECK(e.size() == 0);
  CHECK_THROWS_AS(MappedFile(dir.path() + "/missing"), IoError);
  CHECK_THROWS_AS(MappedFile(dir.path()), IoError);
}

TEST_CASE("same_file compares inodes") {
  test::TempDir dir;
  std::string a = dir.path() + "/a", b = dir.path() + "/b";
  test::write_file(a, "1");
  test::write_file(b, "1");
  CHECK(same_file(a, a));
  CHECK(same_file(a, dir.path() + "/./a"));
  CHECK_FALSE(same_file(a, b));
  CHECK_FALSE(same_file(a, "-"));
}

TEST_CASE("OutputFile writes into devices instead of replacing them") {
  // Regression: as root, a temp file in /dev was renamed over /dev/full.
  {
    OutputFile out("/dev/null");
    out.write("discarded");
    out.commit();
  }
  struct stat st;
  REQUIRE(::stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  bool threw = false;
  try {
    OutputFile out("/dev/full");
    out.write("x");
    out.commit();
  } catch (const IoError& e) {
    threw = e.errno_value() == ENOSPC;
  }
  CHECK(threw);
  REQUIRE(::stat("/dev/full", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("OutputFile through a symlink replaces the target and keeps the link") {
  test::TempDir dir;
  std::string real = dir.path() + "/real.txt", link = dir.path() + "/link.txt";
  test::write_file(real, "old");
  REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
  OutputFile out(link);
  out.write("new");
  out.commit();
  CHECK(load_file(real) == "new");
  struct stat st;
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE("remove_stale_temps removes an output's old temp files and nothing else") {
  lm::test::TempDir dir;
  const std::string target = dir.path() + "/m.gguf";
  // Names of before the writer's pid was part of them: only the age tells.
  const std::string old_tmp = dir.path() + "/.m.gguf.AbC123.tmp", fresh_tmp = dir.path() + "/.m.gguf.XyZ789.tmp";
  const std::string other = dir.path() + "/.n.gguf.AbC123.tmp", odd = dir.path() + "/.m.gguf.toolong1.tmp";
  for (const auto& p : {old_tmp, fresh_tmp, other, odd, target}) lm::test::write_file(p, "x");
  struct timeval old_times[2] = {{1000, 0}, {1000, 0}};
  for (const auto& p : {old_tmp, other, odd}) REQUIRE(::utimes(p.c_str(), old_times) == 0);
  CHECK(lm::remove_stale_temps(target) == 1);
  CHECK_FALSE(lm::test::exists(old_tmp));
  CHECK(lm::test::exists(fresh_tmp));  // written just now: maybe a save in progress
  CHECK(lm::test::exists(other));
  CHECK(lm::test::exists(odd));
  CHECK(lm::test::exists(target));
  CHECK(lm::remove_stale_temps(dir.path() + "/missing-dir/m.gguf") == 0);
}

TEST_CASE("remove_stale_temps removes a temp file whose writer is dead, whatever its age, and keeps a live one's") {
  lm::test::TempDir dir;
  const std::string target = dir.path() + "/m.gguf";
  {
    OutputFile out(target);  // its temp file names this process
    const std::string name = out.temp_path().substr(dir.path().size() + 1);
    CHECK(name.starts_with(".m.gguf." + std::to_string(::getpid()) + "."));
    CHECK(name.ends_with(".tmp"));
    CHECK(name.size() == std::string(".m.gguf.").size() + std::to_string(::getpid()).size() + 11);
    CHECK(lm::remove_stale_temps(target, 0) == 0);  // ours, and we are alive
    CHECK(lm::test::exists(out.temp_path()));
  }
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  REQUIRE(::waitpid(child, nullptr, 0) == child);  // reaped: no process has this pid now
  const std::string dead = dir.path() + "/.m.gguf." + std::to_string(child) + ".AbC123.tmp";
  const std::string live = dir.path() + "/.m.gguf." + std::to_string(::getpid()) + ".XyZ789.tmp";
  const std::string other = dir.path() + "/.n.gguf." + std::to_string(child) + ".AbC123.tmp";
  const std::string not_pid = dir.path() + "/.m.gguf.12x4.AbC123.tmp";
  for (const auto& p : {dead, live, other, not_pid}) lm::test::write_file(p, "x");
  CHECK(lm::remove_stale_temps(target) == 1);  // written just now, yet its writer is gone
  CHECK_FALSE(lm::test::exists(dead));
  CHECK(lm::test::exists(live));
  CHECK(lm::test::exists(other));
  CHECK(lm::test::exists(not_pid));
}
