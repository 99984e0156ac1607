#include "cli/bench/probe_image.h"

#include <elf.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "cli/bench/child_process.h"

extern "C" {
extern const unsigned char microvm_bench_probe_blob[], microvm_bench_probe_blob_end[];
extern const unsigned char microvm_bench_halt_blob[], microvm_bench_halt_blob_end[];
extern const unsigned char microvm_bench_ticker_blob[], microvm_bench_ticker_blob_end[];
}

namespace microvm::bench {

namespace {

constexpr uint64_t kLoadAddress = 0x100000;  // 1 MiB, the ELF loader's lowest allowed address
constexpr uint64_t kBlobOffset = 0x1000;

std::span<const unsigned char> blob(ProbeKind kind) {
  if (kind == ProbeKind::kCpl0Loop)
    return {microvm_bench_probe_blob, static_cast<size_t>(microvm_bench_probe_blob_end - microvm_bench_probe_blob)};
  if (kind == ProbeKind::kTicker)
    return {microvm_bench_ticker_blob, static_cast<size_t>(microvm_bench_ticker_blob_end - microvm_bench_ticker_blob)};
  return {microvm_bench_halt_blob, static_cast<size_t>(microvm_bench_halt_blob_end - microvm_bench_halt_blob)};
}

double now_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

std::string make_probe_elf(ProbeKind kind) {
  auto code = blob(kind);
  // PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18), read by QEMU's -kernel; microvm
  // ignores PT_NOTE and enters at e_entry in long mode.
  struct PvhNote {
    Elf64_Nhdr hdr;
    char name[4];
    uint64_t entry;
  } note{};
  note.hdr.n_namesz = 4;
  note.hdr.n_descsz = 8;
  note.hdr.n_type = 18;
  std::memcpy(note.name, "Xen", 4);
  note.entry = kLoadAddress;
  constexpr uint64_t kNoteOffset = 0x800;
  static_assert(sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr) <= kNoteOffset);

  std::string out(kBlobOffset + code.size(), '\0');
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = kLoadAddress;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  Elf64_Phdr ph[2]{};
  ph[0].p_type = PT_LOAD;
  ph[0].p_flags = PF_R | PF_X;
  ph[0].p_offset = kBlobOffset;
  ph[0].p_vaddr = ph[0].p_paddr = kLoadAddress;
  ph[0].p_filesz = ph[0].p_memsz = code.size();
  ph[0].p_align = 0x1000;
  ph[1].p_type = PT_NOTE;
  ph[1].p_offset = kNoteOffset;
  ph[1].p_filesz = ph[1].p_memsz = sizeof note;
  ph[1].p_align = 4;
  std::memcpy(out.data(), &eh, sizeof eh);
  std::memcpy(out.data() + sizeof eh, ph, sizeof ph);
  std::memcpy(out.data() + kNoteOffset, &note, sizeof note);
  std::memcpy(out.data() + kBlobOffset, code.data(), code.size());
  return out;
}

uint64_t host_loop_tsc(uint64_t iterations) {
  uint64_t best = UINT64_MAX;
  for (int round = 0; round < 20; ++round) {
    uint64_t n = iterations;
    uint64_t t0 = __rdtsc();
    // Same two instructions as the guest loop; volatile asm so it is not folded away.
    asm volatile("1: dec %0\n\tjnz 1b" : "+r"(n));
    uint64_t t1 = __rdtsc();
    best = std::min(best, t1 - t0);
  }
  return best;
}

double host_tsc_hz() {
  double w0 = now_seconds();
  uint64_t t0 = __rdtsc();
  timespec req{0, 50'000'000};
  nanosleep(&req, nullptr);
  double w1 = now_seconds();
  uint64_t t1 = __rdtsc();
  return static_cast<double>(t1 - t0) / (w1 - w0);
}

Result<KernelModeProbe> probe_kernel_mode(const BenchContext& ctx) {
  std::string elf_path = ctx.work_dir + "/probe.elf";
  TRY(write_file(elf_path, make_probe_elf(ProbeKind::kCpl0Loop)));
  std::string out_path = ctx.work_dir + "/probe.out", err_path = ctx.work_dir + "/probe.err";
  auto child = TRY(
      ChildProcess::spawn({ctx.microvm_binary, "run", "--kernel", elf_path, "--memory", "64M", "--cmdline", "probe"},
                          {out_path, err_path}));
  if (!child.wait_for(std::chrono::seconds(60)))
    return fail("kernel-mode probe: the probe guest did not stop within 60 s");
  std::string out = read_file(out_path).value_or("");
  const std::string key = "PROBE cpl0_loop_tsc=";
  size_t at = out.find(key);
  if (at == std::string::npos)
    return fail("kernel-mode probe: no PROBE line (" + describe_status(*child.status()) +
                "): " + read_file(err_path).value_or("").substr(0, 400));
  KernelModeProbe p;
  p.guest_loop_tsc = std::strtoull(out.c_str() + at + key.size(), nullptr, 16);
  p.host_loop_tsc = std::max<uint64_t>(1, host_loop_tsc(kProbeIterations));
  p.slowdown = static_cast<double>(p.guest_loop_tsc) / static_cast<double>(p.host_loop_tsc);
  double hz = host_tsc_hz();
  if (p.guest_loop_tsc > 0) p.guest_cpl0_mips = 2.0 * kProbeIterations / (p.guest_loop_tsc / hz) / 1e6;
  // Hardware virtualisation runs this loop at native speed (within a few percent, plus
  // the two RDTSC exits); an instruction emulator is 100-1000x slower. 10x is far from both.
  p.emulated = p.slowdown > 10;
  char buf[320];
  std::snprintf(buf, sizeof buf,
                p.emulated ? "guest kernel mode (CPL0) is EMULATED on this host: a %.0f-iteration loop runs %.0fx "
                             "slower than natively (%.1f M instructions/s); anything that spends time in the guest "
                             "kernel measures the host's emulator, not the VMM"
                           : "guest kernel mode runs on the CPU: the %.0f-iteration CPL0 loop is %.1fx native speed "
                             "(%.0f M instructions/s)",
                static_cast<double>(kProbeIterations), p.slowdown, p.guest_cpl0_mips);
  p.verdict = buf;
  return p;
}

}  // namespace microvm::bench
