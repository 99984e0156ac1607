#include "cli/version.h"

#include "cli/build_info.h"  // generated at build time (cmake/write_build_info.cmake)

namespace microvm {

void print_version(FILE* out) {
  std::fprintf(out, "microvm %s (git %s)\n", MICROVM_VERSION, MICROVM_GIT_REVISION);
  // io_uring and seccomp are required to build; slirp is optional (cli/CMakeLists.txt).
  std::fputs("features: io_uring seccomp", out);
#if MICROVM_HAVE_SLIRP
  std::fputs(" slirp", out);
#endif
#if MICROVM_HAVE_IMG
  std::fputs(" img", out);
#endif
  std::fputs("\n", out);
}

}  // namespace microvm
