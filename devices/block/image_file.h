#pragma once
// Opening an image file the same way for every format: O_CLOEXEC, O_DIRECT for cache=none
// (with a fallback when the filesystem refuses it), and the OFD lock.
#include <string>

#include "base/fd.h"
#include "base/log.h"
#include "base/result.h"
#include "devices/block/disk_options.h"

namespace microvm {

struct ImageFile {
  Fd fd;
  bool direct = false;  // O_DIRECT in effect
  uint64_t size = 0;    // bytes (files: st_size; block devices: their size)
};

[[nodiscard]] Result<ImageFile> open_image_file(const std::string& path, bool read_only, CacheMode cache, bool lock,
                                                const Logger* log);

// Opens `path` with `flags` (O_RDONLY / O_RDWR ...; O_CLOEXEC and O_NOCTTY are added) and
// refuses anything but a regular file or a block device before a byte is read or written.
// The open itself never blocks: a FIFO would wait for a writer forever, a tty for carrier.
// Every path an image tool or a disk opens goes through here.
[[nodiscard]] Result<Fd> open_regular_or_block(const std::string& path, int flags);

}  // namespace microvm
