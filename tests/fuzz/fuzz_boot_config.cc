// Fuzzes the boot-loader configuration parsers. The first byte picks the parser (GRUB grub.cfg,
// a BLS entry + loader.conf, extlinux.conf); the rest is the file. Includes (GRUB source,
// extlinux INCLUDE, grubenv) read the same bytes back under any name, so include loops and
// depth limits are exercised. Nothing may crash, hang or recurse without bound.
#include <cstddef>
#include <cstdint>
#include <string>

#include "boot/image_boot/bls_config.h"
#include "boot/image_boot/extlinux_config.h"
#include "boot/image_boot/grub_config.h"

using namespace microvm;
using namespace microvm::image_boot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  ReadConfigFile read = [&text](const std::string& path) -> Result<std::optional<std::string>> {
    if (path.size() % 3 == 0) return std::optional<std::string>{};  // some names do not exist
    return std::optional<std::string>(text);
  };
  switch (data[0] % 3) {
    case 0:
      (void)parse_grub_config(text, "/boot/grub/grub.cfg", read);
      break;
    case 1: {
      auto half = text.size() / 2;
      auto e = parse_bls_entry(text.substr(0, half), "a.conf");
      auto f = parse_bls_entry(text.substr(half), "b-1.10.conf");
      if (e && f) (void)choose_bls_entry({*e, *f}, text.substr(half));
      break;
    }
    case 2:
      (void)parse_extlinux_config(text, "/boot/extlinux/extlinux.conf", read);
      break;
  }
  return 0;
}
