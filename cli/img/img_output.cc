// Safe outputs for create/convert: identity checks against the inputs, the image lock on an
// existing output, and write-to-temporary-then-rename.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "cli/img/img_internal.h"
#include "devices/block/image_file.h"
#include "devices/block/image_lock.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/sync_disk.h"

namespace microvm::img {

namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::unexpected<Error> same_as_input(const std::string& out) {
  return fail(EINVAL, out +
                          " is the input image or a file of its backing chain (by another name, perhaps): "
                          "writing it would destroy the data being read");
}

mode_t default_mode() {
  // What open(..., 0644) would give: the umask applies. Single-threaded CLI, so the
  // read-and-restore of the process umask races with nothing.
  mode_t mask = ::umask(0);
  ::umask(mask);
  return 0644 & ~mask;
}

// The temporary file of the OutputFile in progress, removed if SIGINT/SIGTERM/SIGHUP ends the
// process (a long convert interrupted with ^C would otherwise leave a hidden file as big as the
// image). One at a time: the CLI writes one output per run.
constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP};
char g_temp[PATH_MAX];
volatile sig_atomic_t g_armed = 0;
struct sigaction g_previous[3];

void remove_temp_and_die(int sig) {
  if (g_armed) ::unlink(g_temp);  // async-signal-safe, as is the rest
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
}

bool arm_cleanup(const std::string& temp) {
  if (g_armed || temp.size() >= sizeof g_temp) return false;
  std::memcpy(g_temp, temp.c_str(), temp.size() + 1);
  g_armed = 1;
  struct sigaction sa {};
  sa.sa_handler = remove_temp_and_die;
  ::sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) {
    ::sigaction(kCleanupSignals[i], nullptr, &g_previous[i]);
    // An ignored signal stays ignored (nohup): it would not have ended the process.
    if (g_previous[i].sa_handler != SIG_IGN) ::sigaction(kCleanupSignals[i], &sa, nullptr);
  }
  return true;
}

void disarm_cleanup() {
  for (int i = 0; i < 3; ++i) ::sigaction(kCleanupSignals[i], &g_previous[i], nullptr);
  g_armed = 0;
}

}  // namespace

Result<std::set<FileId>> chain_files(const SyncDisk& disk) {
  std::set<FileId> ids;
  for (const SyncDisk* d = &disk; d;) {
    int fd = -1;
    const SyncDisk* next = nullptr;
    if (auto* q = dynamic_cast<const qcow2::Image*>(d)) {
      fd = q->fd();
      next = q->backing();
    } else if (auto* r = dynamic_cast<const RawSyncDisk*>(d)) {
      fd = r->fd();
    } else {
      // A disk we cannot identify could be the output: refuse rather than guess.
      return fail(EINVAL, "cannot identify the files of this image's backing chain");
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_errno("stat image");
    ids.insert({st.st_dev, st.st_ino});
    d = next;
  }
  return ids;
}

Result<std::unique_ptr<OutputFile>> OutputFile::create(const std::string& out, const std::set<FileId>& inputs) {
  std::unique_ptr<OutputFile> o(new OutputFile());
  o->target_ = out;
  mode_t mode = default_mode();
  struct stat st {};
  if (::lstat(out.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      // Writing through a symlink means replacing its target, as an in-place write would.
      char buf[PATH_MAX];
      if (!::realpath(out.c_str(), buf)) return fail_errno(out + ": symbolic link to nothing usable");
      o->target_ = buf;
      if (::stat(buf, &st) != 0) return fail_errno("stat " + o->target_);
    }
    if (inputs.count({st.st_dev, st.st_ino})) return same_as_input(out);
    if (!S_ISREG(st.st_mode))
      return fail(EINVAL, out + " exists and is not a regular file; only image files are written");
    o->old_ = TRY(open_regular_or_block(o->target_, O_RDWR));
    struct stat now {};
    if (::fstat(o->old_.get(), &now) != 0) return fail_errno("stat " + out);
    if (inputs.count({now.st_dev, now.st_ino})) return same_as_input(out);  // replaced meanwhile
    TRY(lock_image(o->old_.get(), true, out));
    mode = now.st_mode & 07777;
    st = now;
  } else if (errno != ENOENT) {
    return fail_errno("stat " + out);
  } else {
    st.st_uid = ::geteuid();
    st.st_gid = ::getegid();
  }

  std::string tmpl = dir_of(o->target_) + "/." + base_of(o->target_) + ".microvm-img-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return fail_errno("create a temporary file next to " + out);
  o->fd_.reset(fd);
  o->temp_ = tmpl;
  o->cleanup_armed_ = arm_cleanup(o->temp_);
  // Same owner (when we may) and mode as the file it replaces; chown first, as it clears setuid.
  if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) && ::fchown(fd, st.st_uid, st.st_gid) != 0 &&
      errno != EPERM)
    return fail_errno("chown " + o->temp_);
  if (::fchmod(fd, mode) != 0) return fail_errno("chmod " + o->temp_);
  TRY(lock_image(fd, true, o->temp_));
  return o;
}

Result<void> OutputFile::commit() {
  if (::fsync(fd_.get()) != 0) return fail_errno("sync " + temp_);
  if (::rename(temp_.c_str(), target_.c_str()) != 0) return fail_errno("rename " + temp_ + " to " + target_);
  committed_ = true;
  if (cleanup_armed_) disarm_cleanup();
  cleanup_armed_ = false;
  // The rename is durable only once the directory is.
  Fd dir(::open(dir_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || ::fsync(dir.get()) != 0) return fail_errno("sync the directory of " + target_);
  return {};
}

OutputFile::~OutputFile() {
  if (cleanup_armed_) disarm_cleanup();
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

}  // namespace microvm::img
