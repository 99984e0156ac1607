#include "devices/net/slirp_api.h"

#include <dlfcn.h>

#include <string>

namespace microvm {
namespace {

// libslirp's ABI has been 0 since 4.0 (Debian: libslirp0).
constexpr const char* kSoname = "libslirp.so.0";

template <class F>
bool bind(void* handle, const char* name, F& out, std::string& missing) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  if (!out) missing += std::string(missing.empty() ? "" : ", ") + name;
  return out != nullptr;
}

Result<SlirpApi> load() {
  void* handle = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = ::dlerror();
    return fail(ENOENT,
                std::string("cannot load ") + kSoname + " (install libslirp0): " + (why ? why : "dlopen failed"));
  }
  SlirpApi api{};
  std::string missing;
  bind(handle, "slirp_new", api.slirp_new, missing);
  bind(handle, "slirp_cleanup", api.slirp_cleanup, missing);
  bind(handle, "slirp_add_hostfwd", api.slirp_add_hostfwd, missing);
  bind(handle, "slirp_connection_info", api.slirp_connection_info, missing);
  bind(handle, "slirp_input", api.slirp_input, missing);
  bind(handle, "slirp_pollfds_fill", api.slirp_pollfds_fill, missing);
  bind(handle, "slirp_pollfds_poll", api.slirp_pollfds_poll, missing);
  if (!missing.empty()) {
    ::dlclose(handle);
    return fail(ENOSYS, std::string(kSoname) + " lacks " + missing);
  }
  return api;  // the handle stays open: slirp instances live until the process ends
}

}  // namespace

Result<const SlirpApi*> slirp_api() {
  static const Result<SlirpApi> loaded = load();
  if (!loaded) return std::unexpected(loaded.error());
  return &*loaded;
}

}  // namespace microvm
