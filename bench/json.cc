#include "bench/json.h"

#include <cstdlib>
#include <limits>
#include <string>

namespace syncpool_bench::json {

const array* value::as_array() const {
  const auto* a = std::get_if<std::shared_ptr<array>>(&v_);
  return a != nullptr ? a->get() : nullptr;
}

const object* value::as_object() const {
  const auto* o = std::get_if<std::shared_ptr<object>>(&v_);
  return o != nullptr ? o->get() : nullptr;
}

const value* value::find(std::string_view key) const {
  const object* o = as_object();
  if (o == nullptr) return nullptr;
  const auto it = o->find(key);
  return it != o->end() ? &it->second : nullptr;
}

std::optional<double> value::number_at(std::string_view key) const {
  const value* v = find(key);
  if (v == nullptr || v->number() == nullptr) return std::nullopt;
  return *v->number();
}

std::string value::string_at(std::string_view key) const {
  const value* v = find(key);
  return v != nullptr && v->string() != nullptr ? *v->string() : std::string();
}

namespace {

class parser {
 public:
  explicit parser(std::string_view text) : s_(text) {}

  std::optional<value> document(std::string* error) {
    std::optional<value> v = parse_value();
    skip_space();
    if (v && pos_ != s_.size()) fail("trailing characters");
    if (!error_.empty()) {
      *error = error_ + " at offset " + std::to_string(pos_);
      return std::nullopt;
    }
    return v;
  }

 private:
  void fail(const char* what) {
    if (error_.empty()) error_ = what;
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' ||
                                s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool eat_word(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::optional<value> parse_value() {
    if (++depth_ > 64) {
      fail("nested too deeply");
      return std::nullopt;
    }
    std::optional<value> v = parse_value_inner();
    --depth_;
    return v;
  }

  std::optional<value> parse_value_inner() {
    skip_space();
    if (pos_ >= s_.size()) {
      fail("unexpected end");
      return std::nullopt;
    }
    const char c = s_[pos_];
    if (c == '{') return parse_object();
    if (c == '[') return parse_array();
    if (c == '"') {
      std::optional<std::string> str = parse_string();
      if (!str) return std::nullopt;
      return value(std::move(*str));
    }
    if (eat_word("true")) return value(true);
    if (eat_word("false")) return value(false);
    if (eat_word("null")) return value();
    // Google Benchmark writes these for infinite or undefined values.
    if (eat_word("NaN") || eat_word("-nan") || eat_word("nan")) {
      return value(std::numeric_limits<double>::quiet_NaN());
    }
    if (eat_word("inf") || eat_word("Infinity")) {
      return value(std::numeric_limits<double>::infinity());
    }
    if (eat_word("-inf") || eat_word("-Infinity")) {
      return value(-std::numeric_limits<double>::infinity());
    }
    return parse_number();
  }

  std::optional<value> parse_number() {
    const std::string token(s_.substr(pos_, 64));
    char* end = nullptr;
    const double d = std::strtod(token.c_str(), &end);
    if (end == token.c_str()) {
      fail("expected a value");
      return std::nullopt;
    }
    pos_ += static_cast<std::size_t>(end - token.c_str());
    return value(d);
  }

  std::optional<std::string> parse_string() {
    ++pos_;  // the opening quote
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) break;
      c = s_[pos_++];
      switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (pos_ + 4 > s_.size()) {
            fail("bad \\u escape");
            return std::nullopt;
          }
          const unsigned code = static_cast<unsigned>(
              std::strtoul(std::string(s_.substr(pos_, 4)).c_str(), nullptr, 16));
          pos_ += 4;
          append_utf8(out, code);
          break;
        }
        default: out += c;  // \" \\ \/
      }
    }
    if (pos_ >= s_.size()) {
      fail("unterminated string");
      return std::nullopt;
    }
    ++pos_;  // the closing quote
    return out;
  }

  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xc0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      out += static_cast<char>(0xe0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    }
  }

  std::optional<value> parse_array() {
    ++pos_;
    array items;
    if (eat(']')) return value(std::move(items));
    do {
      std::optional<value> item = parse_value();
      if (!item) return std::nullopt;
      items.push_back(std::move(*item));
    } while (eat(','));
    if (!eat(']')) {
      fail("expected ',' or ']'");
      return std::nullopt;
    }
    return value(std::move(items));
  }

  std::optional<value> parse_object() {
    ++pos_;
    object members;
    if (eat('}')) return value(std::move(members));
    do {
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != '"') {
        fail("expected a member name");
        return std::nullopt;
      }
      std::optional<std::string> key = parse_string();
      if (!key) return std::nullopt;
      if (!eat(':')) {
        fail("expected ':'");
        return std::nullopt;
      }
      std::optional<value> member = parse_value();
      if (!member) return std::nullopt;
      members.insert_or_assign(std::move(*key), std::move(*member));
    } while (eat(','));
    if (!eat('}')) {
      fail("expected ',' or '}'");
      return std::nullopt;
    }
    return value(std::move(members));
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  std::string error_;
};

}  // namespace

std::optional<value> parse(std::string_view text, std::string* error) {
  return parser(text).document(error);
}

}  // namespace syncpool_bench::json
