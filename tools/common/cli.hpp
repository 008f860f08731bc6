// CLI helpers shared by the lm-* tools: standard flags, parse-error handling, exit codes and
// the run_main wrapper that turns every exception into one line on stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "base/log.hpp"

namespace lm::tools {

// Exit codes (docs/reliability.md, exit status): 0 ok, 1 runtime/data error, 2 usage error,
// 130/143 interrupted.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Sets up an app the lm way: --version, defaults shown in --help, no full usage dump on errors.
void init_app(CLI::App& app, const std::string& tool);

// What an option's declaration says beyond CLI11's names, type, default and --help line. Each
// tool declares an option once, in CLI11, and attaches this to it; the build generates the man
// page's OPTIONS section and the bash, zsh and fish completions from those declarations
// (docs/cli.md). Usage:
//   lm::tools::doc(app.add_option("-m,--model", model, "Model file")->required())
//       .group("Input and output").files("gguf").man(R"(The model (required).)");
class OptionDoc {
 public:
  explicit OptionDoc(CLI::Option* opt) : opt_(opt) {}
  // The man page's text for the option, in groff (default: the --help line).
  OptionDoc& man(std::string groff);
  // The heading the option is listed under in --help and the man page.
  OptionDoc& group(const std::string& heading);
  // The value names a file; `ext` ("gguf") narrows the shell's completion. Options whose type
  // name contains FILE complete file names without this.
  OptionDoc& files(std::string ext = "");
  // The value must be one of `values` (checked when parsing; completed by the shells).
  OptionDoc& choices(std::vector<std::string> values);
  CLI::Option* option() const { return opt_; }

  const std::string& man_text() const { return man_; }
  const std::vector<std::string>& choice_list() const { return choices_; }
  // "" = not a file, "*" = any file, otherwise the extension completed.
  const std::string& file_ext() const { return files_; }
  // Set by add_switch: "on" or "off", shown as the switch's default.
  std::string switch_default;

 private:
  CLI::Option* opt_;
  std::string man_, files_;
  std::vector<std::string> choices_;
};
// The documentation attached to `opt`, created empty on first use.
OptionDoc& doc(CLI::Option* opt);
// The documentation of `opt`, or nullptr if none was attached.
const OptionDoc* find_doc(const CLI::Option* opt);

// -q/--quiet and -v/--verbose, setting the logger's level. `verbose_man`: the man page's text for
// -v, saying what it adds for this tool (groff).
void add_verbosity(CLI::App& app, Logger& log, const std::string& verbose_man = "");

// -t/--threads. 0 means all cores. Validated to [0, 1024].
void add_threads(CLI::App& app, int& threads);

// An on/off switch --NAME / --no-NAME bound to `value`; --help shows the default read from `value`.
OptionDoc& add_switch(CLI::App& app, const std::string& name, bool& value, const std::string& description);

// The generated documentation of a tool, from its declarations: "man" (the OPTIONS section, in
// groff), "bash", "zsh" or "fish" (a completion script). Written to `out`. Throws UsageError for
// another kind. run_main calls it when a tool is run as `lm-x --lm-emit-docs KIND` (the build
// does, docs/cli.md); the option is not part of the tools' interface.
void emit_docs(const CLI::App& app, const std::string& kind, std::string& out);

// The longest duration parse_duration accepts: 365 days (8760h).
inline constexpr double kMaxDurationSeconds = 365.0 * 24 * 3600;

// Parses a duration such as "90", "90s", "10m", "1.5h" into seconds, at most kMaxDurationSeconds.
// Throws UsageError naming `flag`.
double parse_duration(const std::string& text, const char* flag);

// Parses argv and runs `body`, mapping outcomes to exit codes:
//  --help/--version -> stdout, 0; parse error -> "lm-x: <why>" + "try 'lm-x --help'", 2, where
//  an unknown option ("unknown option '--x'") is named before any other parse error;
//  a floating-point option whose value is NaN, Inf or beyond the float range is a parse error
//  ("--lr: nan is not a finite number"), for every option of every tool: an option is taken to
//  be floating-point when its CLI11 type is FLOAT or its range check a CLI::Range of
//  floating-point bounds (a float option that renames its value, "--temp T", needs the latter);
//  lm::UsageError -> 2; lm::Error and std::exception -> "lm-x: <message>", 1.
// Restores default SIGPIPE so a closed pipe ends the tool quietly. Never lets an exception escape.
int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

// The name of an option's value as --help, the man page and the completions show it: FILE, N,
// X, TEXT, or its choices (stop|shift).
std::string value_name(const CLI::Option* opt);
// The default --help and the man page show: the bound variable's value, "" for none.
std::string default_text(const CLI::Option* opt);

// The closest of `known` to `word` (an unknown option or command), or "" if none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& known);

// The tool name used as prefix for messages ("lm-tokenize").
const std::string& tool_name();

// Under MPI (docs/distributed.md), the rank of this process: on ranks above 0, run_main prints
// no usage error (every rank parses the same command line; rank 0 says it) and prefixes other
// errors with "rank R: ", after the tool name.
void set_error_rank(int rank);

}  // namespace lm::tools
