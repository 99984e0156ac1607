#include "base/startup_pages.h"

#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace microvm {
namespace {

bool has_text_relocations(const dl_phdr_info& info) {
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_DYNAMIC) continue;
    const auto* dyn = reinterpret_cast<const ElfW(Dyn)*>(info.dlpi_addr + ph.p_vaddr);
    for (; dyn->d_tag != DT_NULL; ++dyn)
      if (dyn->d_tag == DT_TEXTREL || (dyn->d_tag == DT_FLAGS && (dyn->d_un.d_val & DF_TEXTREL))) return true;
  }
  return false;
}

int release_object(dl_phdr_info* info, size_t, void* data) {
  auto* total = static_cast<size_t*>(data);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  // The vDSO's pages are the kernel's, not a file's.
  const uintptr_t vdso = ::getauxval(AT_SYSINFO_EHDR);
  if (vdso && reinterpret_cast<uintptr_t>(info->dlpi_phdr) - vdso < 16 * page) return 0;
  if (has_text_relocations(*info)) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) || ph.p_memsz == 0) continue;
    // Whole pages inside the segment only: a page it shares with a writable neighbour
    // belongs to that neighbour's mapping.
    uintptr_t start = (info->dlpi_addr + ph.p_vaddr + page - 1) & ~(page - 1);
    uintptr_t end = (info->dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~(page - 1);
    if (end <= start) continue;
    if (::madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) == 0) *total += end - start;
  }
  return 0;
}

}  // namespace

size_t release_startup_pages() {
  size_t total = 0;
  ::dl_iterate_phdr(release_object, &total);
  // Heap pages that start-up freed (argument parsing, image loading, filter compilation) stay
  // resident until trimmed.
  ::malloc_trim(0);
  return total;
}

}  // namespace microvm
