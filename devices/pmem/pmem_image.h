#pragma once
// The file behind a virtio-pmem device: opened, locked like a disk image (shared for
// read-only users, exclusive for writers, so two VMs can share a read-only image but never
// a writable one) and mapped MAP_SHARED, so the guest's loads and stores reach the host's
// page cache directly and VMs mapping the same read-only image share it.
#include <cstdint>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/mapping.h"
#include "base/result.h"
#include "devices/pmem/pmem_backend.h"

namespace microvm {

class PmemImage final : public PmemBackend {
 public:
  // Linux maps the region with struct pages for DAX, which needs 2 MiB (subsection)
  // granularity: the file size must be a non-zero multiple of it.
  static constexpr uint64_t kAlignment = 2ull << 20;

  [[nodiscard]] static Result<std::unique_ptr<PmemImage>> open(const std::string& path, bool read_only);

  Result<void> flush() override;

  std::byte* host() const { return mapping_.data(); }
  uint64_t size() const { return mapping_.size(); }
  bool read_only() const { return read_only_; }
  const std::string& path() const { return path_; }

 private:
  PmemImage() = default;
  std::string path_;
  bool read_only_ = false;
  Fd fd_;
  Mapping mapping_;
};

}  // namespace microvm
