#include "boot/image_boot/grub_config.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <map>
#include <memory>

namespace microvm::image_boot {
namespace {

constexpr int kMaxNesting = 64;
constexpr uint64_t kMaxSteps = 200000;  // commands run in total: bounds loops through functions
constexpr size_t kMaxMenuItems = 4096;
constexpr size_t kMaxVarBytes = 64 * 1024;

// --- Lexing: words keep their quotes; they are expanded when the command runs. -------------
struct Token {
  enum Kind { kWord, kSep, kOpen, kClose } kind = kWord;
  std::string raw;
  bool plain = false;  // no quotes, no '$', no backslash: may be a keyword
  int line = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

Result<std::vector<Token>> lex(std::string_view s, const std::string& path) {
  std::vector<Token> out;
  size_t i = 0;
  int line = 1;
  auto err = [&](const std::string& what) { return fail(EINVAL, path + ":" + std::to_string(line) + ": " + what); };
  while (i < s.size()) {
    char c = s[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (c == '\\' && i + 1 < s.size() && s[i + 1] == '\n') {
      i += 2;
      ++line;
      continue;
    }
    if (c == '\n' || c == ';') {
      out.push_back({Token::kSep, "", false, line});
      if (c == '\n') ++line;
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    bool alone = i + 1 == s.size() || is_space(s[i + 1]) || s[i + 1] == '\n' || s[i + 1] == ';';
    if ((c == '{' || c == '}') && alone) {
      out.push_back({c == '{' ? Token::kOpen : Token::kClose, std::string(1, c), false, line});
      ++i;
      continue;
    }
    Token t{Token::kWord, "", true, line};
    while (i < s.size()) {
      c = s[i];
      if (is_space(c) || c == '\n' || c == ';') break;
      if (c == '\'' || c == '"') {
        t.plain = false;
        size_t end = i + 1;
        while (end < s.size() && s[end] != c) {
          if (c == '"' && s[end] == '\\' && end + 1 < s.size()) ++end;
          if (s[end] == '\n') ++line;
          ++end;
        }
        if (end >= s.size()) return err("unterminated quote");
        t.raw.append(s.substr(i, end + 1 - i));
        i = end + 1;
        continue;
      }
      if (c == '\\') {
        t.plain = false;
        t.raw.push_back(c);
        if (i + 1 < s.size()) t.raw.push_back(s[i + 1]);
        i += 2;
        continue;
      }
      if (c == '$') t.plain = false;
      t.raw.push_back(c);
      ++i;
    }
    out.push_back(std::move(t));
  }
  return out;
}

// --- Parsing into statements ---------------------------------------------------------------
struct Stmt;
using Block = std::vector<Stmt>;
struct Stmt {
  enum Kind { kCommand, kIf, kMenuEntry, kSubmenu, kFunction, kLoop } kind = kCommand;
  std::vector<std::string> words;             // the command, or the menuentry/submenu/function head
  std::vector<std::pair<Block, Block>> arms;  // if / elif: (condition, body)
  Block else_body;
  Block body;  // menuentry, submenu, function
  int line = 0;
};

bool is_keyword(const Token& t, std::string_view k) { return t.kind == Token::kWord && t.plain && t.raw == k; }

class Parser {
 public:
  Parser(std::vector<Token> toks, const std::string& path) : t_(std::move(toks)), path_(path) {}

  Result<Block> parse_all() {
    Block b = TRY(block({}, 0));
    if (i_ < t_.size()) return err("unexpected '" + t_[i_].raw + "'");
    return b;
  }

 private:
  std::unexpected<Error> err(const std::string& what) const {
    int line = i_ < t_.size() ? t_[i_].line : (t_.empty() ? 0 : t_.back().line);
    return fail(EINVAL, path_ + ":" + std::to_string(line) + ": " + what);
  }
  void skip_seps() {
    while (i_ < t_.size() && t_[i_].kind == Token::kSep) ++i_;
  }
  bool at_terminator(std::initializer_list<std::string_view> ends) const {
    if (i_ >= t_.size()) return true;
    if (t_[i_].kind == Token::kClose) return true;
    for (auto e : ends)
      if (is_keyword(t_[i_], e)) return true;
    return false;
  }
  Result<void> expect(std::string_view k) {
    skip_seps();
    if (i_ >= t_.size() || !is_keyword(t_[i_], k)) return err("expected '" + std::string(k) + "'");
    ++i_;
    return {};
  }
  std::vector<std::string> words_to_sep_or_brace() {
    std::vector<std::string> w;
    while (i_ < t_.size() && t_[i_].kind == Token::kWord) w.push_back(t_[i_++].raw);
    return w;
  }
  Result<Block> braced(int depth) {
    skip_seps();
    if (i_ >= t_.size() || t_[i_].kind != Token::kOpen) return err("expected '{'");
    ++i_;
    Block b = TRY(block({}, depth + 1));
    if (i_ >= t_.size() || t_[i_].kind != Token::kClose) return err("missing '}'");
    ++i_;
    return b;
  }

  Result<Block> block(std::initializer_list<std::string_view> ends, int depth) {
    if (depth > kMaxNesting) return err("blocks nested deeper than " + std::to_string(kMaxNesting));
    Block b;
    for (;;) {
      skip_seps();
      if (at_terminator(ends)) return b;
      const Token& first = t_[i_];
      if (first.kind == Token::kOpen) return err("unexpected '{'");
      Stmt s;
      s.line = first.line;
      if (is_keyword(first, "if")) {
        ++i_;
        for (;;) {
          Block cond = TRY(block({"then"}, depth + 1));
          TRY(expect("then"));
          Block body = TRY(block({"elif", "else", "fi"}, depth + 1));
          s.arms.emplace_back(std::move(cond), std::move(body));
          if (i_ < t_.size() && is_keyword(t_[i_], "elif")) {
            ++i_;
            continue;
          }
          break;
        }
        if (i_ < t_.size() && is_keyword(t_[i_], "else")) {
          ++i_;
          s.else_body = TRY(block({"fi"}, depth + 1));
        }
        TRY(expect("fi"));
        s.kind = Stmt::kIf;
      } else if (is_keyword(first, "menuentry") || is_keyword(first, "submenu")) {
        s.kind = first.raw == "menuentry" ? Stmt::kMenuEntry : Stmt::kSubmenu;
        ++i_;
        s.words = words_to_sep_or_brace();
        s.body = TRY(braced(depth));
      } else if (is_keyword(first, "function")) {
        ++i_;
        s.kind = Stmt::kFunction;
        s.words = words_to_sep_or_brace();
        if (s.words.size() != 1) return err("function needs exactly one name");
        s.body = TRY(braced(depth));
      } else if (is_keyword(first, "for")) {
        ++i_;
        s.kind = Stmt::kLoop;
        words_to_sep_or_brace();
        TRY(expect("do"));
        s.body = TRY(block({"done"}, depth + 1));
        TRY(expect("done"));
      } else if (is_keyword(first, "while") || is_keyword(first, "until")) {
        ++i_;
        s.kind = Stmt::kLoop;
        TRY(block({"do"}, depth + 1));
        TRY(expect("do"));
        s.body = TRY(block({"done"}, depth + 1));
        TRY(expect("done"));
      } else if (first.kind == Token::kWord) {
        s.kind = Stmt::kCommand;
        s.words = words_to_sep_or_brace();
        if (i_ < t_.size() && t_[i_].kind == Token::kOpen) return err("unexpected '{' after '" + s.words[0] + "'");
      } else {
        return err("unexpected '" + first.raw + "'");
      }
      b.push_back(std::move(s));
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  const std::string& path_;
};

// --- Running --------------------------------------------------------------------------------
struct Item {
  bool submenu = false;
  std::string title, id;
  const Block* body = nullptr;
  std::vector<Item> children;
};

struct Capture {
  bool saw_linux = false;
  ConfigEntry entry;
};

bool var_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

class Interp {
 public:
  Interp(const ReadConfigFile& read, const ReadDeviceFile& read_other, std::string main_path)
      : read_(read), read_other_(read_other) {
    // What GRUB 2.06 reports about itself; Debian's generated scripts test these.
    for (const char* f : {"feature_menuentry_id", "feature_default_font_path", "feature_all_video_module",
                          "feature_timeout_style", "feature_platform_search_hint", "feature_200_final"})
      vars_[f] = "y";
    auto slash = main_path.rfind('/');
    std::string dir = slash == std::string::npos || slash == 0 ? "" : main_path.substr(0, slash);
    vars_["prefix"] = dir;
    vars_["config_directory"] = dir;
    vars_["cmdpath"] = dir;
  }

  Result<void> run_file(std::string_view text, const std::string& path) {
    if (std::find(stack_.begin(), stack_.end(), path) != stack_.end()) {
      std::string chain;
      for (const auto& p : stack_) chain += p + " -> ";
      return fail(ELOOP, "GRUB configuration includes itself: " + chain + path);
    }
    if (stack_.size() >= kMaxIncludeDepth)
      return fail(ELOOP, path + ": GRUB configuration files nested deeper than " + std::to_string(kMaxIncludeDepth));
    auto toks = TRY(lex(text, path));
    Parser p(std::move(toks), path);
    blocks_.push_back(std::make_unique<Block>(TRY(p.parse_all())));
    const Block& b = *blocks_.back();
    stack_.push_back(path);
    auto r = run(b, nullptr, 0);
    stack_.pop_back();
    if (!r) return std::unexpected(r.error());
    return {};
  }

  Result<ConfigEntry> default_entry(const std::string& path) {
    if (items_.empty()) return fail(ENOENT, path + ": no menuentry");
    std::string def = vars_.count("default") ? vars_["default"] : "";
    const Item* chosen = nullptr;
    std::vector<const Item*> level;
    for (const auto& it : items_) level.push_back(&it);
    std::string rest = def;
    while (!level.empty()) {
      auto gt = rest.find('>');
      std::string part = rest.substr(0, gt);
      const Item* pick = nullptr;
      if (part.empty())
        pick = level[0];
      else if (std::all_of(part.begin(), part.end(), ::isdigit)) {
        size_t n = part.size() > 6 ? SIZE_MAX : std::stoul(part);
        if (n < level.size()) pick = level[n];
      } else {
        for (const Item* it : level)
          if (it->id == part || it->title == part) {
            pick = it;
            break;
          }
      }
      if (!pick) pick = level[0];  // GRUB too boots entry 0 when the default names nothing
      chosen = pick;
      if (!pick->submenu) break;
      level.clear();
      for (const auto& c : pick->children) level.push_back(&c);
      rest = gt == std::string::npos ? "" : rest.substr(gt + 1);
      chosen = nullptr;
    }
    if (!chosen) return fail(ENOENT, path + ": the default submenu has no menuentry");
    // Copied out first: the entry's body may define menu entries of its own, and the vector
    // holding `chosen` can reallocate while it runs.
    const std::string title = chosen->title;
    const Block* body = chosen->body;
    chosen = nullptr;
    Capture cap;
    cap.entry.title = title;
    TRY(run(*body, &cap, 0));
    if (!cap.saw_linux) return fail(ENOENT, path + ": menuentry '" + title + "' has no linux command");
    return cap.entry;
  }

 private:
  // Expands one raw word into zero or more words.
  std::vector<std::string> expand(const std::string& raw) {
    std::string out;
    bool quoted = false, any_expansion = false;
    size_t i = 0;
    auto var_at = [&](size_t& j) {
      // j points past '$'
      std::string name;
      if (j < raw.size() && raw[j] == '{') {
        size_t end = raw.find('}', j);
        if (end == std::string::npos) {
          name = raw.substr(j + 1);
          j = raw.size();
        } else {
          name = raw.substr(j + 1, end - j - 1);
          j = end + 1;
        }
      } else {
        while (j < raw.size() && var_char(raw[j])) name.push_back(raw[j++]);
        if (name.empty()) return std::string("$");
      }
      auto it = vars_.find(name);
      return it == vars_.end() ? std::string() : it->second;
    };
    while (i < raw.size()) {
      char c = raw[i];
      if (c == '\'') {
        quoted = true;
        size_t end = raw.find('\'', i + 1);
        if (end == std::string::npos) end = raw.size();
        out.append(raw, i + 1, end - i - 1);
        i = end + 1;
      } else if (c == '"') {
        quoted = true;
        ++i;
        while (i < raw.size() && raw[i] != '"') {
          if (raw[i] == '\\' && i + 1 < raw.size() &&
              std::string_view("\\\"$\n").find(raw[i + 1]) != std::string_view::npos) {
            out.push_back(raw[i + 1]);
            i += 2;
          } else if (raw[i] == '$') {
            ++i;
            out += var_at(i);
          } else {
            out.push_back(raw[i++]);
          }
        }
        ++i;
      } else if (c == '\\') {
        if (i + 1 < raw.size()) out.push_back(raw[i + 1]);
        i += 2;
      } else if (c == '$') {
        ++i;
        any_expansion = true;
        out += var_at(i);
      } else {
        out.push_back(c);
        ++i;
      }
    }
    if (quoted || !any_expansion) return {out};
    std::vector<std::string> words;  // unquoted expansions split on blanks, as in a shell
    size_t k = 0;
    while (k < out.size()) {
      while (k < out.size() && (out[k] == ' ' || out[k] == '\t' || out[k] == '\n')) ++k;
      size_t e = k;
      while (e < out.size() && out[e] != ' ' && out[e] != '\t' && out[e] != '\n') ++e;
      if (e > k) words.push_back(out.substr(k, e - k));
      k = e;
    }
    return words;
  }

  std::vector<std::string> expand_all(const std::vector<std::string>& raws) {
    std::vector<std::string> out;
    for (const auto& r : raws)
      for (auto& w : expand(r)) out.push_back(std::move(w));
    return out;
  }

  void set_var(const std::string& name, std::string value) {
    if (value.size() > kMaxVarBytes) value.resize(kMaxVarBytes);
    // GRUB accepts `set root=(hd0,1)` and keeps the device name without parentheses.
    if (name == "root" && value.size() >= 2 && value.front() == '(' && value.back() == ')')
      value = value.substr(1, value.size() - 2);
    if (vars_.size() < 4096 || vars_.count(name)) vars_[name] = std::move(value);
  }

  // GRUB device names (without parentheses) to FileRef devices.
  static std::string device_of(std::string dev) {
    if (dev.size() >= 2 && dev.front() == '(' && dev.back() == ')') dev = dev.substr(1, dev.size() - 2);
    if (dev.empty() || dev.starts_with("uuid=") || dev.starts_with("label=") || dev.starts_with("file=")) return dev;
    auto comma = dev.find(',');
    if (dev.starts_with("hd0") && comma == 3) {
      std::string part = dev.substr(comma + 1);
      for (const char* scheme : {"gpt", "msdos"})
        if (part.starts_with(scheme)) part = part.substr(std::strlen(scheme));
      if (!part.empty() && part.size() < 4 && std::all_of(part.begin(), part.end(), ::isdigit)) return "part" + part;
    }
    return "grub:" + dev;  // a device we cannot map: reported when the file is looked up
  }

  FileRef file_ref(const std::string& word) {
    FileRef f;
    if (!word.empty() && word[0] == '(') {
      auto close = word.find(')');
      if (close != std::string::npos) {
        f.device = device_of(word.substr(0, close + 1));
        f.path = word.substr(close + 1);
        return f;
      }
    }
    auto it = vars_.find("root");
    f.device = it == vars_.end() ? "" : device_of(it->second);
    f.path = word;
    return f;
  }

  Result<bool> test(std::vector<std::string> a) {
    if (!a.empty() && a.back() == "]") a.pop_back();
    // Left-to-right -a / -o, each side a primary.
    bool result = false;
    std::string join = "";
    size_t i = 0;
    bool first = true;
    while (i <= a.size()) {
      size_t j = i;
      while (j < a.size() && a[j] != "-a" && a[j] != "-o") ++j;
      std::vector<std::string> p(a.begin() + i, a.begin() + j);
      bool v = TRY(primary(p));
      result = first ? v : join == "-a" ? (result && v) : (result || v);
      first = false;
      if (j >= a.size()) break;
      join = a[j];
      i = j + 1;
    }
    return result;
  }

  Result<bool> primary(std::vector<std::string> p) {
    bool negate = false;
    while (!p.empty() && p[0] == "!") {
      negate = !negate;
      p.erase(p.begin());
    }
    bool v = false;
    if (p.empty())
      v = false;
    else if (p.size() == 1)
      v = !p[0].empty();
    else if (p.size() == 2 && p[0] == "-z")
      v = p[1].empty();
    else if (p.size() == 2 && p[0] == "-n")
      v = !p[1].empty();
    else if (p.size() == 2 && (p[0] == "-f" || p[0] == "-e" || p[0] == "-s" || p[0] == "-d")) {
      FileRef f = file_ref(p[1]);
      if (!f.device.empty() || p[0] == "-d")
        v = false;  // other devices and directories: not probed
      else {
        auto got = TRY(read_(f.path));
        v = got.has_value() && (p[0] != "-s" || !got->empty());
      }
    } else if (p.size() == 3 && (p[1] == "=" || p[1] == "=="))
      v = p[0] == p[2];
    else if (p.size() == 3 && p[1] == "!=")
      v = p[0] != p[2];
    else
      v = false;  // numeric and other tests: not needed for the scripts distributions write
    return negate ? !v : v;
  }

  Result<void> search(const std::vector<std::string>& a, std::string mode) {
    std::string var = "root", value;
    bool var_given = false;
    for (size_t i = 1; i < a.size(); ++i) {
      const std::string& w = a[i];
      if (w == "--fs-uuid" || w == "-u")
        mode = "uuid";
      else if (w == "--label" || w == "-l")
        mode = "label";
      else if (w == "--file" || w == "-f")
        mode = "file";
      else if (w.starts_with("--set="))
        var = w.substr(6);
      else if ((w == "--set" || w == "-s") && i + 1 < a.size() && !a[i + 1].starts_with("-") && mode != "" &&
               i + 2 < a.size())
        var = a[++i];
      else if (w == "--set" || w == "-s")
        var = "root";
      else if (w.starts_with("-"))
        continue;  // --no-floppy, --hint*=...
      else if (value.empty())
        value = w;
      else if (a[0] != "search" && !var_given) {  // search.fs_uuid UUID VAR [HINT...]
        var = w;
        var_given = true;
      }
    }
    if (mode.empty()) mode = "file";
    if (!value.empty()) set_var(var, mode + "=" + value);
    return {};
  }

  Result<bool> command(const Stmt& s, Capture* cap, int depth) {
    auto a = expand_all(s.words);
    if (a.empty()) return true;
    const std::string& c = a[0];
    if (auto eq = c.find('=');
        eq != std::string::npos && eq > 0 && a.size() == 1 && std::all_of(c.begin(), c.begin() + eq, var_char)) {
      set_var(c.substr(0, eq), c.substr(eq + 1));
      return true;
    }
    if (c == "set") {
      for (size_t i = 1; i < a.size(); ++i) {
        auto eq = a[i].find('=');
        if (eq == std::string::npos) continue;
        set_var(a[i].substr(0, eq), a[i].substr(eq + 1));
      }
      return true;
    }
    if (c == "unset") {
      for (size_t i = 1; i < a.size(); ++i) vars_.erase(a[i]);
      return true;
    }
    if (c == "[" || c == "test") return test(std::vector<std::string>(a.begin() + 1, a.end()));
    if (c == "true") return true;
    if (c == "false") return false;
    if (c == "search") {
      TRY(search(a, ""));
      return true;
    }
    if (c == "search.fs_uuid") {
      TRY(search(a, "uuid"));
      return true;
    }
    if (c == "search.fs_label") {
      TRY(search(a, "label"));
      return true;
    }
    if (c == "search.file") {
      TRY(search(a, "file"));
      return true;
    }
    if (c == "source" || c == "." || c == "configfile") {
      if (a.size() < 2) return false;
      FileRef f = file_ref(a[1]);
      if (!f.device.empty()) {
        if (!read_other_) return false;
        auto text = TRY(read_other_(f));
        if (!text) return false;
        TRY(run_file(*text, "(" + f.device + ")" + f.path));  // the device is part of its identity for loops
        return true;
      }
      auto text = TRY(read_(f.path));
      if (!text) return false;
      TRY(run_file(*text, f.path));
      return true;
    }
    if (c == "load_env") {
      std::string env_path = vars_["prefix"] + "/grubenv";
      for (size_t i = 1; i + 1 < a.size(); ++i)
        if (a[i] == "-f" || a[i] == "--file") env_path = file_ref(a[i + 1]).path;
      auto text = TRY(read_(env_path));
      if (!text) return false;
      size_t k = 0;
      while (k < text->size()) {
        size_t e = text->find('\n', k);
        if (e == std::string::npos) e = text->size();
        std::string l = text->substr(k, e - k);
        auto eq = l.find('=');
        if (!l.empty() && l[0] != '#' && eq != std::string::npos && eq > 0) set_var(l.substr(0, eq), l.substr(eq + 1));
        k = e + 1;
      }
      return true;
    }
    if (cap && (c == "linux" || c == "linuxefi" || c == "linux16")) {
      if (a.size() < 2) return fail(EINVAL, "'" + c + "' without a kernel path");
      cap->saw_linux = true;
      cap->entry.kernel = file_ref(a[1]);
      std::string opts;
      for (size_t i = 2; i < a.size(); ++i) opts += (opts.empty() ? "" : " ") + a[i];
      cap->entry.options = opts;
      return true;
    }
    if (cap && (c == "initrd" || c == "initrdefi" || c == "initrd16")) {
      cap->entry.initrds.clear();
      for (size_t i = 1; i < a.size(); ++i) cap->entry.initrds.push_back(file_ref(a[i]));
      return true;
    }
    if (auto f = functions_.find(c); f != functions_.end()) {
      TRY(run(*f->second, cap, depth + 1));
      return true;
    }
    return true;  // insmod, echo, load_video, terminal_output, ...: nothing to do for us
  }

  // Runs a block; returns the status of its last command.
  Result<bool> run(const Block& b, Capture* cap, int depth) {
    if (depth > kMaxNesting)
      return fail(ELOOP, "GRUB script nested deeper than " + std::to_string(kMaxNesting) + " (recursion?)");
    bool status = true;
    for (const Stmt& s : b) {
      if (++steps_ > kMaxSteps)
        return fail(ELOOP, "GRUB script runs more than " + std::to_string(kMaxSteps) + " commands");
      switch (s.kind) {
        case Stmt::kCommand:
          status = TRY(command(s, cap, depth));
          break;
        case Stmt::kIf: {
          bool done = false;
          for (const auto& [cond, body] : s.arms) {
            if (TRY(run(cond, cap, depth + 1))) {
              status = TRY(run(body, cap, depth + 1));
              done = true;
              break;
            }
          }
          if (!done) status = TRY(run(s.else_body, cap, depth + 1));
          break;
        }
        case Stmt::kFunction: {
          if (functions_.size() < 1024) functions_[s.words[0]] = &s.body;
          break;
        }
        case Stmt::kLoop:
          break;  // not used by generated configs for menus
        case Stmt::kMenuEntry:
        case Stmt::kSubmenu: {
          if (cap) break;  // a menu inside the running entry: not ours to open
          if (menu_count_ >= kMaxMenuItems) return fail(E2BIG, "more than 4096 menu entries");
          ++menu_count_;
          Item it;
          it.submenu = s.kind == Stmt::kSubmenu;
          it.body = &s.body;
          auto a = expand_all(s.words);
          for (size_t i = 0; i < a.size(); ++i) {
            if (a[i] == "--id" && i + 1 < a.size())
              it.id = a[++i];
            else if ((a[i] == "--class" || a[i] == "--users" || a[i] == "--hotkey") && i + 1 < a.size())
              ++i;
            else if (a[i].starts_with("--"))
              continue;
            else if (it.title.empty())
              it.title = a[i];
          }
          auto& target = current_ ? current_->children : items_;
          if (it.submenu) {
            Item* saved = current_;
            target.push_back(std::move(it));
            current_ = &target.back();
            auto r = run(s.body, nullptr, depth + 1);
            current_ = saved;
            if (!r) return std::unexpected(r.error());
          } else {
            target.push_back(std::move(it));
          }
          break;
        }
      }
    }
    return status;
  }

  const ReadConfigFile& read_;
  const ReadDeviceFile& read_other_;
  std::map<std::string, std::string> vars_;
  std::map<std::string, const Block*> functions_;
  std::vector<Item> items_;
  Item* current_ = nullptr;
  size_t menu_count_ = 0;
  uint64_t steps_ = 0;
  std::vector<std::string> stack_;
  std::deque<std::unique_ptr<Block>> blocks_;  // every parsed file stays alive: items point into them
};

}  // namespace

Result<ConfigEntry> parse_grub_config(std::string_view text, const std::string& path, const ReadConfigFile& read,
                                      const ReadDeviceFile& read_other) {
  Interp in(read, read_other, path);
  TRY(in.run_file(text, path));
  return in.default_entry(path);
}

}  // namespace microvm::image_boot
