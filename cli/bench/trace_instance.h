#pragma once
// A private tracefs instance (<tracefs>/instances/<name>) that records the syscall entries
// and exits of this process's descendants: set_event_pid holds the bench's own pid and
// options/event-fork adds every child and thread it starts, so a VMM is traced from its
// execve on, without ptrace and without touching global tracing or another user's
// instance. The instance is removed by the destructor.
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace microvm::bench {

class TraceInstance {
 public:
  // Instances are named kNamePrefix + `name`; by convention `name` is the bench's pid.
  static constexpr std::string_view kNamePrefix = "microvm-bench-";
  // Fails (the caller falls back to strace) without a tracefs with instances or without
  // the right to create one (not root).
  [[nodiscard]] static Result<TraceInstance> create(const std::string& name);
  TraceInstance(TraceInstance&& o) noexcept : dir_(std::move(o.dir_)) { o.dir_.clear(); }
  TraceInstance& operator=(TraceInstance&&) = delete;
  TraceInstance(const TraceInstance&) = delete;
  TraceInstance& operator=(const TraceInstance&) = delete;
  ~TraceInstance();

  // Clears the buffer and starts recording execve and ioctl entries/exits of this
  // process's future descendants; ioctl entries only for `ioctl_cmds`.
  [[nodiscard]] Result<void> start(std::span<const uint32_t> ioctl_cmds);
  [[nodiscard]] Result<void> stop();
  // The recorded events as text (see kvm_trace.h for the format).
  [[nodiscard]] Result<std::string> text() const;
  const std::string& dir() const { return dir_; }

 private:
  explicit TraceInstance(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Result<void> write(const std::string& file, const std::string& value) const;

  std::string dir_;
};

}  // namespace microvm::bench
