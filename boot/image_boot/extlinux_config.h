#pragma once
// extlinux/syslinux configuration (extlinux.conf, syslinux.cfg): LABEL blocks with LINUX/KERNEL,
// INITRD and APPEND; DEFAULT, MENU DEFAULT and ONTIMEOUT choose one; INCLUDE is followed (bounded,
// loops fail). Keywords are case-insensitive; relative paths are relative to the config's folder.
#include <string_view>

#include "boot/image_boot/boot_entry.h"

namespace microvm::image_boot {

[[nodiscard]] Result<ConfigEntry> parse_extlinux_config(std::string_view text, const std::string& path,
                                                        const ReadConfigFile& read);

}  // namespace microvm::image_boot
