#pragma once
// Puts a terminal into raw mode for the guest console and restores it on every exit path:
// destructor, normal exit, and the termination signals the CLI handles.
#include <termios.h>

namespace microvm {

class RawTerminal {
 public:
  // Does nothing if `fd` is not a terminal.
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

  // Async-signal-safe restore, for signal handlers and atexit.
  static void restore_saved();

 private:
  bool active_ = false;
};

}  // namespace microvm
