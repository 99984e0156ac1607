#include "devices/block/io_engine.h"
#include "devices/block/sync_engine.h"
#include "devices/block/uring_engine.h"

namespace microvm {

Result<std::unique_ptr<IoEngine>> make_io_engine(EngineKind kind, const Logger* log, unsigned queue_depth,
                                                 bool sandboxed) {
  if (kind == EngineKind::kSync) return TRY(SyncEngine::create());
  auto uring = UringEngine::create({.queue_depth = queue_depth, .sandboxed = sandboxed, .logger = log});
  if (uring) return std::move(*uring);
  if (kind == EngineKind::kIoUring) return std::unexpected(uring.error().context("io_uring engine"));
  // kAuto: io_uring may be disabled (sysctl, seccomp in a container, old kernel).
  if (log)
    log->log(LogLevel::kWarn, "io_uring unavailable (%s); using the synchronous I/O engine",
             uring.error().what.c_str());
  return TRY(SyncEngine::create());
}

}  // namespace microvm
