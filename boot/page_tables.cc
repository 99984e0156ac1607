#include "boot/page_tables.h"

#include <array>

namespace microvm {
namespace {

constexpr uint64_t kGdtAddr = 0x500;
constexpr uint64_t kPml4Addr = 0x9000;
constexpr uint64_t kPdptAddr = 0xa000;
constexpr uint64_t kPdAddr = 0xb000;  // four page directories, 0xb000-0xefff
constexpr uint64_t kPresent = 1, kWritable = 2, kHuge = 0x80;

}  // namespace

Result<LongModeTables> write_long_mode_tables(const GuestMemory& mem) {
  // null, null, code (64-bit, L=1), data; the entries are what every x86 loader writes.
  constexpr std::array<uint64_t, 4> gdt = {0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
  TRY(mem.write_obj(GuestAddress(kGdtAddr), gdt));
  TRY(mem.write_obj(GuestAddress(kPml4Addr), kPdptAddr | kPresent | kWritable));
  for (uint64_t i = 0; i < 4; ++i) {
    uint64_t pd = kPdAddr + i * 0x1000;
    TRY(mem.write_obj(GuestAddress(kPdptAddr + i * 8), pd | kPresent | kWritable));
    std::array<uint64_t, 512> entries;
    for (uint64_t j = 0; j < 512; ++j) entries[j] = ((i << 30) + (j << 21)) | kPresent | kWritable | kHuge;
    TRY(mem.write_obj(GuestAddress(pd), entries));
  }
  return LongModeTables{GuestAddress(kGdtAddr), static_cast<uint16_t>(sizeof gdt - 1), GuestAddress(kPml4Addr)};
}

}  // namespace microvm
