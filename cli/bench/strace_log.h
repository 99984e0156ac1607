#pragma once
// Reads `strace -f -ttt -e trace=execve,ioctl -o FILE` output: the time of the first
// execve and of the first KVM_RUN ioctl (entry timestamps, any thread). Applied to every
// VMM the same way, so strace's own overhead is symmetric.
#include <optional>
#include <string_view>

namespace microvm::bench {

struct StraceTimes {
  std::optional<double> first_execve;  // seconds since the epoch
  std::optional<double> first_kvm_run;
};

StraceTimes parse_strace_times(std::string_view log);

}  // namespace microvm::bench
