#pragma once
// Start-up code leaves the program's text mapped: every page it ran, plus the 64 KiB the
// kernel's fault-around maps next to each. Most of it (argument parsing, image loading, table
// building) never runs again, yet it counts in the process's RSS and PSS.
#include <cstddef>

namespace microvm {

// Unmaps the read-only, non-writable PT_LOAD segments (text and constants) of the executable
// and every loaded library from this process with MADV_DONTNEED. The pages stay in the page
// cache, so whatever runs next faults its pages back in (minor faults). Objects with text
// relocations are skipped, as is the vDSO. Then gives free heap pages back (malloc_trim).
// Returns the bytes of program segments advised.
//
// A private file page someone wrote to (a debugger's breakpoint) would revert to the file's
// content: call this before a debugger could have attached, or not at all under one.
size_t release_startup_pages();

}  // namespace microvm
