#include "devices/pmem/pmem_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/block/image_lock.h"

namespace microvm {

Result<std::unique_ptr<PmemImage>> PmemImage::open(const std::string& path, bool read_only) {
  std::unique_ptr<PmemImage> img(new PmemImage());
  img->path_ = path;
  img->read_only_ = read_only;
  img->fd_ = Fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!img->fd_) return fail_errno("--pmem " + path);
  struct stat st {};
  if (::fstat(img->fd_.get(), &st) < 0) return fail_errno("--pmem " + path + ": fstat");
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, "--pmem " + path + ": not a regular file");
  TRY(lock_image(img->fd_.get(), !read_only, path));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0 || size % kAlignment)
    return fail(EINVAL, "--pmem " + path + ": the file size must be a non-zero multiple of 2 MiB (it is " +
                            std::to_string(size) + " bytes; grow it with truncate -s)");
  int prot = PROT_READ | (read_only ? 0 : PROT_WRITE);
  img->mapping_ =
      TRY(Mapping::map(size, prot, MAP_SHARED | MAP_NORESERVE, img->fd_.get(), 0, "mapping the pmem image"));
  return img;
}

Result<void> PmemImage::flush() {
  // MAP_SHARED: the guest's stores are already in the page cache; fdatasync makes them durable.
  if (::fdatasync(fd_.get()) < 0) return fail_errno("fdatasync " + path_);
  return {};
}

}  // namespace microvm
