#pragma once
// Carries a back end's stderr (virtiofsd's, passt's) into microvm's log instead of the guest's
// console: the back end writes lines into a pipe, and the event loop reads them whenever
// the pipe is readable. virtiofsd's own chatter ("virtio_loop: Unexpected poll revents 11")
// is logged at debug level; lines that say error or fail at warn level, so real problems
// still show with the default --log-level.
#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/log.h"

namespace microvm {

class BackendLogRelay {
 public:
  // `read_end`: the pipe's non-blocking read end. `source` prefixes every line ("virtiofsd share").
  BackendLogRelay(Fd read_end, std::string source, const Logger& log)
      : fd_(std::move(read_end)), source_(std::move(source)), log_(&log) {}

  int fd() const { return fd_.get(); }
  // Reads what is there (never blocks) and logs each complete line. Returns false at end of
  // file or on an error: the owner then unregisters the fd.
  bool drain();

  // The log level for one line of back-end output.
  static LogLevel level_for(std::string_view line);

 private:
  void emit(std::string_view line);

  Fd fd_;
  std::string source_;
  const Logger* log_;
  std::string partial_;  // an unfinished line, bounded by kMaxLine
};

}  // namespace microvm
