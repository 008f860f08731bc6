// Recursive-descent JSON over a string_view; only string members are kept.
#include "base/json.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace lm {

namespace {

struct Parser {
  std::string_view s;
  size_t i = 0;
  std::string err;

  bool fail(const std::string& what) {
    if (err.empty()) err = what + " at byte " + std::to_string(i + 1);
    return false;
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) return ++i, true;
    return false;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(uint32_t& v) {
    if (i + 4 > s.size()) return fail("truncated \\u escape");
    v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else return fail("bad \\u escape");
    }
    return true;
  }
  bool string(std::string& out) {
    ws();
    if (i >= s.size() || s[i] != '"') return fail("expected a string");
    ++i;
    while (i < s.size()) {
      const char c = s[i++];
      if (c == '"') return true;
      if (uint8_t(c) < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) break;
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < s.size() && s[i] == '\\' && s[i + 1] == 'u') {
            i += 2;
            uint32_t lo = 0;
            if (!hex4(lo)) return false;
            if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else utf8(out, 0xFFFD), cp = lo;
          }
          if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;  // a lone surrogate
          utf8(out, cp);
          break;
        }
        default: return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }
  // A number by JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number(double& v) {
    ws();
    const size_t start = i;
    auto digits = [&] {
      const size_t d = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      return i > d;
    };
    if (i < s.size() && s[i] == '-') ++i;
    if (i < s.size() && s[i] == '0') ++i;
    else if (!digits()) return i = start, fail("bad number");
    if (i < s.size() && s[i] == '.' && (++i, !digits())) return i = start, fail("bad number");
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (!digits()) return i = start, fail("bad number");
    }
    v = std::strtod(std::string(s.substr(start, i - start)).c_str(), nullptr);
    return true;
  }
  bool value(int depth, std::string* str) {
    if (depth > 64) return fail("nesting too deep");
    ws();
    if (i >= s.size()) return fail("expected a value");
    const char c = s[i];
    if (c == '"') {
      std::string tmp;
      if (!string(str ? *str : tmp)) return false;
      return true;
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i;
      if (eat(close)) return true;
      do {
        if (c == '{') {
          std::string k;
          if (!string(k)) return false;
          if (!eat(':')) return fail("expected ':'");
        }
        if (!value(depth + 1, nullptr)) return false;
      } while (eat(','));
      return eat(close) ? true : fail(std::string("expected ',' or '") + close + "'");
    }
    for (std::string_view lit : {"true", "false", "null"})
      if (s.substr(i, lit.size()) == lit) return i += lit.size(), true;
    if (c != '-' && !(c >= '0' && c <= '9')) return fail("expected a value");
    double v = 0;
    return number(v);
  }
};

}  // namespace

bool parse_json_numbers(std::string_view text, std::map<std::string, double>& out, std::string& error) {
  Parser p{text, 0, {}};
  out.clear();
  if (!p.eat('{')) return error = (p.fail("expected '{'"), p.err), false;
  if (!p.eat('}')) {
    do {
      std::string key;
      if (!p.string(key)) return error = p.err, false;
      if (!p.eat(':')) return error = (p.fail("expected ':'"), p.err), false;
      p.ws();
      const char c = p.i < text.size() ? text[p.i] : '\0';
      if (c == '-' || (c >= '0' && c <= '9')) {
        double v = 0;
        if (!p.number(v)) return error = p.err, false;
        out[key] = v;
      } else {
        if (text.substr(p.i, 4) == "null") out[key] = NAN;
        if (!p.value(0, nullptr)) return error = p.err, false;
      }
    } while (p.eat(','));
    if (!p.eat('}')) return error = (p.fail("expected ',' or '}'"), p.err), false;
  }
  p.ws();
  if (p.i != text.size()) return error = (p.fail("text after the object"), p.err), false;
  return true;
}

bool parse_json_strings(std::string_view text, std::map<std::string, std::string>& out, std::string& error) {
  Parser p{text, 0, {}};
  out.clear();
  if (!p.eat('{')) return error = (p.fail("expected '{'"), p.err), false;
  if (!p.eat('}')) {
    do {
      std::string key, val;
      if (!p.string(key)) return error = p.err, false;
      if (!p.eat(':')) return error = (p.fail("expected ':'"), p.err), false;
      p.ws();
      const bool is_string = p.i < text.size() && text[p.i] == '"';
      if (!p.value(0, is_string ? &val : nullptr)) return error = p.err, false;
      if (is_string) out[key] = std::move(val);
    } while (p.eat(','));
    if (!p.eat('}')) return error = (p.fail("expected ',' or '}'"), p.err), false;
  }
  p.ws();
  if (p.i != text.size()) return error = (p.fail("text after the object"), p.err), false;
  return true;
}

}  // namespace lm
