#pragma once
// What a boot-loader configuration says to boot, before it is located on a partition.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::image_boot {

// A file named by a configuration: a path, plus the device it is on when the config says.
// device: "" (the volume the config came from), "uuid=U" / "label=L" (a GRUB search),
// "file=/path" (GRUB search --file) or "partN" (GRUB's (hd0,gptN) / (hd0,msdosN)).
struct FileRef {
  std::string device;
  std::string path;
};

struct ConfigEntry {
  std::string title;
  std::string source;  // the file the entry came from, when not the config itself (a BLS entry)
  FileRef kernel;
  std::vector<FileRef> initrds;
  std::string options;  // the entry's own kernel command line
};

// Limits on what is read from an image for a configuration.
constexpr uint64_t kMaxConfigBytes = 1 << 20;
constexpr int kMaxIncludeDepth = 8;

// How a parser reads other files on the same volume (GRUB `source`, extlinux INCLUDE, grubenv):
// nullopt when the file does not exist; an error for anything else (too large, I/O).
using ReadConfigFile = std::function<Result<std::optional<std::string>>(const std::string& path)>;
// The same for a file on another file system of the image (GRUB's `configfile ($root)/...` after
// a `search`, as the stub grub.cfg on an EFI system partition does).
using ReadDeviceFile = std::function<Result<std::optional<std::string>>(const FileRef& file)>;

}  // namespace microvm::image_boot
