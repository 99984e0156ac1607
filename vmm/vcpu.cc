#include "vmm/vcpu.h"

#include <signal.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "vmm/sandbox/thread_signals.h"

namespace microvm {
namespace {

// KVM_RUN is interrupted by a signal; the handler itself has nothing to do. This is the only
// process-wide state microvm installs (embedders: it uses SIGUSR2, see README).
constexpr int kKickSignal = SIGUSR2;

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kKickSignal, &sa, nullptr);
  });
}

const char* exit_reason_name(uint32_t r) {
  switch (r) {
    case KVM_EXIT_UNKNOWN:
      return "KVM_EXIT_UNKNOWN";
    case KVM_EXIT_EXCEPTION:
      return "KVM_EXIT_EXCEPTION";
    case KVM_EXIT_HYPERCALL:
      return "KVM_EXIT_HYPERCALL";
    case KVM_EXIT_DEBUG:
      return "KVM_EXIT_DEBUG";
    case KVM_EXIT_FAIL_ENTRY:
      return "KVM_EXIT_FAIL_ENTRY";
    case KVM_EXIT_SHUTDOWN:
      return "KVM_EXIT_SHUTDOWN (triple fault)";
    case KVM_EXIT_INTERNAL_ERROR:
      return "KVM_EXIT_INTERNAL_ERROR";
    default:
      return "unhandled exit";
  }
}

}  // namespace

void Vcpu::start() {
  install_kick_handler();
  running_ = true;
  thread_ = std::thread([this] { thread_main(); });
}

void Vcpu::kick() {
  stop_requested_.store(true);
  interrupt();
}

void Vcpu::interrupt() {
  // seq_cst, paired with the clear in thread_main(): either that thread sees the new pause
  // state after clearing, or this store lands after the clear and KVM_RUN returns at once.
  __atomic_store_n(&fd_.run_data()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (running_.load()) {
    pthread_t t = native_.load();
    if (t) pthread_kill(t, kKickSignal);
  }
}

void Vcpu::join() {
  if (thread_.joinable()) thread_.join();
}

void Vcpu::stop_with(VcpuStop why, const std::string& detail) {
  if (why == VcpuStop::kCrash) bump(counters_.failures);
  if (hooks_.on_stop) hooks_.on_stop(why, detail);
}

void Vcpu::thread_main() {
  char name[16];
  std::snprintf(name, sizeof name, "vcpu%u", index_);
  pthread_setname_np(pthread_self(), name);
  // Process-directed signals go to the caller's threads; the kick (SIGUSR2) still arrives.
  block_async_signals();
  if (hooks_.enter_sandbox) {
    if (auto sandboxed = hooks_.enter_sandbox(); !sandboxed) {
      if (hooks_.on_failure) hooks_.on_failure(sandboxed.error().context(name));
      running_ = false;
      return;
    }
  }
  native_.store(pthread_self());
  // A kick that raced with thread start set immediate_exit already, so KVM_RUN returns at once.
  bool first = true;
  while (!stop_requested_.load()) {
    if (hooks_.pause_point && hooks_.pause_point()) {
      // Resumed: the interrupt() that parked us left immediate_exit set. Clear it, then look
      // at stop and pause again before entering the guest (a new pause may have raced).
      __atomic_store_n(&fd_.run_data()->immediate_exit, 0, __ATOMIC_SEQ_CST);
      continue;
    }
    if (first && hooks_.on_first_run) hooks_.on_first_run();
    first = false;
    int r = fd_.run();
    exit_pending_ = false;
    if (r == -EINTR || r == -EAGAIN) {
      bump(counters_.exit_other);
      continue;
    }
    if (r < 0) {
      stop_with(VcpuStop::kCrash, std::string("KVM_RUN failed: ") + strerror(-r) + "\n" + register_dump());
      break;
    }
    if (!handle_exit()) break;
  }
  running_ = false;
}

bool Vcpu::handle_exit() {
  kvm_run* run = fd_.run_data();
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      return handle_io(run);
    case KVM_EXIT_MMIO:
      return handle_mmio(run);
    case KVM_EXIT_HLT:  // with the in-kernel LAPIC, HLT normally never reaches us
    case KVM_EXIT_IRQ_WINDOW_OPEN:
    case KVM_EXIT_INTR:
      bump(counters_.exit_other);
      return true;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          stop_with(VcpuStop::kPowerOff, "system event: shutdown");
          return false;
        case KVM_SYSTEM_EVENT_RESET:
          stop_with(VcpuStop::kReboot, "system event: reset");
          return false;
        default:
          stop_with(VcpuStop::kCrash,
                    "system event " + std::to_string(run->system_event.type) + "\n" + register_dump());
          return false;
      }
    case KVM_EXIT_INTERNAL_ERROR: {
      char buf[128];
      std::snprintf(buf, sizeof buf, "KVM_EXIT_INTERNAL_ERROR suberror %u", run->internal.suberror);
      stop_with(VcpuStop::kCrash, std::string(buf) + " on vCPU " + std::to_string(index_) + "\n" + register_dump());
      return false;
    }
    case KVM_EXIT_FAIL_ENTRY: {
      char buf[128];
      std::snprintf(buf, sizeof buf, "KVM_EXIT_FAIL_ENTRY hardware reason 0x%llx",
                    static_cast<unsigned long long>(run->fail_entry.hardware_entry_failure_reason));
      stop_with(VcpuStop::kCrash, std::string(buf) + " on vCPU " + std::to_string(index_) + "\n" + register_dump());
      return false;
    }
    default:
      stop_with(VcpuStop::kCrash, std::string(exit_reason_name(run->exit_reason)) + " (" +
                                      std::to_string(run->exit_reason) + ") on vCPU " + std::to_string(index_) + "\n" +
                                      register_dump());
      return false;
  }
}

void Vcpu::complete_pending_exit() {
  if (!exit_pending_) return;
  __atomic_store_n(&fd_.run_data()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  (void)fd_.run();  // -EINTR once the access is complete
  exit_pending_ = false;
}

bool Vcpu::handle_io(kvm_run* run) {
  exit_pending_ = true;
  auto* base = reinterpret_cast<std::byte*>(run) + run->io.data_offset;
  size_t size = run->io.size;
  bump(run->io.direction == KVM_EXIT_IO_OUT ? counters_.exit_io_out : counters_.exit_io_in);
  // String I/O (rep ins/outs) arrives as `count` consecutive items in the shared page.
  for (uint32_t i = 0; i < run->io.count; ++i) {
    std::span<std::byte> item(base + i * size, size);
    if (run->io.direction == KVM_EXIT_IO_OUT)
      pio_.write(run->io.port, item);
    else
      pio_.read(run->io.port, item);
  }
  return true;
}

bool Vcpu::handle_mmio(kvm_run* run) {
  exit_pending_ = true;
  size_t len = std::min<size_t>(run->mmio.len, sizeof run->mmio.data);
  std::span<std::byte> data(reinterpret_cast<std::byte*>(run->mmio.data), len);
  bump(run->mmio.is_write ? counters_.exit_mmio_write : counters_.exit_mmio_read);
  if (run->mmio.is_write)
    mmio_.write(run->mmio.phys_addr, data);
  else
    mmio_.read(run->mmio.phys_addr, data);
  return true;
}

std::string Vcpu::register_dump() const {
  auto regs = fd_.get_regs();
  auto sregs = fd_.get_sregs();
  if (!regs || !sregs) return "(registers unavailable)";
  const kvm_regs& r = *regs;
  const kvm_sregs& s = *sregs;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "vCPU %u registers:\n"
                " RIP=%016llx RFLAGS=%016llx RSP=%016llx RBP=%016llx\n"
                " RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
                " RSI=%016llx RDI=%016llx R8 =%016llx R9 =%016llx\n"
                " R10=%016llx R11=%016llx R12=%016llx R13=%016llx\n"
                " R14=%016llx R15=%016llx\n"
                " CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx EFER=%016llx\n"
                " CS=%04x (base %016llx) SS=%04x GDT=%016llx/%04x IDT=%016llx/%04x",
                index_, r.rip, r.rflags, r.rsp, r.rbp, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.r8, r.r9, r.r10,
                r.r11, r.r12, r.r13, r.r14, r.r15, s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.base,
                s.ss.selector, s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
  return buf;
}

}  // namespace microvm
