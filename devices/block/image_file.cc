#include "devices/block/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/block/image_lock.h"

namespace microvm {

namespace {

bool is_image_type(mode_t m) { return S_ISREG(m) || S_ISBLK(m); }

std::unexpected<Error> refuse_type(const std::string& path) {
  return fail(EINVAL, path +
                          ": not a regular file or block device (FIFOs, sockets, character devices and "
                          "directories are refused)");
}

}  // namespace

Result<Fd> open_regular_or_block(const std::string& path, int flags) {
  // Checked before open() too, so that a FIFO opened for writing gets this message rather than
  // ENXIO; the fstat below is the check that counts (the path may change in between).
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !is_image_type(st.st_mode)) return refuse_type(path);
  Fd fd(::open(path.c_str(), flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + path);
  if (!is_image_type(st.st_mode)) return refuse_type(path);
  // O_NONBLOCK was only for the open; regular files and block devices ignore it, but keep the
  // descriptor's flags exactly what the caller asked for.
  int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) return fail_errno("fcntl " + path);
  return fd;
}

Result<ImageFile> open_image_file(const std::string& path, bool read_only, CacheMode cache, bool lock,
                                  const Logger* log) {
  ImageFile f;
  f.fd = TRY(open_regular_or_block(path, read_only ? O_RDONLY : O_RDWR));
  if (cache == CacheMode::kNone) {
    // O_DIRECT through F_SETFL on the descriptor already checked, instead of a second open().
    int fl = ::fcntl(f.fd.get(), F_GETFL);
    if (fl < 0) return fail_errno("fcntl " + path);
    if (::fcntl(f.fd.get(), F_SETFL, fl | O_DIRECT) == 0) {
      f.direct = true;
    } else if (errno == EINVAL) {
      // tmpfs and some FUSE filesystems refuse O_DIRECT.
      if (log)
        log->log(LogLevel::kWarn, "%s: the filesystem refuses O_DIRECT; cache=none falls back to the page cache",
                 path.c_str());
    } else {
      return fail_errno("O_DIRECT on " + path);
    }
  }
  struct stat st {};
  if (::fstat(f.fd.get(), &st) != 0) return fail_errno("stat " + path);
  if (S_ISREG(st.st_mode)) {
    f.size = static_cast<uint64_t>(st.st_size);
  } else {
    off_t end = ::lseek(f.fd.get(), 0, SEEK_END);
    if (end < 0) return fail_errno("size of " + path);
    f.size = static_cast<uint64_t>(end);
  }
  if (lock) TRY(lock_image(f.fd.get(), !read_only, path));
  return f;
}

}  // namespace microvm
