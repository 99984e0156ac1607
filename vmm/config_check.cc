#include "vmm/config_check.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "boot/memory_map.h"
#include "devices/block/disk_options.h"
#include "virtio/net/mac.h"
#include "vmm/cpu_model.h"

namespace microvm {
namespace {

constexpr unsigned kMaxCpus = 254;  // xAPIC IDs in the MADT, minus the IOAPIC's
constexpr uint64_t kMinMemory = 16ull << 20;
// KVM's largest memory slot on x86 (KVM_MEM_MAX_NR_PAGES, 2^31 - 1 pages): RAM above 4 GiB is one slot.
constexpr uint64_t kMaxSlotBytes = ((1ull << 31) - 1) * 4096;
constexpr size_t kMaxSerial = 20;  // virtio-blk GET_ID
constexpr size_t kMaxTag = 36;     // virtio-fs config tag

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

Result<void> check_memory(uint64_t bytes, const HostLimits& host) {
  if (bytes < kMinMemory) return fail(EINVAL, "--memory must be at least 16 MiB");
  uint64_t addressable = host.phys_addr_bits >= 64 ? ~0ull : (1ull << host.phys_addr_bits);
  uint64_t end = guest_ram_end(bytes);
  if (bytes - std::min<uint64_t>(bytes, 3ull << 30) > kMaxSlotBytes || end > addressable || end < bytes)
    return fail(EINVAL, "--memory " + gib(bytes) + " is more than KVM can map on this host (guest-physical space of " +
                            std::to_string(host.phys_addr_bits) + " bits, at most " +
                            gib(std::min(addressable, kMaxSlotBytes)) + ")");
  // Guest RAM is allocated as the guest touches it, so a size above free memory can work;
  // a size above all the RAM and swap there is can only end in the OOM killer, unless the
  // admin chose to overcommit (vm.overcommit_memory=1).
  if (host.mem_total != 0 && host.overcommit_memory != 1 && bytes > host.mem_total + host.swap_total)
    return fail(EINVAL, "--memory " + gib(bytes) + " is more than this host has (" + gib(host.mem_total) + " RAM + " +
                            gib(host.swap_total) +
                            " swap); give less, or set vm.overcommit_memory=1 to "
                            "overcommit on purpose");
  return {};
}

bool valid(DiskFormat f) { return f == DiskFormat::kRaw || f == DiskFormat::kQcow2; }
bool valid(CacheMode c) { return c == CacheMode::kWriteback || c == CacheMode::kNone; }
bool valid(EngineKind e) { return e == EngineKind::kAuto || e == EngineKind::kIoUring || e == EngineKind::kSync; }
bool valid(VhostMode v) { return v == VhostMode::kAuto || v == VhostMode::kOn || v == VhostMode::kOff; }

Result<void> check_disk(const DiskConfig& d) {
  std::string what = "--disk " + d.path + ": ";
  if (d.path.empty()) return fail(EINVAL, "--disk: no path");
  // The enums come from a caller that may have cast any integer into them.
  if (!valid(d.format)) return fail(EINVAL, what + "format is not a DiskFormat");
  if (d.backing_format && !valid(*d.backing_format)) return fail(EINVAL, what + "backing_format is not a DiskFormat");
  if (!valid(d.cache)) return fail(EINVAL, what + "cache is not a CacheMode");
  if (!valid(d.engine)) return fail(EINVAL, what + "engine is not an EngineKind");
  if (d.serial.size() > kMaxSerial) return fail(EINVAL, what + "serial is longer than 20 bytes");
  if (d.queues == 0 || d.queues > 64) return fail(EINVAL, what + "queues must be between 1 and 64");
  return {};
}

Result<void> check_net(const NetConfig& n) {
  int kinds = !n.tap.empty() + !n.bridge.empty() + n.user + n.passt;
  if (kinds != 1) return fail(EINVAL, "--net: give exactly one of tap=, bridge=, user or passt");
  if (!n.mac.empty()) {
    if (auto mac = parse_mac(n.mac); !mac) return fail(EINVAL, "--net: " + mac.error().what);
  }
  if (!valid(n.vhost)) return fail(EINVAL, "--net: vhost is not a VhostMode");
  return {};
}

uint64_t meminfo_bytes(const std::string& text, const char* key) {
  auto at = text.find(key);
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + std::strlen(key), nullptr, 10) << 10;  // the file says kB
}

}  // namespace

uint64_t guest_ram_end(uint64_t memory_bytes) {
  uint64_t end = 0;
  for (const auto& r : ram_layout(memory_bytes)) end = std::max(end, r.base.raw() + r.size);
  return end;
}

HostLimits read_host_limits() {
  HostLimits h;
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) && eax >= 0x80000008 &&
      __get_cpuid(0x80000008, &eax, &ebx, &ecx, &edx))
    h.phys_addr_bits = eax & 0xff;
  std::ifstream meminfo("/proc/meminfo");
  std::string text((std::istreambuf_iterator<char>(meminfo)), std::istreambuf_iterator<char>());
  h.mem_total = meminfo_bytes(text, "MemTotal:");
  h.swap_total = meminfo_bytes(text, "SwapTotal:");
  std::ifstream overcommit("/proc/sys/vm/overcommit_memory");
  overcommit >> h.overcommit_memory;
  return h;
}

Result<void> check_vm_config(const VmConfig& config, const HostLimits& host) {
  if (config.cpus == 0 || config.cpus > kMaxCpus)
    return fail(EINVAL, "--cpus must be between 1 and " + std::to_string(kMaxCpus));
  TRY(check_memory(config.memory_bytes, host));
  if (auto model = CpuModel::parse(config.cpu); !model) return fail(EINVAL, model.error().what);
  for (const auto& d : config.disks) TRY(check_disk(d));
  for (const auto& n : config.nets) TRY(check_net(n));
  for (const auto& s : config.shares) {
    if (s.host_dir.empty() == s.socket_path.empty()) return fail(EINVAL, "--share: give a folder or socket=, not both");
    if (s.tag.size() > kMaxTag) return fail(EINVAL, "--share: tag '" + s.tag + "' is longer than 36 bytes");
    if (!s.socket_path.empty() && s.tag.empty())
      return fail(EINVAL, "--share socket=" + s.socket_path + ": needs tag=");
  }
  return {};
}

}  // namespace microvm
