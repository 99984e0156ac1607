#pragma once
// QEMU's spellings for `microvm run`: people type `-m 1G -smp 2 -nic user,hostfwd=...` from
// habit (README, "Coming from QEMU"). Those with a microvm equivalent are rewritten to it and
// a note names the microvm flag, so the user learns it; those without one are refused with
// the flag to use instead. Arguments that are already microvm's pass through untouched.
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm {

struct QemuTranslation {
  std::vector<std::string> args;   // microvm's own spelling
  std::vector<std::string> notes;  // one line per rewritten or ignored QEMU option
};

// Error: a QEMU option microvm cannot take as it is; the message names what to use.
// `takes_value(name)` says whether microvm's own option `name` ("--memory", "-m") takes a
// separate value, which is then passed on untouched even if it starts with '-'.
[[nodiscard]] Result<QemuTranslation> translate_qemu_args(std::span<const std::string> args,
                                                          const std::function<bool(const std::string&)>& takes_value);

// Whether `arg` is one of the QEMU options translate_qemu_args knows ("-kernel", "-nic", ...).
bool is_qemu_option(const std::string& arg);

}  // namespace microvm
