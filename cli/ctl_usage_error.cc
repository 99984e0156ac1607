#include "cli/ctl_usage_error.h"

#include <algorithm>

namespace microvm {
namespace {

// Levenshtein distance, for words of command-line length.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool contains(std::span<const std::string> words, std::string_view w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

std::string join(std::span<const std::string> words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

std::string option_name(std::string_view arg) { return std::string(arg.substr(0, arg.find('='))); }

constexpr char kHelpHint[] = "\nRun 'microvm ctl --help' for the commands and options.";

}  // namespace

std::string nearest_word(std::string_view typed, std::span<const std::string> known) {
  if (typed.empty()) return "";
  std::string best;
  size_t best_distance = 3;  // farther than 2 is no hint, only noise
  for (const auto& k : known) {
    size_t d = k.starts_with(typed) ? 1 : edit_distance(typed, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  return best;
}

std::string ctl_usage_error(std::span<const std::string> args, const CtlSyntax& syntax,
                            std::string_view cli11_message) {
  // The first word that is neither an option nor an option's value is where the command goes.
  std::string command;
  std::vector<std::string> options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.starts_with("-")) {
      options.push_back(option_name(a));
      if (a == "--api-sock") ++i;  // its value follows
      continue;
    }
    if (command.empty()) command = a;
  }
  if (!command.empty() && !contains(syntax.commands, command)) {
    std::string msg = "unknown command '" + command + "'";
    if (auto hint = nearest_word(command, syntax.commands); !hint.empty()) msg += "; did you mean '" + hint + "'?";
    return msg + "\nCommands: " + join(syntax.commands) + "." + kHelpHint;
  }
  std::vector<std::string> known_options = syntax.global_options;
  if (auto own = syntax.command_options.find(command); own != syntax.command_options.end())
    known_options.insert(known_options.end(), own->second.begin(), own->second.end());
  for (const auto& o : options) {
    if (contains(known_options, o)) continue;
    std::string msg = "unknown option '" + o + "'";
    if (!command.empty()) msg += " for 'microvm ctl " + command + "'";
    if (auto hint = nearest_word(o, known_options); !hint.empty()) msg += "; did you mean '" + hint + "'?";
    return msg + kHelpHint;
  }
  if (command.empty()) return "which command? One of: " + join(syntax.commands) + "." + kHelpHint;
  if (!contains(options, "--api-sock"))
    return "--api-sock PATH is required: the socket the microVM was started with ('microvm run --api-sock "
           "PATH')." +
           std::string(kHelpHint);
  return std::string(cli11_message) + kHelpHint;
}

}  // namespace microvm
