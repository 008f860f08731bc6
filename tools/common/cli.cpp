// run_main and the standard flags. Only tools/ parse argv, print results and choose exit codes.
#include "common/cli.hpp"

#include <cmath>
#include <csignal>
#include <cstdio>
#include <new>

#include "base/error.hpp"

namespace lm::tools {

static std::string g_tool = "lm";

const std::string& tool_name() { return g_tool; }

void init_app(CLI::App& app, const std::string& tool) {
  g_tool = tool;
  app.name(tool);
  app.set_version_flag("--version", std::string(tool) + " " LM_VERSION);
  // A repeated option takes its last value, so scripts can append overrides.
  app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(34);
}

void add_verbosity(CLI::App& app, Logger& log) {
  app.add_flag_callback("-q,--quiet", [&log] { log.set_level(Logger::Level::Quiet); },
                        "Print only errors on stderr");
  app.add_flag_callback("-v,--verbose", [&log] { log.set_level(Logger::Level::Verbose); },
                        "Print more detail on stderr");
}

void add_threads(CLI::App& app, int& threads) {
  app.add_option("-t,--threads", threads, "Threads to use (0 = all cores)")->check(CLI::Range(0, 1024));
}

void add_switch(CLI::App& app, const std::string& name, bool& value, const std::string& description) {
  app.add_flag("--" + name + ",!--no-" + name, value, description + (value ? " (default: on)" : " (default: off)"))
      ->default_str("");
}

double parse_duration(const std::string& text, const char* flag) {
  double value = 0;
  size_t used = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = used ? text.substr(used) : "";
  const double scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
  if (used == 0 || scale == 0 || !(value > 0) || !std::isfinite(value))
    throw UsageError(std::string(flag) + " '" + text + "': expected a positive duration such as 90s, 10m or 2h");
  return value * scale;
}

static int usage_error(const std::string& what) {
  std::fprintf(stderr, "%s: %s\ntry '%s --help'\n", g_tool.c_str(), what.c_str(), g_tool.c_str());
  return kExitUsage;
}

int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  std::signal(SIGPIPE, SIG_DFL);
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::fputs(app.help().c_str(), stdout);  // delegates to the subcommand that was named
      return std::fflush(stdout) == 0 ? kExitOk : kExitError;
    } catch (const CLI::CallForAllHelp&) {
      std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
      return kExitOk;
    } catch (const CLI::CallForVersion& e) {
      std::printf("%s\n", e.what());
      return kExitOk;
    } catch (const CLI::ParseError& e) {
      return usage_error(e.what());
    }
    int rc = body();
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) throw IoError("<stdout>", "write error", errno);
    return rc;
  } catch (const UsageError& e) {
    return usage_error(e.what());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", g_tool.c_str(), e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: out of memory\n", g_tool.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", g_tool.c_str(), e.what());
  }
  return kExitError;
}

}  // namespace lm::tools
