// The documentation generated from a tool's option declarations: the man page's OPTIONS section
// and the bash, zsh and fish completions (docs/cli.md). The build runs each tool with
// --lm-emit-docs KIND and writes what this prints; tests/tools/docs_test.sh checks the files it
// installs are current.
#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "common/cli.hpp"

namespace lm::tools {

namespace {

// One option as the generators see it.
struct Opt {
  std::vector<std::string> names;  // "-m", "--model", "--no-x"
  bool value = false;              // takes a value
  bool repeat = false;             // may be given several times, each adding a value
  bool positional = false;
  std::string label;  // the value's name: FILE, N, stop|shift
  std::string help, man, def, group, files;
  std::vector<std::string> choices;

  bool same_as(const Opt& o) const {
    return names == o.names && value == o.value && man == o.man && def == o.def && help == o.help;
  }
};

}  // namespace

std::string value_name(const CLI::Option* o) {
  // get_type_name() is the type's name followed by ":" and each check's description
  // ("INT:INT in [0 - 1024]", "TEXT:{a,b}"); a name of our own may hold ':' ("FILE[:SCALE]").
  if (const OptionDoc* d = find_doc(o); d && !d->choice_list().empty()) {
    std::string r;
    for (const std::string& c : d->choice_list()) r += (r.empty() ? "" : "|") + c;
    return r;
  }
  static const std::regex checks(R"((:(([A-Z]+ )?in \[[^\]]*\]|\{[^}]*\}|[A-Z]+))+$)");
  std::string t = std::regex_replace(o->get_type_name(), checks, "");
  if (t == "INT" || t == "UINT") return "N";
  if (t == "FLOAT") return "X";
  return t;
}

std::string default_text(const CLI::Option* o) {
  return o->get_default_str() == "[]" ? "" : o->get_default_str();  // an empty list
}

namespace {

Opt describe(const CLI::Option* o) {
  Opt r;
  r.positional = o->get_positional();
  if (r.positional) r.names.push_back(o->get_name(true, false));
  for (const auto& s : o->get_snames()) r.names.push_back("-" + s);
  for (const auto& l : o->get_lnames()) r.names.push_back("--" + l);
  r.value = o->get_expected_max() != 0;
  r.repeat = o->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
  r.help = o->get_description();
  r.group = o->get_group();
  if (const OptionDoc* d = find_doc(o)) {
    r.man = d->man_text();
    r.choices = d->choice_list();
    r.files = d->file_ext();
    if (!d->switch_default.empty()) r.def = d->switch_default;
  }
  if (r.value) {
    r.label = value_name(o);
    r.def = default_text(o);
    if (r.files.empty() && r.label.find("FILE") != std::string::npos) r.files = "*";
  }
  return r;
}

// The options of one app in declaration order, positionals last; --help and --version last of all.
std::vector<Opt> options_of(const CLI::App& app) {
  std::vector<Opt> named, pos, tail;
  for (const CLI::Option* o : app.get_options()) {
    Opt d = describe(o);
    if (o == app.get_help_ptr() || o == app.get_help_all_ptr() || o == app.get_version_ptr()) {
      d.group = "Other";
      if (o == app.get_help_ptr()) d.man = "Print a summary of the options and exit.";
      if (o == app.get_version_ptr()) d.man = "Print the version and exit.";
      tail.push_back(d);
    } else {
      (d.positional ? pos : named).push_back(d);
    }
  }
  named.insert(named.end(), pos.begin(), pos.end());
  named.insert(named.end(), tail.begin(), tail.end());
  return named;
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
  return app.get_subcommands(std::function<bool(const CLI::App*)>{});
}

// ---- man (groff) ----

std::string roff_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\\') r += "\\e";
    else if (c == '-') r += "\\-";
    else r += c;
  }
  if (!r.empty() && (r[0] == '.' || r[0] == '\'')) r = "\\&" + r;
  return r;
}

void man_entry(std::string& out, const Opt& o) {
  out += ".TP\n";
  for (size_t i = 0; i < o.names.size(); ++i) out += (i ? ", \\fB" : "\\fB") + roff_escape(o.names[i]) + "\\fR";
  if (o.value) out += " \\fI" + roff_escape(o.label) + "\\fR";
  out += "\n";
  std::string text = o.man;
  if (text.empty()) {
    text = roff_escape(o.help);
    if (!text.empty() && text.back() != '.') text += '.';
  }
  out += text;
  if (!text.empty() && text.back() != '\n') out += '\n';
  if (!o.def.empty() && o.def != "-" && !o.positional) out += "Default: \\fB" + roff_escape(o.def) + "\\fR.\n";
}

void emit_man(const CLI::App& app, std::string& out) {
  out += ".SH OPTIONS\n";
  const auto subs = subcommands_of(app);
  if (subs.empty()) {
    const auto opts = options_of(app);
    std::vector<std::string> groups;
    for (const Opt& o : opts)
      if (!o.positional && std::find(groups.begin(), groups.end(), o.group) == groups.end()) groups.push_back(o.group);
    for (const std::string& g : groups) {
      if (groups.size() > 1) out += ".SS " + g + "\n";
      for (const Opt& o : opts)
        if (!o.positional && o.group == g) man_entry(out, o);
    }
    return;
  }
  // A tool with commands: each command's own options, then those every command has alike.
  std::vector<std::vector<Opt>> per;
  for (const CLI::App* s : subs) per.push_back(options_of(*s));
  auto in_all = [&](const Opt& o) {
    return std::all_of(per.begin(), per.end(), [&](const std::vector<Opt>& v) {
      return std::any_of(v.begin(), v.end(), [&](const Opt& x) { return x.same_as(o); });
    });
  };
  for (size_t i = 0; i < subs.size(); ++i) {
    out += ".SS " + subs[i]->get_name() + "\n";
    for (const Opt& o : per[i])
      if (!o.positional && !in_all(o)) man_entry(out, o);
  }
  out += ".SS Options of every command\n";
  for (const Opt& o : per[0])
    if (!o.positional && in_all(o)) man_entry(out, o);
  for (const Opt& o : options_of(app))
    if (o.names == std::vector<std::string>{"--version"}) man_entry(out, o);
}

// ---- bash ----

std::string words(const std::vector<std::string>& v, const char* sep = " ") {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? sep : "") + v[i];
  return r;
}

void bash_body(std::string& out, const std::vector<Opt>& opts, const std::string& ind) {
  std::vector<std::string> all, plain;
  bool pos_files = false;
  out += ind + "case $prev in\n";
  for (const Opt& o : opts) {
    if (o.positional) {
      pos_files |= !o.files.empty();
      continue;
    }
    all.insert(all.end(), o.names.begin(), o.names.end());
    if (!o.value) continue;
    const std::string pat = words(o.names, "|");
    if (!o.files.empty())
      out += ind + "  " + pat + ") _filedir" + (o.files == "*" ? "" : " " + o.files) + "; return ;;\n";
    else if (!o.choices.empty())
      out += ind + "  " + pat + ") COMPREPLY=($(compgen -W \"" + words(o.choices) + "\" -- \"$cur\")); return ;;\n";
    else
      plain.insert(plain.end(), o.names.begin(), o.names.end());
  }
  if (!plain.empty()) out += ind + "  " + words(plain, "|") + ") return ;;\n";
  out += ind + "esac\n";
  if (pos_files) {
    out += ind + "if [[ $cur == -* ]]; then\n";
    out += ind + "  COMPREPLY=($(compgen -W \"" + words(all) + "\" -- \"$cur\"))\n";
    out += ind + "else\n" + ind + "  _filedir\n" + ind + "fi\n";
  } else {
    out += ind + "COMPREPLY=($(compgen -W \"" + words(all) + "\" -- \"$cur\"))\n";
  }
}

void emit_bash(const CLI::App& app, std::string& out) {
  std::string fn = "_" + app.get_name();
  std::replace(fn.begin(), fn.end(), '-', '_');
  out += "# bash completion for " + app.get_name() + "                                   -*- shell-script -*-\n";
  out += "# Generated from " + app.get_name() + "'s option declarations by the build; do not edit.\n";
  out += fn + "() {\n  local cur prev words cword\n  _init_completion || return\n";
  const auto subs = subcommands_of(app);
  if (subs.empty()) {
    bash_body(out, options_of(app), "  ");
  } else {
    std::vector<std::string> names;
    for (const CLI::App* s : subs) names.push_back(s->get_name());
    out += "  local cmd= i\n  for ((i = 1; i < cword; i++)); do\n";
    out += "    case ${words[i]} in " + words(names, "|") + ") cmd=${words[i]}; break ;; esac\n  done\n";
    out += "  case $cmd in\n";
    for (const CLI::App* s : subs) {
      out += "    " + s->get_name() + ")\n";
      bash_body(out, options_of(*s), "      ");
      out += "      ;;\n";
    }
    out += "    *) COMPREPLY=($(compgen -W \"" + words(names) + " -h --help --version\" -- \"$cur\")) ;;\n  esac\n";
  }
  out += "}\ncomplete -F " + fn + " " + app.get_name() + "\n";
}

// ---- zsh ----

// Text inside a single-quoted _arguments spec's [description].
std::string zsh_desc(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\'') r += "'\\''";
    else if (c == '[') r += '(';
    else if (c == ']') r += ')';
    else if (c == ':') r += "\\:";
    else r += c;
  }
  return r;
}

void zsh_specs(std::string& out, const std::vector<Opt>& opts, const std::string& ind) {
  for (const Opt& o : opts) {
    std::string action;
    if (o.value || o.positional) {
      const std::string label = o.label.empty() ? "value" : zsh_desc(o.label);
      if (!o.files.empty())
        action = ":" + label + ":_files" + (o.files == "*" ? "" : " -g \"*." + o.files + "\"");
      else if (!o.choices.empty())
        action = ":" + label + ":(" + words(o.choices) + ")";
      else
        action = ":" + label + ": ";
    }
    if (o.positional) {
      out += ind + "'*" + action + "' \\\n";
      continue;
    }
    const std::string excl = o.names.size() > 1 && !o.repeat ? "(" + words(o.names) + ")" : "";
    for (const std::string& n : o.names)
      out += ind + "'" + excl + (o.repeat ? "*" : "") + n + "[" + zsh_desc(o.help) + "]" + action + "' \\\n";
  }
}

void emit_zsh(const CLI::App& app, std::string& out) {
  const std::string name = app.get_name();
  out += "#compdef " + name + "\n# zsh completion for " + name +
         ", generated from its option declarations by the build; do not edit.\n";
  const auto subs = subcommands_of(app);
  if (subs.empty()) {
    out += "_arguments -s \\\n";
    zsh_specs(out, options_of(app), "  ");
    out += "  && return 0\n";
    return;
  }
  out += "local curcontext=$curcontext state line\n_arguments -C \\\n";
  out += "  '(- *)'{-h,--help}'[Print help]' '(- *)--version[Print the version]' \\\n";
  out += "  '1:command:->command' '*::argument:->argument' && return 0\ncase $state in\n  command)\n";
  out += "    local -a commands\n    commands=(\n";
  for (const CLI::App* s : subs)
    out += "      '" + s->get_name() + ":" + zsh_desc(s->get_description()) + "'\n";
  out += "    )\n    _describe -t commands command commands ;;\n  argument)\n    case $line[1] in\n";
  for (const CLI::App* s : subs) {
    out += "      " + s->get_name() + ")\n        _arguments -s \\\n";
    zsh_specs(out, options_of(*s), "          ");
    out += "          ;;\n";
  }
  out += "    esac ;;\nesac\n";
}

// ---- fish ----

std::string fish_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') r += '\\';
    r += c;
  }
  return r + "'";
}

void fish_lines(std::string& out, const std::string& tool, const std::string& cond, const std::vector<Opt>& opts) {
  const std::string head = "complete -c " + tool + (cond.empty() ? "" : " -n " + fish_quote(cond));
  for (const Opt& o : opts) {
    if (o.positional) {
      if (!o.files.empty()) out += head + " -F\n";
      continue;
    }
    // A negatable switch is two entries, each with its own long name.
    std::string line = head;
    for (const std::string& n : o.names) line += n.rfind("--", 0) == 0 ? " -l " + n.substr(2) : " -s " + n.substr(1);
    if (o.value) {
      if (!o.files.empty()) line += " -r -F";
      else if (!o.choices.empty()) line += " -x -a " + fish_quote(words(o.choices));
      else line += " -x";
    }
    out += line + " -d " + fish_quote(o.help) + "\n";
  }
}

void emit_fish(const CLI::App& app, std::string& out) {
  const std::string name = app.get_name();
  out += "# fish completion for " + name + ", generated from its option declarations by the build; do not edit.\n";
  const auto subs = subcommands_of(app);
  if (subs.empty()) {
    bool pos_files = false;
    for (const Opt& o : options_of(app)) pos_files |= o.positional && !o.files.empty();
    if (!pos_files) out += "complete -c " + name + " -f\n";
    fish_lines(out, name, "", options_of(app));
    return;
  }
  out += "complete -c " + name + " -f\n";
  std::vector<std::string> names;
  for (const CLI::App* s : subs) names.push_back(s->get_name());
  for (const CLI::App* s : subs)
    out += "complete -c " + name + " -n __fish_use_subcommand -a " + s->get_name() + " -d " +
           fish_quote(s->get_description()) + "\n";
  out += "complete -c " + name + " -n __fish_use_subcommand -s h -l help -d 'Print help'\n";
  out += "complete -c " + name + " -n __fish_use_subcommand -l version -d 'Print the version'\n";
  for (const CLI::App* s : subs)
    fish_lines(out, name, "__fish_seen_subcommand_from " + s->get_name(), options_of(*s));
}

}  // namespace

void emit_docs(const CLI::App& app, const std::string& kind, std::string& out) {
  if (kind == "man") emit_man(app, out);
  else if (kind == "bash") emit_bash(app, out);
  else if (kind == "zsh") emit_zsh(app, out);
  else if (kind == "fish") emit_fish(app, out);
  else throw UsageError("--lm-emit-docs '" + kind + "': expected man, bash, zsh or fish");
}

}  // namespace lm::tools
