#include "base/futex_word.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

namespace microvm {
namespace {

// The futex syscall takes the word's address; a lock-free std::atomic<uint32_t> has the
// layout of a plain uint32_t (asserted in the header).
uint32_t* raw(const std::atomic<uint32_t>& w) {
  return reinterpret_cast<uint32_t*>(const_cast<std::atomic<uint32_t>*>(&w));
}

}  // namespace

void FutexWord::wake_all() { ::syscall(SYS_futex, raw(word_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0); }

void FutexWord::store(uint32_t value) {
  word_.store(value);
  wake_all();
}

uint32_t FutexWord::add(uint32_t delta) {
  uint32_t v = word_.fetch_add(delta) + delta;
  wake_all();
  return v;
}

bool FutexWord::compare_exchange(uint32_t expected, uint32_t desired) {
  if (!word_.compare_exchange_strong(expected, desired)) return false;
  wake_all();
  return true;
}

void FutexWord::wait(uint32_t expected) const {
  // EAGAIN (already changed) and EINTR (a vCPU kick) both mean "look again".
  ::syscall(SYS_futex, raw(word_), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

}  // namespace microvm
