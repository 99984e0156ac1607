#pragma once
// Rewriting the backing file name and format recorded in a qcow2 header (rebase, and commit's
// callers). Only the header cluster changes: other header extensions are kept as they are.
#include <string>

#include "base/result.h"

namespace microvm::qcow2 {

// `fd`: the image opened read-write and exclusively locked, with no Image open on it that
// could write the header back. An empty `name` removes the backing file (and its format).
// The name is stored as given (relative names are relative to the image, as in QEMU).
[[nodiscard]] Result<void> set_backing_name(int fd, const std::string& name, const std::string& format);

}  // namespace microvm::qcow2
