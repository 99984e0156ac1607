#pragma once
// A compiled default-deny seccomp filter. Compiled once on the setup thread (libseccomp
// allocates); installed by each thread of the role on itself, before it does any work.
#include <linux/filter.h>

#include <vector>

#include "base/result.h"
#include "vmm/sandbox/policy.h"

namespace microvm {

class SeccompProgram {
 public:
  // Everything outside `policy` traps: the kernel sends SIGSYS and never runs the call
  // (sigsys_reporter.h reports it and ends the process).
  [[nodiscard]] static Result<SeccompProgram> compile(const SyscallPolicy& policy);

  // Installs the filter on the calling thread only (no TSYNC: the caller's other threads,
  // an embedder's included, are untouched), after setting no_new_privs on that thread.
  // Also installs the SIGSYS reporter once per process and names `role` in its reports.
  [[nodiscard]] Result<void> install(ThreadRole role) const;

  size_t instructions() const { return code_.size(); }

 private:
  explicit SeccompProgram(std::vector<sock_filter> code) : code_(std::move(code)) {}
  std::vector<sock_filter> code_;
};

}  // namespace microvm
