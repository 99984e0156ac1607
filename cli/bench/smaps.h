#pragma once
// /proc/PID/smaps: per-mapping RSS, so the guest-RAM mapping can be subtracted and the
// rest (the VMM's own memory) broken down by kind.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace microvm::bench {

struct SmapsEntry {
  uint64_t start = 0, end = 0;
  std::string perms;
  std::string name;  // path, [heap], [stack], "" for anonymous
  uint64_t size_kib = 0, rss_kib = 0, pss_kib = 0;
  uint64_t private_kib = 0;  // Private_Clean + Private_Dirty
  uint64_t private_dirty_kib = 0;
  uint64_t anonymous_kib = 0;  // Anonymous:
};

std::vector<SmapsEntry> parse_smaps(std::string_view text);
[[nodiscard]] Result<std::vector<SmapsEntry>> read_smaps(pid_t pid);

// The VMM's memory with the guest RAM taken out.
struct MemoryBreakdown {
  uint64_t rss_total_kib = 0;
  uint64_t guest_ram_rss_kib = 0;
  uint64_t guest_ram_size_kib = 0;
  std::string guest_ram_mappings;           // what was counted as guest RAM, for auditing
  uint64_t overhead_rss_kib = 0;            // rss_total - guest RAM
  uint64_t overhead_pss_kib = 0;            // shared library pages divided among their users
  uint64_t overhead_private_kib = 0;        // mapped by this process only (clean file pages included)
  uint64_t overhead_private_dirty_kib = 0;  // written private pages: cannot be shared by another VM
  uint64_t overhead_anon_kib = 0;           // heap, thread stacks, anonymous mmaps
  uint64_t overhead_file_kib = 0;           // executable and shared libraries (mostly shared)
  uint64_t overhead_other_kib = 0;          // everything else (kvm vcpu mmaps, memfds, ...)
  // Largest non-guest mappings, "name size rss" lines, for the "why" part of a report.
  std::vector<std::string> top_mappings;
};

// `is_guest_ram` selects the mappings that back guest RAM.
MemoryBreakdown break_down(const std::vector<SmapsEntry>& maps,
                           const std::function<bool(const SmapsEntry&)>& is_guest_ram);

}  // namespace microvm::bench
