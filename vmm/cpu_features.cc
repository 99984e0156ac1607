#include "vmm/cpu_features.h"

#include <algorithm>
#include <array>

namespace microvm {
namespace {

using R = CpuidReg;

// Sorted by name after construction is not needed: the table is small and looked up at start-up only.
constexpr CpuFeature kFeatures[] = {
    // Leaf 1 EDX
    {"fpu", 1, 0, R::kEdx, 0},
    {"vme", 1, 0, R::kEdx, 1},
    {"de", 1, 0, R::kEdx, 2},
    {"pse", 1, 0, R::kEdx, 3},
    {"tsc", 1, 0, R::kEdx, 4},
    {"msr", 1, 0, R::kEdx, 5},
    {"pae", 1, 0, R::kEdx, 6},
    {"mce", 1, 0, R::kEdx, 7},
    {"cx8", 1, 0, R::kEdx, 8},
    {"apic", 1, 0, R::kEdx, 9},
    {"sep", 1, 0, R::kEdx, 11},
    {"mtrr", 1, 0, R::kEdx, 12},
    {"pge", 1, 0, R::kEdx, 13},
    {"mca", 1, 0, R::kEdx, 14},
    {"cmov", 1, 0, R::kEdx, 15},
    {"pat", 1, 0, R::kEdx, 16},
    {"pse36", 1, 0, R::kEdx, 17},
    {"clflush", 1, 0, R::kEdx, 19},
    {"mmx", 1, 0, R::kEdx, 23},
    {"fxsr", 1, 0, R::kEdx, 24},
    {"sse", 1, 0, R::kEdx, 25},
    {"sse2", 1, 0, R::kEdx, 26},
    {"ht", 1, 0, R::kEdx, 28},
    // Leaf 1 ECX
    {"pni", 1, 0, R::kEcx, 0},
    {"pclmulqdq", 1, 0, R::kEcx, 1},
    {"monitor", 1, 0, R::kEcx, 3},
    {"vmx", 1, 0, R::kEcx, 5},
    {"ssse3", 1, 0, R::kEcx, 9},
    {"fma", 1, 0, R::kEcx, 12},
    {"cx16", 1, 0, R::kEcx, 13},
    {"pdcm", 1, 0, R::kEcx, 15},
    {"pcid", 1, 0, R::kEcx, 17},
    {"sse4_1", 1, 0, R::kEcx, 19},
    {"sse4_2", 1, 0, R::kEcx, 20},
    {"x2apic", 1, 0, R::kEcx, 21},
    {"movbe", 1, 0, R::kEcx, 22},
    {"popcnt", 1, 0, R::kEcx, 23},
    {"tsc_deadline_timer", 1, 0, R::kEcx, 24},
    {"aes", 1, 0, R::kEcx, 25},
    {"xsave", 1, 0, R::kEcx, 26},
    {"avx", 1, 0, R::kEcx, 28},
    {"f16c", 1, 0, R::kEcx, 29},
    {"rdrand", 1, 0, R::kEcx, 30},
    {"hypervisor", 1, 0, R::kEcx, 31},
    // Leaf 7.0 EBX
    {"fsgsbase", 7, 0, R::kEbx, 0},
    {"tsc_adjust", 7, 0, R::kEbx, 1},
    {"bmi1", 7, 0, R::kEbx, 3},
    {"hle", 7, 0, R::kEbx, 4},
    {"avx2", 7, 0, R::kEbx, 5},
    {"smep", 7, 0, R::kEbx, 7},
    {"bmi2", 7, 0, R::kEbx, 8},
    {"erms", 7, 0, R::kEbx, 9},
    {"invpcid", 7, 0, R::kEbx, 10},
    {"rtm", 7, 0, R::kEbx, 11},
    {"mpx", 7, 0, R::kEbx, 14},
    {"avx512f", 7, 0, R::kEbx, 16},
    {"avx512dq", 7, 0, R::kEbx, 17},
    {"rdseed", 7, 0, R::kEbx, 18},
    {"adx", 7, 0, R::kEbx, 19},
    {"smap", 7, 0, R::kEbx, 20},
    {"avx512ifma", 7, 0, R::kEbx, 21},
    {"clflushopt", 7, 0, R::kEbx, 23},
    {"clwb", 7, 0, R::kEbx, 24},
    {"avx512pf", 7, 0, R::kEbx, 26},
    {"avx512er", 7, 0, R::kEbx, 27},
    {"avx512cd", 7, 0, R::kEbx, 28},
    {"sha_ni", 7, 0, R::kEbx, 29},
    {"avx512bw", 7, 0, R::kEbx, 30},
    {"avx512vl", 7, 0, R::kEbx, 31},
    // Leaf 7.0 ECX
    {"avx512vbmi", 7, 0, R::kEcx, 1},
    {"umip", 7, 0, R::kEcx, 2},
    {"pku", 7, 0, R::kEcx, 3},
    {"ospke", 7, 0, R::kEcx, 4},
    {"waitpkg", 7, 0, R::kEcx, 5},
    {"avx512_vbmi2", 7, 0, R::kEcx, 6},
    {"gfni", 7, 0, R::kEcx, 8},
    {"vaes", 7, 0, R::kEcx, 9},
    {"vpclmulqdq", 7, 0, R::kEcx, 10},
    {"avx512_vnni", 7, 0, R::kEcx, 11},
    {"avx512_bitalg", 7, 0, R::kEcx, 12},
    {"la57", 7, 0, R::kEcx, 16},
    {"avx512_vpopcntdq", 7, 0, R::kEcx, 14},
    {"rdpid", 7, 0, R::kEcx, 22},
    // Leaf 7.0 EDX
    {"fsrm", 7, 0, R::kEdx, 4},
    {"avx512_vp2intersect", 7, 0, R::kEdx, 8},
    {"md_clear", 7, 0, R::kEdx, 10},
    {"serialize", 7, 0, R::kEdx, 14},
    {"arch_capabilities", 7, 0, R::kEdx, 29},
    // Leaf 0xd.1 EAX
    {"xsaveopt", 0xd, 1, R::kEax, 0},
    {"xsavec", 0xd, 1, R::kEax, 1},
    {"xgetbv1", 0xd, 1, R::kEax, 2},
    {"xsaves", 0xd, 1, R::kEax, 3},
    // Leaf 0x80000001 ECX / EDX
    {"lahf_lm", 0x80000001, 0, R::kEcx, 0},
    {"cmp_legacy", 0x80000001, 0, R::kEcx, 1},
    {"svm", 0x80000001, 0, R::kEcx, 2},
    {"extapic", 0x80000001, 0, R::kEcx, 3},
    {"cr8_legacy", 0x80000001, 0, R::kEcx, 4},
    {"abm", 0x80000001, 0, R::kEcx, 5},
    {"sse4a", 0x80000001, 0, R::kEcx, 6},
    {"misalignsse", 0x80000001, 0, R::kEcx, 7},
    {"3dnowprefetch", 0x80000001, 0, R::kEcx, 8},
    {"xop", 0x80000001, 0, R::kEcx, 11},
    {"fma4", 0x80000001, 0, R::kEcx, 16},
    {"tbm", 0x80000001, 0, R::kEcx, 21},
    {"topoext", 0x80000001, 0, R::kEcx, 22},
    {"syscall", 0x80000001, 0, R::kEdx, 11},
    {"nx", 0x80000001, 0, R::kEdx, 20},
    {"mmxext", 0x80000001, 0, R::kEdx, 22},
    {"fxsr_opt", 0x80000001, 0, R::kEdx, 25},
    {"pdpe1gb", 0x80000001, 0, R::kEdx, 26},
    {"rdtscp", 0x80000001, 0, R::kEdx, 27},
    {"lm", 0x80000001, 0, R::kEdx, 29},
    // KVM paravirtual features, leaf 0x40000001 EAX (QEMU's names)
    {"kvmclock", 0x40000001, 0, R::kEax, 0},
    {"kvm-nopiodelay", 0x40000001, 0, R::kEax, 1},
    {"kvm-mmu", 0x40000001, 0, R::kEax, 2},
    {"kvmclock", 0x40000001, 0, R::kEax, 3},
    {"kvm-asyncpf", 0x40000001, 0, R::kEax, 4},
    {"kvm-steal-time", 0x40000001, 0, R::kEax, 5},
    {"kvm-pv-eoi", 0x40000001, 0, R::kEax, 6},
    {"kvm-pv-unhalt", 0x40000001, 0, R::kEax, 7},
    {"kvm-pv-tlb-flush", 0x40000001, 0, R::kEax, 9},
    {"kvm-asyncpf-vmexit", 0x40000001, 0, R::kEax, 10},
    {"kvm-pv-ipi", 0x40000001, 0, R::kEax, 11},
    {"kvm-poll-control", 0x40000001, 0, R::kEax, 12},
    {"kvm-pv-sched-yield", 0x40000001, 0, R::kEax, 13},
    {"kvm-asyncpf-int", 0x40000001, 0, R::kEax, 14},
    {"kvm-msi-ext-dest-id", 0x40000001, 0, R::kEax, 15},
};

}  // namespace

std::span<const CpuFeature> all_cpu_features() { return kFeatures; }

std::vector<CpuFeature> find_cpu_features(std::string_view name) {
  // A name may cover several bits: kvmclock is bits 0 and 3, as in QEMU.
  std::vector<CpuFeature> out;
  for (const auto& f : kFeatures)
    if (f.name == name) out.push_back(f);
  return out;
}

}  // namespace microvm
