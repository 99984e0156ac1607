// Fuzzes the lexical confinement of API snapshot paths (cli/snapshot_dir.h): whatever a
// client sends, an accepted path is made only of ordinary components below the directory,
// so joined to it, it can name nothing outside.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cli/snapshot_dir.h"

using namespace microvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  const std::string requested(reinterpret_cast<const char*>(data), size);
  static const std::string kDir = "/srv/snaps";
  auto below = snapshot_path_below(kDir, requested);
  if (!below) return 0;
  const std::string& b = *below;
  if (b.empty() || b.front() == '/' || b.back() == '/') std::abort();
  if (b.find('\0') != std::string::npos || b.find("//") != std::string::npos) std::abort();
  size_t at = 0;
  while (at <= b.size()) {
    size_t end = b.find('/', at);
    if (end == std::string::npos) end = b.size();
    std::string part = b.substr(at, end - at);
    if (part.empty() || part == "." || part == "..") std::abort();
    at = end + 1;
  }
  // What was accepted is the request itself (relative) or its tail below the directory.
  if (requested != b && requested != kDir + "/" + b) std::abort();
  return 0;
}
