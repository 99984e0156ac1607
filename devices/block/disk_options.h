#pragma once
// How to open a disk image: everything explicit, nothing guessed from image bytes.
#include <cstddef>
#include <optional>
#include <string>

#include "base/log.h"
#include "devices/block/io_engine.h"
#include "microvm/device_options.h"

namespace microvm {

struct DiskOptions {
  std::string path;
  DiskFormat format = DiskFormat::kRaw;  // always given by the user; never probed for writable disks
  bool read_only = false;
  CacheMode cache = CacheMode::kWriteback;  // kNone: O_DIRECT (data bypasses the host page cache)
  // qcow2 overlays: the backing image named by the user; opened read-only.
  std::string backing;
  std::optional<DiskFormat> backing_format;  // unset: the format recorded in the overlay, else refused
  // Trust the backing file name stored inside the image (off: a path read from image bytes is
  // never followed). Also needed for the deeper levels of a chain.
  bool allow_image_backing = false;
  EngineKind engine = EngineKind::kAuto;
  unsigned queue_depth = 128;
  size_t qcow2_cache_bytes = 1 << 20;  // bound on cached L2 tables + refcount blocks
  const Logger* logger = nullptr;      // for one-time notices (engine fallback, O_DIRECT refused)
  // The device's event loop runs under seccomp: an io_uring ring that could open files
  // without restrictions is refused (kAuto falls back to the synchronous engine).
  bool sandboxed = true;
  // Whole-file OFD lock (shared for read-only, exclusive for writable). Only tools that merely
  // inspect an image (and the backing files they size) turn it off.
  bool lock = true;
};

}  // namespace microvm
