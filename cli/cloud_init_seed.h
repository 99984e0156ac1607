#pragma once
// `--cloud-init user-data=FILE[,meta-data=FILE][,network-config=FILE][,ssh-key=FILE][,hostname=H]`:
// a NoCloud seed for cloud-init. cloud-init's NoCloud datasource looks for a vfat or iso9660
// file system labelled "cidata" holding /user-data and /meta-data (both required) and
// optionally /network-config. microvm builds it as a small read-only FAT12 disk (fat_image.h) in
// a private temporary file, attached as the last virtio-blk disk and removed once the VM has it
// open (SeedFile::remove), so nothing stays behind.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cli/fat_image.h"

namespace microvm {

constexpr const char* kCloudInitLabel = "cidata";
constexpr uint64_t kMaxCloudInitFileBytes = 16ull << 20;

// The seed's files from the option's value; the named files are read now (bad ones: an error).
// Without meta-data=, meta-data is an instance-id derived from the seed's contents (a changed
// seed is a new instance to cloud-init) plus local-hostname when hostname= is given. Without
// user-data=, user-data is "#cloud-config" with ssh-key='s keys for the default user.
[[nodiscard]] Result<std::vector<FatFile>> parse_cloud_init_arg(const std::string& spec);

// The seed image for those files: FAT12, label "cidata".
[[nodiscard]] Result<std::vector<std::byte>> build_cloud_init_seed(const std::vector<FatFile>& files);

// A temporary file holding the seed; removed by remove() or, failing that, the destructor.
class SeedFile {
 public:
  [[nodiscard]] static Result<SeedFile> create(const std::vector<std::byte>& image);
  SeedFile(SeedFile&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  SeedFile& operator=(SeedFile&&) = delete;
  ~SeedFile() { remove(); }
  const std::string& path() const { return path_; }
  // Once the VM has opened it: later, under the sandbox, unlink is no longer allowed.
  void remove();

 private:
  explicit SeedFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace microvm
