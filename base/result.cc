#include "base/result.h"

#include <cstring>

namespace microvm {

std::unexpected<Error> fail_errno(const std::string& what) { return fail_errno(errno, what); }

std::unexpected<Error> fail_errno(int err, const std::string& what) {
  return std::unexpected(Error(err, what + ": " + std::strerror(err)));
}

}  // namespace microvm
