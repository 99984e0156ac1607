#pragma once
// The ClonePool behind Vm::prepare_clones() (include/microvm/vm.h): one parsed snapshot, its
// open memory file, and KvmShells prepared by a refill thread the pool owns.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "base/fd.h"
#include "microvm/vm.h"
#include "vmm/config_check.h"
#include "vmm/kvm_shell.h"
#include "vmm/machine.h"
#include "vmm/snapshot_reader.h"

namespace microvm {

class ClonePoolImpl final : public ClonePool {
 public:
  static constexpr unsigned kMaxSize = 64;

  [[nodiscard]] static Result<std::unique_ptr<ClonePoolImpl>> create(const std::string& state_path,
                                                                     const std::string& memory_path, unsigned size);
  ~ClonePoolImpl() override;

  // A clone on a prepared shell (or one made now when none is ready).
  [[nodiscard]] Result<std::unique_ptr<Vm>> take(RestoreOptions options);

  unsigned ready() const override;
  Result<void> wait_until_full(std::chrono::milliseconds timeout) const override;

 private:
  ClonePoolImpl() = default;
  [[nodiscard]] Result<KvmShell> make_shell() const;
  void refill(std::stop_token stop);

  // Set by create(), read-only afterwards (the refill thread reads them without the lock).
  std::string state_path_;
  std::string memory_path_;
  DecodedSnapshot snapshot_;
  Fd memory_;
  HostLimits host_;
  unsigned size_ = 0;

  mutable std::mutex mu_;
  mutable std::condition_variable_any changed_;    // a shell was added or taken, or the refill failed
  std::deque<KvmShell> shells_;                    // guarded by mu_
  std::optional<Error> refill_error_;              // guarded by mu_; cleared by the next success
  std::shared_ptr<const SandboxFilters> filters_;  // guarded by mu_: the last clone's
  // Last member: stopped and joined first, while everything it uses still exists.
  std::jthread refiller_;
};

}  // namespace microvm
