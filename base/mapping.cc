#include "base/mapping.h"

#include <string>

namespace microvm {

Result<Mapping> Mapping::map(size_t len, int prot, int flags, int fd, off_t offset, const char* what) {
  void* p = ::mmap(nullptr, len, prot, flags, fd, offset);
  if (p == MAP_FAILED) return fail_errno(std::string("mmap ") + what);
  return Mapping(p, len);
}

}  // namespace microvm
