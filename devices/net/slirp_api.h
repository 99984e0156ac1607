#pragma once
// libslirp, loaded on first use with dlopen() instead of linked: the VMM then maps libslirp,
// GLib and PCRE2 only when a VM has --net user, not at every start (ld.so time and about
// 0.8 MiB of RSS, docs/benchmarks.md). The functions keep libslirp's own signatures.
#include <slirp/libslirp.h>

#include "base/result.h"

namespace microvm {

struct SlirpApi {
  decltype(&::slirp_new) slirp_new;
  decltype(&::slirp_cleanup) slirp_cleanup;
  decltype(&::slirp_add_hostfwd) slirp_add_hostfwd;
  decltype(&::slirp_connection_info) slirp_connection_info;
  decltype(&::slirp_input) slirp_input;
  decltype(&::slirp_pollfds_fill) slirp_pollfds_fill;
  decltype(&::slirp_pollfds_poll) slirp_pollfds_poll;
};

// The loaded library (kept for the life of the process); an error names the missing library
// or symbol. Thread-safe; the first call must come before the sandbox is entered.
[[nodiscard]] Result<const SlirpApi*> slirp_api();

}  // namespace microvm
