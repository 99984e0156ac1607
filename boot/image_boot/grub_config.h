#pragma once
// GRUB 2's grub.cfg, as far as choosing the default entry needs: the shell-like script grammar
// (quoting, variables, if/elif/else, functions, menuentry and submenu blocks), `set`, `search`,
// `source`/`configfile`, `load_env`, and `[ ... ]` tests. The default entry (`set default` as a
// number, id, title, "saved" or a "submenu>entry" path) is then run for its `linux`, `initrd`
// and `set root` / `search --set=root`. Everything else (insmod, load_video, echo...) is a no-op.
// The text is untrusted: sizes, nesting and include depth are bounded, and include loops fail.
#include <string_view>

#include "boot/image_boot/boot_entry.h"

namespace microvm::image_boot {

// `path` is the config's own path (for includes relative to it and for error messages).
// `read_other`, when given, reads `source`/`configfile` targets on other file systems.
[[nodiscard]] Result<ConfigEntry> parse_grub_config(std::string_view text, const std::string& path,
                                                    const ReadConfigFile& read, const ReadDeviceFile& read_other = {});

}  // namespace microvm::image_boot
