#include "devices/block/image_lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace microvm {

namespace {

bool fdinfo_has_lock(const std::string& fdinfo_path, const std::string& needle) {
  std::ifstream in(fdinfo_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("lock:", 0) == 0 && line.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

int find_lock_holder(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return -1;
  char needle[64];
  std::snprintf(needle, sizeof needle, " %02x:%02x:%lu ", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  DIR* proc = ::opendir("/proc");
  if (!proc) return -1;
  int found = -1;
  while (dirent* p = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(p->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::string dir = std::string("/proc/") + p->d_name + "/fdinfo";
    DIR* fds = ::opendir(dir.c_str());
    if (!fds) continue;  // not ours to look at, or gone
    while (dirent* f = ::readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      if (pid == ::getpid() && std::atoi(f->d_name) == fd) continue;
      if (fdinfo_has_lock(dir + "/" + f->d_name, needle)) {
        found = static_cast<int>(pid);
        break;
      }
    }
    ::closedir(fds);
    if (found > 0) break;
  }
  ::closedir(proc);
  return found;
}

Result<void> lock_image(int fd, bool exclusive, const std::string& path) {
  struct flock fl {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // the whole file, however it grows
  if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return {};
  int err = errno;
  if (err != EAGAIN && err != EACCES) return fail_errno(err, "lock " + path);
  int holder = find_lock_holder(fd);
  std::string who = holder > 0 ? "process " + std::to_string(holder) + (holder == ::getpid() ? " (this process)" : "")
                               : "another process";
  return fail(err, "disk image " + path + " is in use by " + who + " (" +
                       (exclusive ? "a writable disk needs exclusive access" : "it is open for writing") + ")");
}

}  // namespace microvm
