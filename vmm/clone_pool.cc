#include "vmm/clone_pool.h"

#include <fcntl.h>

#include "vmm/sandbox_needs.h"

namespace microvm {
namespace {

// After a failed attempt the refill thread waits this long (or for the next take) before it
// tries again, rather than spinning on a host that is out of something.
constexpr auto kRetryAfterFailure = std::chrono::milliseconds(200);

}  // namespace

Result<std::unique_ptr<ClonePoolImpl>> ClonePoolImpl::create(const std::string& state_path,
                                                             const std::string& memory_path, unsigned size) {
  if (size == 0 || size > kMaxSize)
    return fail(EINVAL, "clone pool: size must be between 1 and " + std::to_string(kMaxSize));
  std::unique_ptr<ClonePoolImpl> pool(new ClonePoolImpl());
  pool->state_path_ = state_path;
  pool->memory_path_ = memory_path;
  pool->size_ = size;
  pool->snapshot_ = TRY(read_snapshot_state(state_path));
  pool->host_ = read_host_limits();
  pool->memory_ = Fd(::open(memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pool->memory_) return fail_errno("open snapshot memory file " + memory_path);
  // The first shell is made here: a snapshot this host cannot restore (memory file too
  // short, a CPU model KVM refuses) fails now rather than on the first clone.
  auto first = TRY(pool->make_shell());
  pool->shells_.push_back(std::move(first));
  pool->refiller_ = std::jthread([p = pool.get()](std::stop_token stop) { p->refill(stop); });
  return pool;
}

ClonePoolImpl::~ClonePoolImpl() {
  refiller_.request_stop();
  if (refiller_.joinable()) refiller_.join();
}

Result<KvmShell> ClonePoolImpl::make_shell() const {
  return create_kvm_shell(snapshot_, memory_.get(), FileMapMode::kPrivate, memory_path_);
}

void ClonePoolImpl::refill(std::stop_token stop) {
  pthread_setname_np(pthread_self(), "vmm-clonepool");
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    if (shells_.size() >= size_) {
      changed_.wait(lock, stop, [this] { return shells_.size() < size_; });
      continue;
    }
    lock.unlock();
    auto shell = make_shell();
    lock.lock();
    if (shell) {
      shells_.push_back(std::move(*shell));
      refill_error_.reset();
      changed_.notify_all();
    } else {
      refill_error_ = shell.error().context("clone pool");
      changed_.notify_all();
      const size_t before = shells_.size();
      changed_.wait_for(lock, stop, kRetryAfterFailure, [&] { return shells_.size() < before; });
    }
  }
}

Result<std::unique_ptr<Vm>> ClonePoolImpl::take(RestoreOptions options) {
  if (options.prefault) return fail(EINVAL, "clone_from: a clone loads guest RAM on demand; prefault does not apply");
  if (!options.memory_path.empty() && options.memory_path != memory_path_)
    return fail(EINVAL, "clone_from: this pool maps " + memory_path_ + ", not " + options.memory_path +
                            " (a pool serves the snapshot it was prepared for)");
  options.clone = true;
  options.memory_path = memory_path_;
  auto config = TRY(restored_config(snapshot_, options, state_path_, host_));
  std::optional<KvmShell> shell;
  std::shared_ptr<const SandboxFilters> filters;
  {
    std::lock_guard lock(mu_);
    if (!shells_.empty()) {
      shell = std::move(shells_.front());
      shells_.pop_front();
    }
    filters = filters_;
  }
  if (!shell) shell = TRY(make_shell());
  auto m = Machine::restore_into(std::move(*shell), snapshot_, config, options, state_path_, filters.get());
  if (m && !(filters && filters->needs == sandbox_needs_for(config))) {
    auto mine = std::make_shared<const SandboxFilters>((*m)->sandbox_filters());
    std::lock_guard lock(mu_);
    filters_ = std::move(mine);
  }
  // Only now: the refill competes for the CPU, the mmap lock and KVM with the clone being
  // made, on a host with few cores doubling its cost.
  changed_.notify_all();
  if (!m) return std::unexpected(m.error());
  return std::unique_ptr<Vm>(std::move(*m));
}

unsigned ClonePoolImpl::ready() const {
  std::lock_guard lock(mu_);
  return static_cast<unsigned>(shells_.size());
}

Result<void> ClonePoolImpl::wait_until_full(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  bool full = changed_.wait_for(lock, timeout, [this] { return shells_.size() >= size_ || refill_error_; });
  if (refill_error_) return std::unexpected(*refill_error_);
  if (!full)
    return fail(ETIMEDOUT, "clone pool: " + std::to_string(shells_.size()) + " of " + std::to_string(size_) +
                               " VMs ready after the wait");
  return {};
}

}  // namespace microvm
