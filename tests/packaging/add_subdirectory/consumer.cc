// Compiled with only what microvm::microvm gives it: the public headers, C and C++.
#include <microvm/microvm.h>
#include <microvm/vm.h>

// microvm's own folders must not be on this program's include path.
#if __has_include("base/fd.h") || __has_include("vmm/vm_builder.h") || __has_include("cli/run_command.h")
#error "microvm's source root leaked onto a consumer's include path"
#endif

int main() {
  microvm::VmConfig config;
  config.memory_bytes = 64ull << 20;
  microvm_t* vm = nullptr;
  return microvm_create(&vm) == 0 && config.memory_bytes == (64ull << 20) ? 0 : 1;
}
