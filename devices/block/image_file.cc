#include "devices/block/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/block/image_lock.h"

namespace microvm {

Result<ImageFile> open_image_file(const std::string& path, bool read_only, CacheMode cache, bool lock,
                                  const Logger* log) {
  int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  ImageFile f;
  if (cache == CacheMode::kNone) {
    int fd = ::open(path.c_str(), flags | O_DIRECT);
    if (fd >= 0) {
      f.fd.reset(fd);
      f.direct = true;
    } else if (errno == EINVAL) {
      // tmpfs and some FUSE filesystems refuse O_DIRECT.
      if (log) log->log(LogLevel::kWarn, "%s: the filesystem refuses O_DIRECT; cache=none falls back to the page cache",
                        path.c_str());
    } else {
      return fail_errno("open " + path);
    }
  }
  if (!f.fd) {
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) return fail_errno("open " + path);
    f.fd.reset(fd);
  }
  struct stat st {};
  if (::fstat(f.fd.get(), &st) != 0) return fail_errno("stat " + path);
  if (S_ISREG(st.st_mode)) {
    f.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(f.fd.get(), 0, SEEK_END);
    if (end < 0) return fail_errno("size of " + path);
    f.size = static_cast<uint64_t>(end);
  } else {
    return fail(EINVAL, path + ": not a regular file or block device");
  }
  if (lock) TRY(lock_image(f.fd.get(), !read_only, path));
  return f;
}

}  // namespace microvm
