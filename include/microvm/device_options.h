#pragma once
// The fixed choices of a disk (DiskConfig) and a network interface (NetConfig), as enums, with
// the names the command line, the REST API, the C ABI and snapshot files use for them. Text
// is turned into these once, where it arrives; everything below works on the enums. Plain
// values: every layer may include this (the block back ends open images by these very enums).
#include <optional>
#include <string_view>

namespace microvm {

// A disk image's format: always given, never probed from the image's bytes.
enum class DiskFormat { kRaw, kQcow2 };
// How a disk's data meets the host page cache. kNone: O_DIRECT (bypasses it).
enum class CacheMode { kWriteback, kNone };
// The I/O engine under a disk. kAuto: io_uring, else (unavailable or refused by the sandbox)
// the synchronous engine, with one log line saying why.
enum class EngineKind { kAuto, kIoUring, kSync };
// A tap's data path. kOn: the kernel's vhost-net or fail; kAuto: vhost-net when the host has
// it, else the userspace path; kOff: always the userspace path (rate limits need it).
enum class VhostMode { kAuto, kOn, kOff };

constexpr const char* to_string(DiskFormat f) { return f == DiskFormat::kQcow2 ? "qcow2" : "raw"; }
constexpr const char* to_string(CacheMode c) { return c == CacheMode::kNone ? "none" : "writeback"; }
constexpr const char* to_string(EngineKind e) {
  return e == EngineKind::kIoUring ? "io_uring" : e == EngineKind::kSync ? "sync" : "auto";
}
constexpr const char* to_string(VhostMode v) {
  return v == VhostMode::kOn ? "on" : v == VhostMode::kOff ? "off" : "auto";
}

// The inverses, for the canonical names only (a parser with aliases maps them first).
// Unknown text is nullopt: the caller names the option in its error.
constexpr std::optional<DiskFormat> disk_format_from_string(std::string_view s) {
  if (s == "raw") return DiskFormat::kRaw;
  if (s == "qcow2") return DiskFormat::kQcow2;
  return std::nullopt;
}
constexpr std::optional<CacheMode> cache_mode_from_string(std::string_view s) {
  if (s == "writeback") return CacheMode::kWriteback;
  if (s == "none") return CacheMode::kNone;
  return std::nullopt;
}
constexpr std::optional<EngineKind> engine_kind_from_string(std::string_view s) {
  if (s == "auto") return EngineKind::kAuto;
  if (s == "io_uring") return EngineKind::kIoUring;
  if (s == "sync") return EngineKind::kSync;
  return std::nullopt;
}
constexpr std::optional<VhostMode> vhost_mode_from_string(std::string_view s) {
  if (s == "auto") return VhostMode::kAuto;
  if (s == "on") return VhostMode::kOn;
  if (s == "off") return VhostMode::kOff;
  return std::nullopt;
}

}  // namespace microvm
