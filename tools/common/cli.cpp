// run_main and the standard flags. Only tools/ parse argv, print results and choose exit codes.
#include "common/cli.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>

#include "base/error.hpp"

namespace lm::tools {

static std::string g_tool = "lm";

const std::string& tool_name() { return g_tool; }

static int g_rank = 0;
void set_error_rank(int rank) { g_rank = rank; }

// "lm-x: " or, on MPI ranks above 0, "lm-x: rank R: ".
static std::string error_prefix() {
  return g_tool + ": " + (g_rank > 0 ? "rank " + std::to_string(g_rank) + ": " : "");
}

// --help lists a switch as "--x, --no-x", without CLI11's "{false}" after the negated name.
class Formatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    if (is_positional) return opt->get_name(true, false);
    std::string names = opt->get_name(false, true);
    for (size_t b; (b = names.find('{')) != std::string::npos;) names.erase(b, names.find('}', b) + 1 - b);
    return names;
  }
  // " N=128", " stop|shift=stop", " FILE REQUIRED", " TEXT ..." (CLI11 shows "INT:INT in [0 - 9]").
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (opt->get_expected_max() == 0) return "";
    std::string r = " " + value_name(opt);
    if (const std::string def = default_text(opt); !def.empty()) r += "=" + def;
    if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) r += " ...";
    if (opt->get_required()) r += " REQUIRED";
    return r;
  }
};

void init_app(CLI::App& app, const std::string& tool) {
  g_tool = tool;
  app.name(tool);
  app.set_version_flag("--version", std::string(tool) + " " LM_VERSION);
  // A repeated option takes its last value, so scripts can append overrides.
  app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  auto fmt = std::make_shared<Formatter>();
  fmt->column_width(34);
  app.formatter(fmt);
}

// ---- option documentation ----

static std::map<const CLI::Option*, std::unique_ptr<OptionDoc>>& doc_registry() {
  static std::map<const CLI::Option*, std::unique_ptr<OptionDoc>> registry;
  return registry;
}

OptionDoc& doc(CLI::Option* opt) {
  auto& slot = doc_registry()[opt];
  if (!slot) slot = std::make_unique<OptionDoc>(opt);
  return *slot;
}

const OptionDoc* find_doc(const CLI::Option* opt) {
  auto it = doc_registry().find(opt);
  return it == doc_registry().end() ? nullptr : it->second.get();
}

OptionDoc& OptionDoc::man(std::string groff) {
  man_ = std::move(groff);
  return *this;
}

OptionDoc& OptionDoc::group(const std::string& heading) {
  opt_->group(heading);
  return *this;
}

OptionDoc& OptionDoc::files(std::string ext) {
  files_ = ext.empty() ? "*" : std::move(ext);
  return *this;
}

OptionDoc& OptionDoc::choices(std::vector<std::string> values) {
  choices_ = std::move(values);
  opt_->check(CLI::IsMember(choices_));
  return *this;
}

void add_verbosity(CLI::App& app, Logger& log, const std::string& verbose_man) {
  doc(app.add_flag_callback("-q,--quiet", [&log] { log.set_level(Logger::Level::Quiet); },
                            "Print only errors on stderr"))
      .group("Other")
      .man("Print only errors on standard error.");
  doc(app.add_flag_callback("-v,--verbose", [&log] { log.set_level(Logger::Level::Verbose); },
                            "Print more detail on stderr"))
      .group("Other")
      .man(verbose_man.empty() ? "Print more detail on standard error." : verbose_man);
}

void add_threads(CLI::App& app, int& threads) {
  doc(app.add_option("-t,--threads", threads, "Threads to use (0 = up to all cores, as many as run fastest now)")
          ->check(CLI::Range(0, 1024)))
      .group("Other")
      .man(R"(Number of threads. 0, the default, uses up to every core: model evaluations (decoding
and prompt steps) and training steps run at the thread count measured fastest now, so on a
machine where other programs keep cores busy they drop to fewer threads instead of waiting for
a descheduled one, and come back when the cores are free (now and then a few steps try another
count). The thread count never changes a result: the same run gives the same bits at any
count. A positive
.I N
is exactly
.I N
threads.)");
}

OptionDoc& add_switch(CLI::App& app, const std::string& name, bool& value, const std::string& description) {
  OptionDoc& d = doc(app.add_flag("--" + name + ",!--no-" + name, value,
                                  description + (value ? " (default: on)" : " (default: off)"))
                         ->default_str(""));
  d.switch_default = value ? "on" : "off";
  return d;
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
  if (value > kMaxDurationSeconds / scale)  // also keeps the seconds far from what a clock's integer holds
    throw UsageError(std::string(flag) + " '" + text + "': longer than 8760h (365 days), the longest duration accepted");
  return value * scale;
}

// The value of a floating-point option: a finite number that fits a float. NaN passes
// CLI::Range (every comparison with it is false), and a value beyond the float range becomes
// Inf when CLI11 converts it, so both would reach the run and fail there, or not at all.
static std::string check_finite_number(const std::string& text) {
  const char* s = text.c_str();
  char* end = nullptr;
  const long double v = std::strtold(s, &end);
  if (end == s || *end != '\0') return "";  // not a number: CLI11's conversion reports it
  if (!std::isfinite(v) || std::fabs(v) > FLT_MAX) return text + " is not a finite number";
  return "";
}

// Adds check_finite_number to every floating-point option of `app` and its subcommands: those
// whose CLI11 type is FLOAT, or, when a tool names the value ("--temp T"), whose range check is
// a CLI::Range of floating-point bounds (its description, after the type, is "FLOAT in [a - b]").
static void require_finite_numbers(CLI::App& app) {
  const CLI::Validator finite(check_finite_number, "");  // no description: --help is unchanged
  for (CLI::Option* o : app.get_options()) {
    const std::string type = o->get_type_name();
    if (type.starts_with("FLOAT") || type.find(":FLOAT") != std::string::npos) o->check(finite);
  }
  for (CLI::App* sub : app.get_subcommands({})) require_finite_numbers(*sub);
}

// The help command for a usage error: the subcommand's when one was named.
static std::string help_hint(const CLI::App& app) {
  std::string cmd = g_tool;
  for (const CLI::App* s : app.get_subcommands()) cmd += " " + s->get_name();
  return "try '" + cmd + " --help'";
}

static int usage_error(const CLI::App& app, const std::string& what) {
  if (g_rank > 0) return kExitUsage;
  std::fprintf(stderr, "%s: %s\n%s\n", g_tool.c_str(), what.c_str(), help_hint(app).c_str());
  return kExitUsage;
}

// Levenshtein distance, for suggestions.
static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const std::string& k : known) {
    // A known name that starts the word (--temperature for --temp) or is a short edit away.
    const bool prefix = k.size() >= 4 && word.size() > k.size() && word.compare(0, k.size(), k) == 0;
    const size_t d = prefix ? 1 : edit_distance(word, k);
    if (d <= std::max<size_t>(1, k.size() / 4) && d < best_d) best = k, best_d = d;
  }
  return best;
}

// The long options a user could have meant at the point of the error: the tool's and those of
// the commands named.
static std::vector<std::string> known_options(const CLI::App& app) {
  std::vector<const CLI::App*> apps{&app};
  for (const CLI::App* s : app.get_subcommands()) apps.push_back(s);
  std::vector<std::string> r;
  for (const CLI::App* a : apps)
    for (const CLI::Option* o : a->get_options())
      for (const auto& l : o->get_lnames()) r.push_back("--" + l);
  return r;
}

// CLI11's message for a parse error, made specific: an unknown option is named (with the
// closest known one) before any other complaint, and a word where a command belongs is called
// an unknown command.
static std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  const auto known = known_options(app);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    a = a.substr(0, a.find('='));
    if (std::find(known.begin(), known.end(), a) != known.end()) continue;
    std::string msg = "unknown option '" + a + "'";
    const std::string near = did_you_mean(a, known);
    return near.empty() ? msg : msg + "; did you mean '" + near + "'?";
  }
  std::vector<std::string> commands;
  for (const CLI::App* s : app.get_subcommands(std::function<bool(const CLI::App*)>{})) commands.push_back(s->get_name());
  if (!commands.empty() && app.get_subcommands().empty()) {
    std::string all;
    for (const std::string& c : commands) all += (all.empty() ? "" : ", ") + c;
    for (int i = 1; i < argc; ++i) {
      if (argv[i][0] == '-') continue;
      std::string msg = "unknown command '" + std::string(argv[i]) + "'";
      const std::string near = did_you_mean(argv[i], commands);
      if (!near.empty()) msg += "; did you mean '" + near + "'?";
      return msg + " (commands: " + all + ")";
    }
    return "a command is required: " + all;
  }
  return e.what();
}

int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  std::signal(SIGPIPE, SIG_DFL);
  try {
    if (argc == 3 && std::strcmp(argv[1], "--lm-emit-docs") == 0) {  // for the build: docs/cli.md
      std::string out;
      emit_docs(app, argv[2], out);
      std::fwrite(out.data(), 1, out.size(), stdout);
      return std::fflush(stdout) == 0 ? kExitOk : kExitError;
    }
    try {
      require_finite_numbers(app);
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
      return usage_error(app, parse_error_message(app, e, argc, argv));
    }
    int rc = body();
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) throw IoError("<stdout>", "write error", errno);
    return rc;
  } catch (const UsageError& e) {
    return usage_error(app, e.what());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s%s\n", error_prefix().c_str(), e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%sout of memory\n", error_prefix().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s%s\n", error_prefix().c_str(), e.what());
  }
  return kExitError;
}

}  // namespace lm::tools
