#include "tests/integration/support/embedded_vm.h"

#include <fcntl.h>

namespace microvm::testing {

std::unique_ptr<EmbeddedVm> EmbeddedVm::start(VmConfig config, std::string* error) {
  return launch(
      std::move(config), [](const VmConfig& c) { return Vm::create(c); }, error);
}

std::unique_ptr<EmbeddedVm> EmbeddedVm::start_restored(const std::string& dir, RestoreOptions options,
                                                       std::string* error) {
  return launch_restore(
      options, [&](const RestoreOptions& o) { return Vm::restore(dir, o); }, error);
}

std::unique_ptr<EmbeddedVm> EmbeddedVm::start_clone(const std::string& dir, RestoreOptions options,
                                                    std::string* error) {
  return launch_restore(
      options, [&](const RestoreOptions& o) { return Vm::clone_from(dir, o); }, error);
}

std::unique_ptr<EmbeddedVm> EmbeddedVm::start_pooled_clone(ClonePool& pool, RestoreOptions options,
                                                           std::string* error) {
  return launch_restore(
      options, [&](const RestoreOptions& o) { return Vm::clone_from(pool, o); }, error, /*console_input=*/true);
}

std::unique_ptr<EmbeddedVm> EmbeddedVm::launch_restore(const RestoreOptions& options, const RestoreFactory& restore,
                                                       std::string* error, bool console_input) {
  return launch(
      options.host,
      [&](const VmConfig& c) {
        RestoreOptions o = options;
        o.host = c;
        return restore(o);
      },
      error, console_input);
}

std::unique_ptr<EmbeddedVm> EmbeddedVm::launch(VmConfig config, const Factory& create, std::string* error,
                                               bool console_input) {
  std::unique_ptr<EmbeddedVm> e(new EmbeddedVm());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    *error = "pipe2 failed";
    return nullptr;
  }
  e->console_write_ = p[1];
  config.console_in = -1;
  if (console_input) {
    int in[2];
    if (::pipe2(in, O_CLOEXEC) != 0) {
      *error = "pipe2 failed";
      ::close(p[0]);
      ::close(p[1]);
      e->console_write_ = -1;
      return nullptr;
    }
    e->input_read_ = in[0];
    e->input_write_ = in[1];
    config.console_in = in[0];
  }
  config.console_out = p[1];
  config.rng = false;
  EmbeddedVm* self = e.get();
  config.log_sink = [self](LogLevel, std::string_view line) {
    std::lock_guard lock(self->mu_);
    self->log_.append(line);
    self->log_ += '\n';
  };
  auto vm = create(config);
  if (!vm) {
    *error = vm.error().what;
    ::close(p[0]);
    ::close(p[1]);
    e->console_write_ = -1;
    return nullptr;
  }
  e->vm_ = std::move(*vm);
  int read_fd = p[0];
  e->console_thread_ = std::thread([self, read_fd] { self->read_console(read_fd); });
  e->run_thread_ = std::thread([self] {
    auto r = self->vm_->run();
    std::lock_guard lock(self->mu_);
    self->exit_ = std::move(r);
    self->cv_.notify_all();
  });
  return e;
}

EmbeddedVm::~EmbeddedVm() {
  if (vm_) vm_->stop();
  if (run_thread_.joinable()) run_thread_.join();
  vm_.reset();
  if (console_write_ >= 0) ::close(console_write_);  // the reader sees EOF
  if (console_thread_.joinable()) console_thread_.join();
  if (input_write_ >= 0) ::close(input_write_);
  if (input_read_ >= 0) ::close(input_read_);
}

bool EmbeddedVm::send_input(std::string_view bytes) {
  if (input_write_ < 0) return false;
  while (!bytes.empty()) {
    ssize_t n = ::write(input_write_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void EmbeddedVm::read_console(int fd) {
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    std::lock_guard lock(mu_);
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == '\n') {
        lines_.push_back(partial_);
        partial_.clear();
      } else if (buf[i] != '\r') {
        partial_ += buf[i];
      }
    }
    cv_.notify_all();
  }
  ::close(fd);
}

std::vector<std::string> EmbeddedVm::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

std::string EmbeddedVm::log() const {
  std::lock_guard lock(mu_);
  return log_;
}

bool EmbeddedVm::wait_for(const std::function<bool(const std::vector<std::string>&)>& pred,
                          std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(lines_); });
}

std::optional<Result<VmExit>> EmbeddedVm::wait_exit(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return exit_.has_value(); });
  return exit_;
}

}  // namespace microvm::testing
