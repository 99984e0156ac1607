// Real host faults under virtio-blk, no injection layer: loop devices and files on a tmpfs that
// runs out of space. (Device-mapper error/flakey targets would be the textbook tool, but this
// kernel has no device-mapper; a loop device over a full tmpfs fails writeback with EIO and
// O_DIRECT writes with ENOSPC, which is what those targets are used to provoke.)
//
// - raw on a loop device, buffered: writes land in the page cache, the FLUSH's fdatasync fails
//   with EIO; the next fdatasync would succeed (the kernel reports the error once), so the
//   device must keep failing flushes itself.
// - raw on a loop device, O_DIRECT: writes past the space fail with ENOSPC.
// - raw file on a full tmpfs: short writes then ENOSPC, never a success.
// - qcow2 on a full tmpfs: the data cluster fits, the L2 table written at FLUSH does not.
// - qcow2 on ext4 on a failing loop device: fdatasync fails; the image refuses every later
//   flush until it is reopened, even across a device reset.
//
// Needs root (mount, loop devices); fails, does not skip, without it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "base/fd.h"
#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_backend.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "tests/unit/virtio/blk/blk_test_driver.h"

namespace microvm {
namespace {

constexpr uint32_t kChunk = 256 << 10;

// A fresh directory with a filesystem mounted on it (a tmpfs of `bytes` by default). Unmounted
// lazily when destroyed (files still open keep it alive until they close).
class Mount {
 public:
  explicit Mount(size_t bytes) : Mount("tmpfs", "tmpfs", "size=" + std::to_string(bytes) + ",mode=0700") {}
  Mount(const std::string& source, const char* type, const std::string& opts) {
    char tmpl[] = "/tmp/microvm-fault-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      error_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    if (::mount(source.c_str(), dir_.c_str(), type, MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      error_ = std::string("mount ") + type + ": " + std::strerror(errno);
      ::rmdir(dir_.c_str());
      dir_.clear();
    }
  }
  ~Mount() { detach(); }
  void detach() {
    if (dir_.empty()) return;
    ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
    dir_.clear();
  }
  bool ok() const { return !dir_.empty(); }
  const std::string& error() const { return error_; }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string error_;
};

// A loop device over `backing`, detached automatically once nothing holds it.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& backing) {
    Fd file(::open(backing.c_str(), O_RDWR | O_CLOEXEC));
    Fd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
    if (!file || !ctl) {
      error_ = std::string("open backing file or /dev/loop-control: ") + std::strerror(errno);
      return;
    }
    for (int attempt = 0; attempt < 8; ++attempt) {
      int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
      if (n < 0) {
        error_ = std::string("LOOP_CTL_GET_FREE: ") + std::strerror(errno);
        return;
      }
      path_ = "/dev/loop" + std::to_string(n);
      fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
      if (!fd_) {
        error_ = "open " + path_ + ": " + std::strerror(errno);
        return;
      }
      loop_config cfg{};
      cfg.fd = static_cast<uint32_t>(file.get());
      cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (::ioctl(fd_.get(), LOOP_CONFIGURE, &cfg) == 0) return;
      error_ = "LOOP_CONFIGURE " + path_ + ": " + std::strerror(errno);
      fd_.reset();
      if (errno != EBUSY) return;  // EBUSY: another process took it first; ask again
    }
  }
  ~LoopDevice() {
    if (fd_) ::ioctl(fd_.get(), LOOP_CLR_FD, 0);  // refused while mounted; autoclear finishes it
  }
  bool ok() const { return fd_.valid(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  Fd fd_;
  std::string path_;
  std::string error_;
};

void make_sparse(const std::string& path, uint64_t size) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid()) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
}

// Fills the filesystem holding `dir` until `leave` bytes are free.
void fill_leaving(const std::string& dir, uint64_t leave) {
  struct statvfs v {};
  ASSERT_EQ(::statvfs(dir.c_str(), &v), 0);
  uint64_t free_bytes = uint64_t{v.f_bavail} * v.f_frsize;
  ASSERT_GT(free_bytes, leave);
  Fd fd(::open((dir + "/filler").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::posix_fallocate(fd.get(), 0, static_cast<off_t>(free_bytes - leave)), 0);
}

class RealFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "these tests need root: they mount a tmpfs and attach loop devices";
  }
  testing::BlkTestDriver drv;

  std::unique_ptr<BlockBackend> open(const std::string& path, DiskFormat format, CacheMode cache) {
    DiskOptions o;
    o.path = path;
    o.format = format;
    o.cache = cache;
    o.engine = EngineKind::kIoUring;
    auto b = open_disk(o);
    EXPECT_TRUE(b.has_value()) << b.error().what;
    return b ? std::move(*b) : nullptr;
  }
};

TEST_F(RealFaultTest, RawLoopDeviceFailedFsyncIsIoErrAndLaterFlushesFail) {
  Mount fs(1 << 20);
  ASSERT_TRUE(fs.ok()) << fs.error();
  make_sparse(fs.file("backing"), 16 << 20);
  LoopDevice loop(fs.file("backing"));
  ASSERT_TRUE(loop.ok()) << loop.error();
  auto backend = open(loop.path(), DiskFormat::kRaw, CacheMode::kWriteback);
  ASSERT_TRUE(backend);
  drv.start(std::move(backend));

  // 4 MiB into the page cache: every write completes (nothing has reached the 1 MiB tmpfs yet).
  GuestAddress data = drv.buffer(kChunk, 0x5a);
  for (uint32_t i = 0; i < 16; ++i) ASSERT_EQ(drv.write(i * (kChunk / 512), data, kChunk), VIRTIO_BLK_S_OK) << i;
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR) << "writeback to the full backing file failed: the flush must say so";
  // A second fdatasync would now succeed; the device must not let the guest believe it.
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);
  EXPECT_GE(drv.dev->counters().flushes_poisoned.load(), 2u);
  EXPECT_FALSE(drv.dev->needs_reset());
}

TEST_F(RealFaultTest, RawLoopDeviceDirectWritesPastTheSpaceAreIoErr) {
  Mount fs(1 << 20);
  ASSERT_TRUE(fs.ok()) << fs.error();
  make_sparse(fs.file("backing"), 16 << 20);
  LoopDevice loop(fs.file("backing"));
  ASSERT_TRUE(loop.ok()) << loop.error();
  auto backend = open(loop.path(), DiskFormat::kRaw, CacheMode::kNone);
  ASSERT_TRUE(backend);
  drv.start(std::move(backend));

  uint32_t ok = 0, failed = 0;
  for (uint32_t i = 0; i < 16; ++i) {
    GuestAddress data = drv.buffer(kChunk, static_cast<uint8_t>(i + 1));
    uint8_t s = drv.write(i * (kChunk / 512), data, kChunk);
    ASSERT_TRUE(s == VIRTIO_BLK_S_OK || s == VIRTIO_BLK_S_IOERR) << int(s);
    if (s == VIRTIO_BLK_S_OK) {
      ++ok;
      // What was reported written is there.
      GuestAddress back = drv.buffer(kChunk);
      ASSERT_EQ(drv.read(i * (kChunk / 512), back, kChunk), VIRTIO_BLK_S_OK);
      EXPECT_EQ(std::memcmp(drv.bytes(back, kChunk).data(), drv.bytes(data, kChunk).data(), kChunk), 0) << i;
    } else {
      ++failed;
    }
  }
  EXPECT_LE(ok, 4u) << "only 1 MiB of space behind the disk";
  EXPECT_GE(failed, 12u);
  EXPECT_EQ(drv.dev->counters().io_errors.load(), failed);
}

TEST_F(RealFaultTest, RawFileOnFullTmpfsShortWriteThenEnospcIsIoErr) {
  Mount fs(1 << 20);
  ASSERT_TRUE(fs.ok()) << fs.error();
  make_sparse(fs.file("disk.raw"), 8 << 20);
  auto backend = open(fs.file("disk.raw"), DiskFormat::kRaw, CacheMode::kWriteback);
  ASSERT_TRUE(backend);
  drv.start(std::move(backend));

  // 192 KiB does not divide 1 MiB: the write that reaches the end is cut short by the kernel,
  // and its remainder then fails with ENOSPC.
  constexpr uint32_t kOdd = 192 << 10;
  uint32_t ok = 0;
  bool failed = false;
  for (uint32_t i = 0; i < 10; ++i) {
    GuestAddress data = drv.buffer(kOdd, static_cast<uint8_t>(0x80 + i));
    uint8_t s = drv.write(i * (kOdd / 512), data, kOdd);
    if (s == VIRTIO_BLK_S_IOERR) {
      failed = true;
      continue;
    }
    ASSERT_EQ(s, VIRTIO_BLK_S_OK);
    ASSERT_FALSE(failed) << "a write succeeded after the filesystem was full";
    ++ok;
    GuestAddress back = drv.buffer(kOdd);
    ASSERT_EQ(drv.read(i * (kOdd / 512), back, kOdd), VIRTIO_BLK_S_OK);
    EXPECT_EQ(std::memcmp(drv.bytes(back, kOdd).data(), drv.bytes(data, kOdd).data(), kOdd), 0) << i;
  }
  EXPECT_TRUE(failed);
  EXPECT_LE(ok, 5u);
}

TEST_F(RealFaultTest, Qcow2MetadataWriteEnospcFailsTheFlush) {
  Mount fs(4 << 20);
  ASSERT_TRUE(fs.ok()) << fs.error();
  std::string path = fs.file("disk.qcow2");
  ASSERT_TRUE(qcow2::create_image(path, {.size = 64 << 20}).has_value());
  // Room for the guest's data cluster (64 KiB) but not for the new L2 table behind it.
  fill_leaving(fs.dir(), (64 << 10) + (8 << 10));
  auto backend = open(path, DiskFormat::kQcow2, CacheMode::kWriteback);
  ASSERT_TRUE(backend);
  drv.start(std::move(backend));

  // A whole cluster: a smaller write into fresh space only writes its own bytes (the rest of
  // the cluster stays a hole) and would leave room for the L2 table.
  GuestAddress data = drv.buffer(64 << 10, 0x3c);
  ASSERT_EQ(drv.write(0, data, 64 << 10), VIRTIO_BLK_S_OK) << "the data cluster fits";
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR) << "the L2 table does not: the flush must fail";
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);

  // Space comes back and the driver resets: the retried metadata write and the flush succeed,
  // and the image is consistent.
  ASSERT_EQ(::unlink(fs.file("filler").c_str()), 0);
  drv.reset();
  drv.activate();
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_OK);
  GuestAddress back = drv.buffer(4096);
  ASSERT_EQ(drv.read(0, back, 4096), VIRTIO_BLK_S_OK);
  EXPECT_EQ(drv.bytes(back, 4096)[4095], std::byte{0x3c});
  drv.dev.reset();
  std::string cmd = "qemu-img check -q -f qcow2 '" + path + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(RealFaultTest, Qcow2FailedFsyncFailsEveryLaterFlushUntilReopened) {
  Mount fs(4 << 20);
  ASSERT_TRUE(fs.ok()) << fs.error();
  make_sparse(fs.file("backing"), 128 << 20);
  LoopDevice loop(fs.file("backing"));
  ASSERT_TRUE(loop.ok()) << loop.error();
  std::string mkfs =
      "mkfs.ext4 -q -F -O ^has_journal -E lazy_itable_init=1,nodiscard " + loop.path() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(mkfs.c_str()), 0) << mkfs;
  Mount ext4(loop.path(), "ext4", "");
  ASSERT_TRUE(ext4.ok()) << ext4.error();
  std::string path = ext4.file("disk.qcow2");
  ASSERT_TRUE(qcow2::create_image(path, {.size = 64 << 20}).has_value());
  DiskOptions o;
  o.path = path;
  o.format = DiskFormat::kQcow2;
  auto img = qcow2::open_chain(o);
  ASSERT_TRUE(img.has_value()) << img.error().what;
  auto engine = make_io_engine(EngineKind::kIoUring, nullptr);
  ASSERT_TRUE(engine.has_value());
  auto q = std::make_unique<Qcow2Backend>(std::move(*engine), std::move(*img));
  Qcow2Backend* qcow = q.get();
  drv.start(std::move(q));
  ext4.detach();  // the open image keeps ext4 alive; nothing is left behind

  // 8 MiB of allocating writes sit in the page cache; writeback then hits the full tmpfs.
  GuestAddress data = drv.buffer(kChunk, 0x6d);
  for (uint32_t i = 0; i < 32; ++i) ASSERT_EQ(drv.write(i * (kChunk / 512), data, kChunk), VIRTIO_BLK_S_OK) << i;
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);
  EXPECT_TRUE(qcow->image().sync_failed());
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);
  // Unlike raw, a device reset does not help: the image's cached tables believe they are on
  // disk, so only reopening the image (restarting microvm) can make flushes honest again.
  drv.reset();
  drv.activate();
  EXPECT_EQ(drv.flush(), VIRTIO_BLK_S_IOERR);
}

}  // namespace
}  // namespace microvm
