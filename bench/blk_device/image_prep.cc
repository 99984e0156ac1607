#include "bench/blk_device/image_prep.h"

#include <unistd.h>

#include <cerrno>

#include "bench/blk_device/fio_runner.h"

namespace microvm::blkbench {

Result<std::string> make_qcow2_copy(const std::string& qemu_img, const std::string& raw, const std::string& qcow2) {
  if (::unlink(qcow2.c_str()) != 0 && errno != ENOENT) return fail_errno("remove old " + qcow2);
  std::vector<std::string> argv = {qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536",
                                   raw,      qcow2};
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (auto r = run_capture(argv); !r) return std::unexpected(r.error().context("qemu-img convert"));
  // The runs open it with O_DIRECT: its data must be on disk, not only in the page cache.
  TRY(run_capture({"sync", qcow2}));
  return cmd;
}

Result<std::string> make_fresh_qcow2(const std::string& qemu_img, const std::string& path, uint64_t bytes) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail_errno("remove old " + path);
  std::vector<std::string> argv = {
      qemu_img, "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", path, std::to_string(bytes)};
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (auto r = run_capture(argv); !r) return std::unexpected(r.error().context("qemu-img create"));
  return cmd;
}

}  // namespace microvm::blkbench
