// CLI helpers shared by the lm-* tools: standard flags, parse-error handling, exit codes and
// the run_main wrapper that turns every exception into one line on stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "base/log.hpp"

namespace lm::tools {

// Exit codes (docs/reliability.md, exit status): 0 ok, 1 runtime/data error, 2 usage error,
// 130/143 interrupted.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Sets up an app the lm way: --version, defaults shown in --help, no full usage dump on errors.
void init_app(CLI::App& app, const std::string& tool);

// -q/--quiet and -v/--verbose, setting the logger's level.
void add_verbosity(CLI::App& app, Logger& log);

// -t/--threads. 0 means all cores. Validated to [0, 1024].
void add_threads(CLI::App& app, int& threads);

// An on/off switch --NAME / --no-NAME bound to `value`; --help shows the default read from `value`.
void add_switch(CLI::App& app, const std::string& name, bool& value, const std::string& description);

// Parses a duration such as "90", "90s", "10m", "1.5h" into seconds. Throws UsageError naming `flag`.
double parse_duration(const std::string& text, const char* flag);

// Parses argv and runs `body`, mapping outcomes to exit codes:
//  --help/--version -> stdout, 0; parse error -> "lm-x: <why>" + "try 'lm-x --help'", 2;
//  lm::UsageError -> 2; lm::Error and std::exception -> "lm-x: <message>", 1.
// Restores default SIGPIPE so a closed pipe ends the tool quietly. Never lets an exception escape.
int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

// The tool name used as prefix for messages ("lm-tokenize").
const std::string& tool_name();

}  // namespace lm::tools
