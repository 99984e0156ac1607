// `--cpu host,+vmx` / `+svm` (README "CPU model"): passed through when this host's KVM offers
// nested virtualisation, else refused with a message that says so and how to turn it on,
// never accepted silently (a guest would fault on its first VMXON/VMRUN).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

// The ioctl number as the kernel computes it, from the 8-byte header of kvm_cpuid2: in C++
// <linux/kvm.h>'s own macro encodes another size and gets EINVAL (vmm/kvm.cc does the same).
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);

// Whether KVM_GET_SUPPORTED_CPUID has bit `bit` of ECX in leaf `function`: what microvm
// itself checks, read here independently. nullopt when KVM cannot be asked.
std::optional<bool> kvm_offers(uint32_t function, int bit) {
  int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return std::nullopt;
  std::vector<uint8_t> storage;
  kvm_cpuid2* cpuid = nullptr;
  int rc = -1;
  for (uint32_t max = 64; max <= 4096 && rc < 0; max *= 2) {  // E2BIG: the table needs more room
    storage.assign(sizeof(kvm_cpuid2) + max * sizeof(kvm_cpuid_entry2), 0);
    cpuid = reinterpret_cast<kvm_cpuid2*>(storage.data());
    cpuid->nent = max;
    rc = ::ioctl(kvm, kGetSupportedCpuid, cpuid);
    if (rc < 0 && errno != E2BIG) break;
  }
  ::close(kvm);
  if (rc < 0) return std::nullopt;
  for (uint32_t i = 0; i < cpuid->nent; ++i)
    if (cpuid->entries[i].function == function && cpuid->entries[i].index == 0)
      return (cpuid->entries[i].ecx >> bit & 1) != 0;
  return false;
}

struct Nested {
  const char* name;
  uint32_t leaf;
  int bit;
};

class CliNestedVirt : public ::testing::TestWithParam<Nested> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_P(CliNestedVirt, PassedThroughWhenKvmOffersItElseRefusedClearly) {
  auto offered = kvm_offers(GetParam().leaf, GetParam().bit);
  ASSERT_TRUE(offered.has_value()) << "KVM_GET_SUPPORTED_CPUID failed";
  std::string feature = std::string("+") + GetParam().name;
  VmRunResult r = run_microvm({"run", "--kernel", firmware_path("boot_check"), "--memory", "64M", "--cmdline",
                               "bootcheck.exit=poweroff", "--cpu", "host," + feature},
                              {.timeout = std::chrono::seconds(30)});
  EXPECT_EQ(r.err.find("unknown CPU feature"), std::string::npos) << r.describe();
  if (*offered) {
    EXPECT_EQ(r.exit_code, 0) << r.describe();
  } else {
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("--cpu: " + feature + ": this host's KVM does not offer nested virtualisation"),
              std::string::npos)
        << r.describe();
    EXPECT_NE(r.err.find("nested=1"), std::string::npos) << r.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Vendors, CliNestedVirt, ::testing::Values(Nested{"vmx", 1, 5}, Nested{"svm", 0x80000001, 2}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace microvm::testing
