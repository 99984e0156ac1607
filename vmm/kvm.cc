#include "vmm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace microvm {
namespace {

struct RequiredCap {
  long cap;
  const char* name;
};

// Everything the VMM relies on; a host missing one is refused with its name.
constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP (in-kernel interrupt controller)"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2 (in-kernel PIT)"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING (needed for MSI)"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

// Linux's uapi headers declare the flexible arrays of kvm_cpuid2, kvm_msrs and
// kvm_irq_routing with a C++ fallback that adds a byte (an empty struct), which changes the
// ioctl numbers and the entries' offset when compiled as C++. We use the C layout: an 8-byte
// header followed directly by the entries.
struct FlexHeader {
  uint32_t count;
  uint32_t pad;
};
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, FlexHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, FlexHeader);
constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, FlexHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, FlexHeader);
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, FlexHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, FlexHeader);
// kvm_msr_list is a bare u32 count before its indices.
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);
// kvm_xsave is 4 KiB plus a flexible tail; the numbers encode the C size, 4096.
struct XsaveFixed {
  uint32_t region[1024];
};
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveFixed);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveFixed);
constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveFixed);
constexpr size_t kXsaveLegacySize = sizeof(XsaveFixed);

template <class Entry>
std::vector<uint8_t> pack(uint32_t flags_or_pad, std::span<const Entry> entries) {
  std::vector<uint8_t> buf(sizeof(FlexHeader) + entries.size_bytes(), 0);
  FlexHeader h{static_cast<uint32_t>(entries.size()), flags_or_pad};
  std::memcpy(buf.data(), &h, sizeof h);
  if (!entries.empty()) std::memcpy(buf.data() + sizeof h, entries.data(), entries.size_bytes());
  return buf;
}

template <class T>
Result<T> get(int fd, unsigned long req, const char* what) {
  T v;
  std::memset(&v, 0, sizeof v);
  if (::ioctl(fd, req, &v) < 0) return fail_errno(what);
  return v;
}

template <class T>
Result<void> set(int fd, unsigned long req, const T& v, const char* what) {
  if (::ioctl(fd, req, &v) < 0) return fail_errno(what);
  return {};
}

Result<CpuidEntries> cpuid_ioctl(int fd, unsigned long req, const char* what) {
  for (uint32_t n = 128; n <= 4096; n *= 2) {
    std::vector<kvm_cpuid_entry2> room(n);
    auto buf = pack<kvm_cpuid_entry2>(0, room);
    if (::ioctl(fd, req, buf.data()) < 0) {
      if (errno == E2BIG) continue;
      return fail_errno(what);
    }
    FlexHeader h;
    std::memcpy(&h, buf.data(), sizeof h);
    CpuidEntries out;
    out.entries.resize(std::min(h.count, n));
    std::memcpy(out.entries.data(), buf.data() + sizeof h, out.entries.size() * sizeof(kvm_cpuid_entry2));
    return out;
  }
  return fail(what + std::string(": too many CPUID entries"));
}

}  // namespace

kvm_cpuid_entry2* CpuidEntries::find(uint32_t function, uint32_t index) {
  for (auto& e : entries)
    if (e.function == function && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == index)) return &e;
  return nullptr;
}

const kvm_cpuid_entry2* CpuidEntries::find(uint32_t function, uint32_t index) const {
  return const_cast<CpuidEntries*>(this)->find(function, index);
}

Result<Kvm> Kvm::open(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return fail(err, std::string(path) +
                           " does not exist: this host has no KVM (is the kvm module loaded? is virtualization enabled "
                           "in the firmware?)");
    if (err == EACCES)
      return fail(err,
                  std::string("no permission to open ") + path + ": add yourself to the 'kvm' group or run as root");
    return fail_errno(err, std::string("open ") + path);
  }
  Fd kvm(fd);
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    return fail("KVM API version " + std::to_string(version) + " is not the supported version " +
                std::to_string(KVM_API_VERSION));
  for (const auto& c : kRequiredCaps)
    if (::ioctl(fd, KVM_CHECK_EXTENSION, c.cap) <= 0) return fail(std::string("KVM on this host lacks ") + c.name);
  int size = ::ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) return fail_errno("KVM_GET_VCPU_MMAP_SIZE");
  return Kvm(std::move(kvm), static_cast<size_t>(size));
}

int Kvm::check_extension(long cap) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

Result<std::vector<uint32_t>> Kvm::msr_index_list() const {
  for (uint32_t n = 256; n <= 16384; n *= 2) {
    std::vector<uint32_t> buf(n + 1, 0);
    buf[0] = n;
    if (::ioctl(fd_.get(), kGetMsrIndexList, buf.data()) < 0) {
      if (errno == E2BIG) continue;
      return fail_errno("KVM_GET_MSR_INDEX_LIST");
    }
    uint32_t count = std::min(buf[0], n);
    return std::vector<uint32_t>(buf.begin() + 1, buf.begin() + 1 + count);
  }
  return fail("KVM_GET_MSR_INDEX_LIST: too many MSRs");
}

size_t Kvm::xsave_size() const {
  int size = check_extension(KVM_CAP_XSAVE2);
  return size > static_cast<int>(kXsaveLegacySize) ? static_cast<size_t>(size) : kXsaveLegacySize;
}

Result<CpuidEntries> Kvm::supported_cpuid() const {
  return cpuid_ioctl(fd_.get(), kGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID");
}

Result<VmFd> Kvm::create_vm() const {
  int fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  if (fd < 0) return fail_errno("KVM_CREATE_VM");
  return VmFd(Fd(fd));
}

Result<void> VmFd::set_user_memory_region(uint32_t slot, uint64_t guest_addr, uint64_t size, void* host,
                                          bool read_only) const {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.flags = read_only ? KVM_MEM_READONLY : 0;
  r.guest_phys_addr = guest_addr;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  return set(fd_.get(), KVM_SET_USER_MEMORY_REGION, r, "KVM_SET_USER_MEMORY_REGION");
}

Result<void> VmFd::create_irqchip() const {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return fail_errno("KVM_CREATE_IRQCHIP");
  return {};
}

Result<void> VmFd::create_pit2() const {
  kvm_pit_config c{};
  c.flags = KVM_PIT_SPEAKER_DUMMY;
  return set(fd_.get(), KVM_CREATE_PIT2, c, "KVM_CREATE_PIT2");
}

Result<void> VmFd::set_tss_addr(uint64_t addr) const {
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, addr) < 0) return fail_errno("KVM_SET_TSS_ADDR");
  return {};
}

Result<void> VmFd::set_identity_map_addr(uint64_t addr) const {
  return set(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, addr, "KVM_SET_IDENTITY_MAP_ADDR");
}

Result<VcpuFd> VmFd::create_vcpu(unsigned id, size_t mmap_size) const {
  int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, id);
  if (fd < 0) return fail_errno("KVM_CREATE_VCPU " + std::to_string(id));
  Fd vcpu(fd);
  auto run = TRY(Mapping::map(mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0, "kvm_run"));
  return VcpuFd(std::move(vcpu), std::move(run));
}

Result<void> VmFd::irqfd(uint32_t gsi, int fd, bool deassign) const {
  kvm_irqfd r{};
  r.fd = static_cast<uint32_t>(fd);
  r.gsi = gsi;
  r.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0;
  return set(fd_.get(), KVM_IRQFD, r, "KVM_IRQFD");
}

Result<void> VmFd::irq_line(uint32_t gsi, bool level) const {
  kvm_irq_level l{};
  l.irq = gsi;
  l.level = level ? 1 : 0;
  return set(fd_.get(), KVM_IRQ_LINE, l, "KVM_IRQ_LINE");
}

Result<kvm_clock_data> VmFd::get_clock() const {
  kvm_clock_data c{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &c) < 0) return fail_errno("KVM_GET_CLOCK");
  return c;
}

Result<void> VmFd::set_clock(const kvm_clock_data& c) const {
  // Only the clock value: KVM_CLOCK_REALTIME/HOST_TSC from KVM_GET_CLOCK would make KVM
  // advance the clock by the host time that passed since, which a pause must hide.
  kvm_clock_data d{};
  d.clock = c.clock;
  return set(fd_.get(), KVM_SET_CLOCK, d, "KVM_SET_CLOCK");
}

Result<kvm_irqchip> VmFd::get_irqchip(uint32_t chip_id) const {
  kvm_irqchip c{};
  c.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &c) < 0) return fail_errno("KVM_GET_IRQCHIP " + std::to_string(chip_id));
  return c;
}

Result<void> VmFd::set_irqchip(const kvm_irqchip& c) const {
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &c) < 0) return fail_errno("KVM_SET_IRQCHIP " + std::to_string(c.chip_id));
  return {};
}

Result<kvm_pit_state2> VmFd::get_pit2() const { return get<kvm_pit_state2>(fd_.get(), KVM_GET_PIT2, "KVM_GET_PIT2"); }
Result<void> VmFd::set_pit2(const kvm_pit_state2& p) const { return set(fd_.get(), KVM_SET_PIT2, p, "KVM_SET_PIT2"); }

Result<void> VmFd::ioeventfd(uint64_t addr, uint32_t len, int fd, bool pio, bool deassign) const {
  kvm_ioeventfd r{};
  r.addr = addr;
  r.len = len;
  r.fd = fd;
  r.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
  return set(fd_.get(), KVM_IOEVENTFD, r, "KVM_IOEVENTFD");
}

Result<void> VmFd::ioeventfd_datamatch(uint64_t addr, uint32_t len, uint64_t value, int fd, bool deassign) const {
  kvm_ioeventfd r{};
  r.addr = addr;
  r.len = len;
  r.fd = fd;
  r.datamatch = value;
  r.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
  return set(fd_.get(), KVM_IOEVENTFD, r, "KVM_IOEVENTFD (datamatch)");
}

Result<void> VmFd::set_gsi_routing(std::span<const MsiRoute> msi) const {
  // Setting any routing replaces KVM's default table, so re-add it: GSIs 0-15 reach both the
  // 8259 pair and the IOAPIC, 16-23 the IOAPIC only.
  constexpr uint32_t kIoapicPins = 24;
  std::vector<kvm_irq_routing_entry> entries;
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
    e.u.irqchip.pin = gsi;
    entries.push_back(e);
    if (gsi < 16) {
      e.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      e.u.irqchip.pin = gsi % 8;
      entries.push_back(e);
    }
  }
  for (size_t i = 0; i < msi.size(); ++i) {
    auto& e = entries.emplace_back();
    e.gsi = msi[i].gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(msi[i].address);
    e.u.msi.address_hi = static_cast<uint32_t>(msi[i].address >> 32);
    e.u.msi.data = msi[i].data;
  }
  auto buf = pack<kvm_irq_routing_entry>(0, entries);
  if (::ioctl(fd_.get(), kSetGsiRouting, buf.data()) < 0) return fail_errno("KVM_SET_GSI_ROUTING");
  return {};
}

int VcpuFd::run() const { return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? -errno : 0; }

Result<kvm_regs> VcpuFd::get_regs() const { return get<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS"); }
Result<void> VcpuFd::set_regs(const kvm_regs& r) const { return set(fd_.get(), KVM_SET_REGS, r, "KVM_SET_REGS"); }
Result<kvm_sregs> VcpuFd::get_sregs() const { return get<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS"); }
Result<void> VcpuFd::set_sregs(const kvm_sregs& r) const { return set(fd_.get(), KVM_SET_SREGS, r, "KVM_SET_SREGS"); }
Result<kvm_fpu> VcpuFd::get_fpu() const { return get<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU"); }
Result<kvm_xcrs> VcpuFd::get_xcrs() const { return get<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS"); }
Result<void> VcpuFd::set_xcrs(const kvm_xcrs& x) const { return set(fd_.get(), KVM_SET_XCRS, x, "KVM_SET_XCRS"); }
Result<kvm_vcpu_events> VcpuFd::get_vcpu_events() const {
  return get<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Result<void> VcpuFd::set_vcpu_events(const kvm_vcpu_events& e) const {
  return set(fd_.get(), KVM_SET_VCPU_EVENTS, e, "KVM_SET_VCPU_EVENTS");
}
Result<kvm_debugregs> VcpuFd::get_debugregs() const {
  return get<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
Result<void> VcpuFd::set_debugregs(const kvm_debugregs& d) const {
  return set(fd_.get(), KVM_SET_DEBUGREGS, d, "KVM_SET_DEBUGREGS");
}
Result<kvm_mp_state> VcpuFd::get_mp_state() const {
  return get<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Result<void> VcpuFd::set_mp_state(const kvm_mp_state& m) const {
  return set(fd_.get(), KVM_SET_MP_STATE, m, "KVM_SET_MP_STATE");
}

Result<uint32_t> VcpuFd::get_tsc_khz() const {
  int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  if (khz < 0) return fail_errno("KVM_GET_TSC_KHZ");
  return static_cast<uint32_t>(khz);
}

Result<void> VcpuFd::set_tsc_khz(uint32_t khz) const {
  if (::ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) < 0) return fail_errno("KVM_SET_TSC_KHZ");
  return {};
}

Result<std::vector<uint8_t>> VcpuFd::get_xsave(size_t size) const {
  std::vector<uint8_t> area(std::max(size, kXsaveLegacySize), 0);
  unsigned long req = area.size() > kXsaveLegacySize ? kGetXsave2 : kGetXsave;
  if (::ioctl(fd_.get(), req, area.data()) < 0)
    return fail_errno(req == kGetXsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
  return area;
}

Result<void> VcpuFd::set_xsave(std::span<const uint8_t> area) const {
  // KVM reads as many bytes as KVM_CAP_XSAVE2 reported (4 KiB without it); callers pass a
  // buffer of exactly that size (checked when the snapshot is loaded).
  if (area.size() < kXsaveLegacySize) return fail("KVM_SET_XSAVE: XSAVE area shorter than 4 KiB");
  if (::ioctl(fd_.get(), kSetXsave, area.data()) < 0) return fail_errno("KVM_SET_XSAVE");
  return {};
}

Result<size_t> VcpuFd::get_msrs(std::span<kvm_msr_entry> msrs) const {
  auto buf = pack<kvm_msr_entry>(0, msrs);
  int n = ::ioctl(fd_.get(), kGetMsrs, buf.data());
  if (n < 0) return fail_errno("KVM_GET_MSRS");
  size_t got = std::min(static_cast<size_t>(n), msrs.size());
  std::memcpy(msrs.data(), buf.data() + sizeof(FlexHeader), msrs.size_bytes());
  return got;
}

Result<void> VcpuFd::set_fpu(const kvm_fpu& f) const { return set(fd_.get(), KVM_SET_FPU, f, "KVM_SET_FPU"); }
Result<kvm_lapic_state> VcpuFd::get_lapic() const {
  return get<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
Result<void> VcpuFd::set_lapic(const kvm_lapic_state& l) const {
  return set(fd_.get(), KVM_SET_LAPIC, l, "KVM_SET_LAPIC");
}

Result<void> VcpuFd::set_msrs(std::span<const kvm_msr_entry> msrs) const {
  auto buf = pack<kvm_msr_entry>(0, msrs);
  int n = ::ioctl(fd_.get(), kSetMsrs, buf.data());
  if (n < 0) return fail_errno("KVM_SET_MSRS");
  if (static_cast<size_t>(n) != msrs.size())
    return fail("KVM_SET_MSRS: KVM refused MSR " + std::to_string(msrs[n].index));
  return {};
}

Result<void> VcpuFd::set_cpuid(const CpuidEntries& c) const {
  auto buf = pack<kvm_cpuid_entry2>(0, c.entries);
  if (::ioctl(fd_.get(), kSetCpuid2, buf.data()) < 0) return fail_errno("KVM_SET_CPUID2");
  return {};
}

Result<CpuidEntries> VcpuFd::get_cpuid() const { return cpuid_ioctl(fd_.get(), kGetCpuid2, "KVM_GET_CPUID2"); }

}  // namespace microvm
