// `microvm img` never destroys a user's image: an output that is its own input (by any name)
// or in its backing chain, an image another process holds, a FIFO, a conversion that fails
// midway. Real holders (a forked process taking the same OFD lock, qemu-io) and qemu-img as referee.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "cli/img/img_command.h"
#include "cli/img/img_internal.h"
#include "devices/block/image_file.h"
#include "devices/block/image_lock.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "tests/unit/block/block_test_util.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;
using testing_block::img;  // the function, not the microvm::img namespace

// Runs `body` in a child process that SIGALRM ends after `seconds`: code that blocks (open()
// of a FIFO) fails the test with 128+SIGALRM instead of hanging it. Returns the exit code.
template <class F>
int in_child(F body, unsigned seconds = 20) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(seconds);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDOUT_FILENO);
    ::_exit(body());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int img_in_child(std::vector<std::string> args) {
  return in_child([&] { return img(std::move(args)); });
}

// Writes a distinctive pattern through qemu-io so the test can tell whether the image survived.
void fill(const std::string& path, const char* fmt) {
  ASSERT_EQ(run(std::string("qemu-io -f ") + fmt + " -c 'write -P 0x5a 0 64k' -c 'write -P 0xa5 1M 64k' " + path +
                " >/dev/null 2>&1"),
            0);
}

// A process that opens `path` and holds the OFD lock microvm run would take, until destroyed.
class LockHolder {
 public:
  LockHolder(const std::string& path, bool exclusive) {
    int ready[2], stop[2];
    if (::pipe(ready) != 0 || ::pipe(stop) != 0) return;
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(stop[1]);
      int fd = ::open(path.c_str(), (exclusive ? O_RDWR : O_RDONLY) | O_CLOEXEC);
      char ok = fd >= 0 && lock_image(fd, exclusive, path) ? 'y' : 'n';
      (void)!::write(ready[1], &ok, 1);
      char c;
      (void)!::read(stop[0], &c, 1);  // until the parent closes its end
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(stop[0]);
    stop_ = stop[1];
    char ok = 'n';
    locked_ = ::read(ready[0], &ok, 1) == 1 && ok == 'y';
    ::close(ready[0]);
  }
  ~LockHolder() {
    if (stop_ >= 0) ::close(stop_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  bool locked() const { return locked_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stop_ = -1;
  bool locked_ = false;
};

// True once some process holds any lock on `path` that conflicts with a write lock.
bool someone_locks(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  bool locked = ::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  ::close(fd);
  return locked;
}

// qemu-io with `path` open read-write, waiting for commands on its stdin (closed at the end).
class QemuIoHolder {
 public:
  explicit QemuIoHolder(const std::string& path) {
    f_ = ::popen(("exec qemu-io -f qcow2 " + path + " >/dev/null 2>&1").c_str(), "w");
    for (int i = 0; f_ && i < 2000 && !someone_locks(path); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    holding_ = f_ && someone_locks(path);
  }
  ~QemuIoHolder() {
    if (f_) ::pclose(f_);
  }
  bool holding() const { return holding_; }

 private:
  FILE* f_ = nullptr;
  bool holding_ = false;
};

int files_in(const std::string& dir) {
  std::string out;
  run("ls -A '" + dir + "' | wc -l", &out);
  return std::stoi(out);
}

// Item 1: the output is the input itself, by the same name, a symlink or a hard link.
TEST(ImgSafety, ConvertOntoItsOwnInputIsRefused) {
  TempDir dir;
  auto q = dir.file("in.qcow2"), r = dir.file("in.raw");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", q, "4M"}), 0);
  fill(q, "qcow2");
  write_file(r, pattern(2 << 20, 3));
  ASSERT_EQ(::symlink(q.c_str(), dir.file("link.qcow2").c_str()), 0);
  ASSERT_EQ(::link(q.c_str(), dir.file("hard.qcow2").c_str()), 0);
  ASSERT_EQ(::symlink("in.raw", dir.file("link.raw").c_str()), 0);
  const auto qbytes = read_file(q), rbytes = read_file(r);

  EXPECT_EQ(img({"convert", "-q", "-O", "qcow2", q, q}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "raw", q, dir.file("link.qcow2")}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "qcow2", dir.file("link.qcow2"), dir.file("hard.qcow2")}), 1);
  EXPECT_EQ(img({"convert", "-q", "-f", "raw", "-O", "raw", r, r}), 1);
  EXPECT_EQ(img({"convert", "-q", "-f", "raw", "-O", "qcow2", r, dir.file("link.raw")}), 1);
  EXPECT_TRUE(read_file(q) == qbytes) << "the qcow2 input was changed";
  EXPECT_TRUE(read_file(r) == rbytes) << "the raw input was changed";
  std::string out;
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  struct stat st {};
  ASSERT_EQ(::lstat(dir.file("link.raw").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the symlink itself is left alone too";
}

// Item 1: the output is a file of the input's backing chain, at any depth and by any name.
TEST(ImgSafety, ConvertOntoABackingFileIsRefused) {
  TempDir dir;
  auto base = dir.file("base.raw"), mid = dir.file("mid.qcow2"), top = dir.file("top.qcow2");
  write_file(base, pattern(2 << 20, 9));
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", mid}), 0);
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top}), 0);
  ASSERT_EQ(::link(base.c_str(), dir.file("base-hard").c_str()), 0);
  const auto bbytes = read_file(base), mbytes = read_file(mid);
  EXPECT_EQ(img({"convert", "-q", "-O", "raw", top, base}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "raw", top, dir.file("base-hard")}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "qcow2", top, mid}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "qcow2", mid, base}), 1);
  EXPECT_TRUE(read_file(base) == bbytes);
  EXPECT_TRUE(read_file(mid) == mbytes);
  // The chain still converts to a new file.
  ASSERT_EQ(img({"convert", "-q", "-O", "raw", top, dir.file("flat.raw")}), 0);
  EXPECT_TRUE(read_file(dir.file("flat.raw")) == bbytes);
}

// Item 1 for create: a new overlay written over its own backing file.
TEST(ImgSafety, CreateOverItsOwnBackingFileIsRefused) {
  TempDir dir;
  auto base = dir.file("base.qcow2");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", base, "4M"}), 0);
  fill(base, "qcow2");
  ASSERT_EQ(::symlink(base.c_str(), dir.file("alias.qcow2").c_str()), 0);
  const auto bytes = read_file(base);
  EXPECT_EQ(img({"create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", base}), 1);
  EXPECT_EQ(img({"create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir.file("alias.qcow2")}), 1);
  EXPECT_TRUE(read_file(base) == bytes);
}

// Item 2: a running holder (the lock microvm run takes), exclusive or shared.
TEST(ImgSafety, WritersRefuseAnImageInUse) {
  TempDir dir;
  auto held = dir.file("held.qcow2"), src = dir.file("src.raw");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", held, "4M"}), 0);
  fill(held, "qcow2");
  write_file(src, pattern(1 << 20, 1));
  const auto bytes = read_file(held);
  for (bool exclusive : {true, false}) {
    LockHolder holder(held, exclusive);
    ASSERT_TRUE(holder.locked());
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(img({"create", "-q", "-f", "raw", held, "1M"}), 1);
    EXPECT_EQ(img({"create", "-q", "-f", "qcow2", held, "1M"}), 1);
    EXPECT_EQ(img({"convert", "-q", "-f", "raw", "-O", "qcow2", src, held}), 1);
    EXPECT_EQ(img({"convert", "-q", "-f", "raw", "-O", "raw", src, held}), 1);
    EXPECT_EQ(img({"resize", "-q", held, "+1M"}), 1);
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("in use by process " + std::to_string(holder.pid())), std::string::npos) << err;
    EXPECT_TRUE(read_file(held) == bytes);
  }
  // Free again: the same commands work.
  EXPECT_EQ(img({"convert", "-q", "-f", "raw", "-O", "raw", src, held}), 0);
  EXPECT_TRUE(read_file(held) == read_file(src));
}

// Item 2 against a real qemu-io holding the image read-write.
TEST(ImgSafety, WritersRefuseAnImageQemuIoHolds) {
  TempDir dir;
  auto held = dir.file("held.qcow2"), src = dir.file("src.raw");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", held, "4M"}), 0);
  fill(held, "qcow2");
  write_file(src, pattern(1 << 20, 1));
  const auto bytes = read_file(held);
  {
    QemuIoHolder qemu(held);
    ASSERT_TRUE(qemu.holding());
    EXPECT_EQ(img({"create", "-q", "-f", "qcow2", held, "1M"}), 1);
    EXPECT_EQ(img({"convert", "-q", "-f", "raw", "-O", "qcow2", src, held}), 1);
    EXPECT_EQ(img({"resize", "-q", held, "+1M"}), 1);
  }
  EXPECT_TRUE(read_file(held) == bytes);
  std::string out;
  EXPECT_EQ(qemu_img("check " + held, &out), 0) << out;
}

// Item 7: a FIFO as input, as probed input, as backing file, and as a run disk.
TEST(ImgSafety, FifosAreRefusedNotWaitedOn) {
  TempDir dir;
  auto fifo = dir.file("fifo"), top = dir.file("top.qcow2"), out = dir.file("out.raw");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string o;
  ASSERT_EQ(qemu_img("create -f qcow2 -u -b fifo -F raw " + top + " 1M", &o), 0) << o;
  EXPECT_EQ(img_in_child({"convert", "-q", "-f", "raw", "-O", "raw", fifo, out}), 1);
  EXPECT_EQ(img_in_child({"convert", "-q", "-O", "raw", fifo, out}), 1) << "format probing must not block either";
  EXPECT_EQ(img_in_child({"convert", "-q", "-O", "raw", top, out}), 1);
  EXPECT_EQ(img_in_child({"info", fifo}), 1);
  EXPECT_EQ(img_in_child({"check", "-f", "qcow2", fifo}), 1);
  EXPECT_EQ(img_in_child({"create", "-q", "-f", "qcow2", "-b", fifo, "-F", "raw", dir.file("new.qcow2"), "1M"}), 1);
  EXPECT_EQ(img_in_child({"create", "-q", "-f", "raw", fifo, "1M"}), 1) << "a FIFO output is refused too";
  EXPECT_EQ(img_in_child({"convert", "-q", "-f", "qcow2", "-O", "raw", top, fifo}), 1);
  EXPECT_EQ(files_in(dir.path()), 2) << "nothing created";
  // The run disk path (and every backing file) opens through open_image_file.
  for (bool ro : {true, false}) {
    EXPECT_EQ(in_child([&] {
                auto f = open_image_file(fifo, ro, CacheMode::kWriteback, true, nullptr);
                return !f && f.error().what.find("not a regular file or block device") != std::string::npos ? 0 : 1;
              }),
              0)
        << (ro ? "read-only" : "writable");
  }
  auto dev = open_image_file("/dev/null", true, CacheMode::kWriteback, false, nullptr);
  EXPECT_FALSE(dev) << "a character device is no disk image";
}

// A conversion that fails after it has written data (the input's metadata is corrupt at 1 MiB)
// leaves an existing output as it was.
TEST(ImgSafety, ConvertFailingMidwayKeepsTheOldOutput) {
  TempDir dir;
  auto in = dir.file("in.qcow2"), out = dir.file("out.img");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", in, "4M"}), 0);
  fill(in, "qcow2");  // guest clusters 0 and 16 (64 KiB clusters)
  auto all = read_file(in);
  uint64_t l1 = qcow2::be64(all.data() + 40);
  uint64_t l2 = qcow2::be64(all.data() + l1) & qcow2::kOffsetMask;
  ASSERT_NE(qcow2::be64(all.data() + l2 + 16 * 8), 0u);
  uint8_t bad[8];
  qcow2::put_be64(bad, (1ull << 63) | (256u << 20));  // data "at" 256 MiB, far past the end
  int fd = ::open(in.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bad, 8, static_cast<off_t>(l2 + 16 * 8)), 8);
  ::close(fd);
  const auto old = pattern(300000, 5);
  write_file(out, old);
  EXPECT_EQ(img({"convert", "-q", "-O", "qcow2", in, out}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "raw", in, out}), 1);
  EXPECT_TRUE(read_file(out) == old) << "the old output was destroyed";
  EXPECT_EQ(files_in(dir.path()), 2);
}

// A failed create or convert leaves the user's files as they were, and nothing behind.
TEST(ImgSafety, FailuresLeaveFilesAsTheyWere) {
  TempDir dir;
  auto existing = dir.file("existing.raw"), huge = dir.file("huge.qcow2");
  const auto data = pattern(1 << 20, 77);
  write_file(existing, data);
  ::chmod(existing.c_str(), 0640);
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", huge, "20T"}), 0);
  const auto hbytes = read_file(huge);
  // ext4 files end at 16 TiB: raw output of 20 TiB fails after the output was opened.
  EXPECT_EQ(img({"create", "-q", "-f", "raw", existing, "20T"}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "raw", huge, existing}), 1);
  EXPECT_EQ(img({"convert", "-q", "-O", "raw", huge, dir.file("new.raw")}), 1);
  EXPECT_EQ(img({"create", "-q", "-f", "raw", dir.file("new2.raw"), "20T"}), 1);
  EXPECT_TRUE(read_file(existing) == data) << "existing output destroyed by a failed command";
  EXPECT_TRUE(read_file(huge) == hbytes);
  EXPECT_EQ(files_in(dir.path()), 2) << "no temporary or half-written files left";
  // A successful replacement keeps the existing file's mode.
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", existing, "1M"}), 0);
  struct stat st {};
  ASSERT_EQ(::stat(existing.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  std::string out;
  EXPECT_EQ(qemu_img("check " + existing, &out), 0) << out;
  EXPECT_EQ(files_in(dir.path()), 2);
}

// ^C (or SIGTERM, SIGHUP) in the middle of a create/convert removes the temporary output.
TEST(ImgSafety, InterruptedOutputLeavesNothingBehind) {
  TempDir dir;
  auto existing = dir.file("existing.raw");
  const auto data = pattern(65536, 3);
  write_file(existing, data);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    for (const std::string& out : {existing, dir.file("new.raw")}) {
      int status = in_child([&] {
        auto o = img::OutputFile::create(out, {});
        if (!o) return 10;
        if (::ftruncate((*o)->fd(), 1 << 20) != 0) return 11;
        ::raise(sig);
        return 12;  // not reached: the signal ends the process
      });
      EXPECT_EQ(status, 128 + sig) << out;
      EXPECT_EQ(files_in(dir.path()), 1) << "signal " << sig << ", " << out;
    }
  }
  EXPECT_TRUE(read_file(existing) == data);
  // Outside an output's lifetime the signal handlers are the previous ones again.
  {
    auto o = img::OutputFile::create(dir.file("x.raw"), {});
    ASSERT_TRUE(o) << o.error().what;
  }
  struct sigaction now {};
  ASSERT_EQ(::sigaction(SIGINT, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  // An ignored SIGHUP (nohup) stays ignored while an output is being written.
  EXPECT_EQ(in_child([&] {
              ::signal(SIGHUP, SIG_IGN);
              auto o = img::OutputFile::create(dir.file("y.raw"), {});
              if (!o) return 10;
              ::raise(SIGHUP);
              return 0;
            }),
            0);
  EXPECT_EQ(files_in(dir.path()), 1);
}

// Usage and exit codes: --help/-h 0, bad arguments 2, runtime failures 1.
TEST(ImgSafety, HelpAndExitCodes) {
  TempDir dir;
  auto f = dir.file("a.qcow2");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", f, "1M"}), 0);
  for (const char* sub : {"create", "info", "check", "resize", "convert"}) {
    for (const char* h : {"--help", "-h"}) {
      ::testing::internal::CaptureStdout();
      EXPECT_EQ(img({sub, h}), 0) << sub << " " << h;
      std::string text = ::testing::internal::GetCapturedStdout();
      EXPECT_NE(text.find(std::string("microvm img ") + sub + " "), std::string::npos) << text;
    }
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(img({sub, "--bogus", f}), 2) << sub;
    EXPECT_EQ(img({sub, f, "x", "y", "z"}), 2) << sub << ": too many positionals";
    EXPECT_EQ(img({sub}), 2) << sub << ": no positionals";
    EXPECT_EQ(img({sub, "-f"}), 2) << sub << ": missing value";
    ::testing::internal::GetCapturedStderr();
  }
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(img({}), 2);
  EXPECT_EQ(img({"frobnicate"}), 2);
  EXPECT_EQ(img({"create", "-f", "vmdk", dir.file("x"), "1M"}), 2);
  EXPECT_EQ(img({"create", "-f", "raw", dir.file("x"), "12Q"}), 2);
  EXPECT_EQ(img({"create", "-f", "qcow2", "-o", "cluster_size=3k", dir.file("x"), "1M"}), 2);
  EXPECT_EQ(img({"resize", f, "lots"}), 2);
  EXPECT_EQ(img({"info", "-f", "vmdk", f}), 2);
  EXPECT_EQ(img({"check", "-f", "vmdk", f}), 2);
  EXPECT_EQ(img({"convert", "-O", "vmdk", f, dir.file("y")}), 2);
  EXPECT_EQ(img({"convert", f, dir.file("y")}), 2) << "-O is required";
  EXPECT_EQ(img({"info", dir.file("missing")}), 1);
  EXPECT_EQ(img({"convert", "-O", "raw", dir.file("missing"), dir.file("y")}), 1);
  EXPECT_EQ(img({"resize", dir.file("missing"), "1M"}), 1);
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(files_in(dir.path()), 1);
}

}  // namespace
}  // namespace microvm
