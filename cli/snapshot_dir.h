#pragma once
// `microvm run --snapshot-dir DIR`: the one host directory API clients may name snapshot
// files in (PUT /snapshot/create, PUT /snapshot/load). Jailed, DIR is the only host
// directory bound into the jail (read-write), as Firecracker's snapshots live inside its
// chroot; without the jail it still confines what an API client can make the VMM read or
// write. Request paths are hostile: they are resolved here, once, before any file is opened.
#include <string>

#include "base/result.h"

namespace microvm {

enum class SnapshotFileUse { kCreate, kLoad };

// `requested` is relative to `dir` (Firecracker's paths are relative to the chroot) or an
// absolute path below it; `dir` is absolute and canonical (realpath). Returns the absolute
// path to open. Refused: an empty path, "." or ".." components, an absolute path outside
// `dir`, a symbolic link anywhere below `dir` (the last component included), a directory
// or other non-regular file, and for kLoad a file that does not exist. The check resolves
// through the file system (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): whoever can
// write into `dir` besides the VMM could still swap a checked directory for a link before
// the VMM opens it, which is why SECURITY.md asks that only the VMM's user may write there.
[[nodiscard]] Result<std::string> resolve_snapshot_path(const std::string& dir, const std::string& requested,
                                                        SnapshotFileUse use);

// The lexical half alone (no file system access): `requested` as components below `dir`
// ("a/b"), or the reason it escapes. Exposed for the fuzz target.
[[nodiscard]] Result<std::string> snapshot_path_below(const std::string& dir, const std::string& requested);

}  // namespace microvm
