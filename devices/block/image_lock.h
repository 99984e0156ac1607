#pragma once
// Open-file-description locks on disk images, so one image is never used by two writers.
#include <string>

#include "base/result.h"

namespace microvm {

// Takes a whole-file OFD lock on `fd`: shared for read-only users, exclusive for writers.
// The lock lives as long as the open file description. On conflict the error names the
// process holding the lock when it can be found.
[[nodiscard]] Result<void> lock_image(int fd, bool exclusive, const std::string& path);

// The pid of a process holding an OFD lock on the file behind `fd` (found through
// /proc/*/fdinfo since F_OFD_GETLK reports -1), or -1.
int find_lock_holder(int fd);

}  // namespace microvm
