#pragma once
// What `microvm ctl` says when its command line is wrong. CLI11's own texts ("A subcommand is
// required", "The following arguments were not expected: paus") neither name the mistake nor
// say what would have worked; these do, with the nearest command or option as a hint.
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace microvm {

// The known word nearest to `typed` (edit distance at most 2, or `typed` a prefix of it), or
// "" when nothing is that close.
[[nodiscard]] std::string nearest_word(std::string_view typed, std::span<const std::string> known);

struct CtlSyntax {
  std::vector<std::string> commands;                                // info, pause, ...
  std::vector<std::string> global_options;                          // --api-sock, --json, --help
  std::map<std::string, std::vector<std::string>> command_options;  // snapshot -> --keep-paused, ...
};

// The message for a `microvm ctl` command line CLI11 refused. `args` are the arguments after
// "ctl"; `cli11_message` is CLI11's text, used only when none of the cases below applies:
//   - a word where a command belongs that is no command ("paus"): names it and the closest one;
//   - no command at all: lists them;
//   - an option no command takes ("--bogus"): names it, the command, and the closest option;
//   - --api-sock missing.
[[nodiscard]] std::string ctl_usage_error(std::span<const std::string> args, const CtlSyntax& syntax,
                                          std::string_view cli11_message);

}  // namespace microvm
