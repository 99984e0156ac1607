#pragma once
// A 32-bit word threads can sleep on until it changes, and that any thread or a signal
// handler can change. Vm::stop() must be callable from a signal handler and still wake
// threads parked by Vm::pause(); condition variables cannot be notified from one, a raw
// futex wake can.
#include <atomic>
#include <cstdint>

namespace microvm {

class FutexWord {
 public:
  explicit FutexWord(uint32_t value = 0) : word_(value) {}
  FutexWord(const FutexWord&) = delete;
  FutexWord& operator=(const FutexWord&) = delete;

  uint32_t load() const { return word_.load(); }
  // Sets the value and wakes every waiter. Async-signal-safe.
  void store(uint32_t value);
  // Adds `delta` (wrapping) and wakes every waiter; returns the new value. Async-signal-safe.
  uint32_t add(uint32_t delta);
  // Sets `desired` if the value is `expected` (then wakes every waiter). Async-signal-safe.
  bool compare_exchange(uint32_t expected, uint32_t desired);
  // Sleeps while the value equals `expected`. May return spuriously: callers re-check.
  void wait(uint32_t expected) const;

 private:
  void wake_all();
  std::atomic<uint32_t> word_;
  static_assert(std::atomic<uint32_t>::is_always_lock_free && sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
};

}  // namespace microvm
