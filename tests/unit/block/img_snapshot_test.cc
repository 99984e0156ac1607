// `microvm img snapshot -l` and the snapshot list of `img info` against qemu-img 7.2 on images
// whose snapshots qemu-img made; hostile snapshot tables (truncated, garbage, huge counts) are
// errors, never crashes or reads out of bounds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>

#include "devices/block/image_file.h"
#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/qcow2_snapshot.h"
#include "tests/unit/block/img_run.h"

namespace microvm {
namespace {

using namespace testing_block;

void expect_same(const std::vector<std::string>& args, const std::string& qargs) {
  std::string ours, theirs;
  int rc = img_run(args, &ours);
  int qrc = qemu_img_stdout(qargs, &theirs);
  EXPECT_EQ(rc, qrc) << qargs;
  if (qargs.find("json") == std::string::npos) {
    EXPECT_EQ(ours, theirs) << qargs;
  } else {  // `info`'s keys are in a different order than qemu-img's; the values must agree
    auto o = nlohmann::json::parse(ours, nullptr, false), t = nlohmann::json::parse(theirs, nullptr, false);
    EXPECT_EQ(o, t) << qargs << "\n" << ours << theirs;
  }
}

TEST(ImgSnapshot, ListAndInfoMatchQemuImg) {
  TempDir dir;
  const std::string f = dir.file("s.qcow2"), v2 = dir.file("v2.qcow2"), e = dir.file("e.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + f + " 1M && qemu-img snapshot -c first " + f +
                " && qemu-io -c 'write 0 64k' " + f + " >/dev/null && qemu-img snapshot -c 'second one' " + f +
                " && qemu-img snapshot -c a-rather-long-snapshot-name-over-sixteen " + f +
                " && qemu-img create -q -f qcow2 -o compat=0.10 " + v2 + " 1M && qemu-img snapshot -c old " + v2 +
                " && qemu-img create -q -f qcow2 " + e + " 1M"),
            0);
  for (const std::string& p : {f, v2, e}) {
    expect_same({"snapshot", "-l", p}, "snapshot -l " + p);
    expect_same({"info", p}, "info " + p);
    expect_same({"info", "--output=json", p}, "info --output=json " + p);
  }
  // --backing-chain lists each level's snapshots too.
  const std::string top = dir.file("top.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -b " + f + " -F qcow2 " + top + " && qemu-img snapshot -c t " + top), 0);
  expect_same({"info", "--backing-chain", top}, "info --backing-chain " + top);
  expect_same({"info", "--backing-chain", "--output=json", top}, "info --backing-chain --output=json " + top);
  std::string out;
  ASSERT_EQ(img_run({"snapshot", "-l", f}, &out), 0);
  EXPECT_NE(out.find("second one"), std::string::npos) << out;
}

// qemu-io's verdict on a pattern read ("read -P P OFF LEN"): true when the bytes match.
bool qemu_io_pattern(const std::string& f, int p, uint64_t off, uint64_t len) {
  std::string out;
  int rc = run("qemu-io -r -c 'read -P " + std::to_string(p) + " " + std::to_string(off) + " " + std::to_string(len) +
                   "' " + f + " 2>&1",
               &out);
  return rc == 0 && out.find("Pattern verification failed") == std::string::npos && out.find("read ") == 0;
}

// `qemu-img check` exit status (0: no errors and no leaks).
int qemu_check(const std::string& f) {
  std::string out;
  int rc = run("qemu-img check " + f + " 2>&1", &out);
  if (rc != 0) ADD_FAILURE() << "qemu-img check " << f << ":\n" << out;
  return rc;
}

int our_check(const std::string& f) {
  std::string out;
  int rc = img_run({"check", f}, &out);
  if (rc != 0) ADD_FAILURE() << "microvm img check " << f << ":\n" << out;
  return rc;
}

// Writes `len` bytes of `value` through our Image (what every img command and `run` use).
void our_write(const std::string& f, uint64_t off, uint64_t len, uint8_t value) {
  auto fd = open_regular_or_block(f, O_RDWR);
  ASSERT_TRUE(fd) << fd.error().what;
  auto img = qcow2::Image::open(std::move(*fd), {});
  ASSERT_TRUE(img) << img.error().what;
  std::vector<uint8_t> buf(len, value);
  ASSERT_EQ((*img)->write(off, buf.data(), len), 0);
  ASSERT_EQ((*img)->flush(), 0);
}

TEST(ImgSnapshot, OursAreQemuImgsAndTheirsAreOurs) {
  TempDir dir;
  const std::string f = dir.file("s.qcow2"), a = dir.file("a.qcow2"), b = dir.file("b.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + f + " 4M && qemu-io -c 'write -P 1 0 1M' " + f + " >/dev/null"), 0);
  ASSERT_EQ(img_run({"snapshot", "-c", "one", f}), 0);
  std::string list;
  ASSERT_EQ(qemu_img_stdout("snapshot -l " + f, &list), 0);
  EXPECT_NE(list.find(" one "), std::string::npos) << list;
  EXPECT_EQ(qemu_check(f), 0);
  EXPECT_EQ(our_check(f), 0);
  // qemu writes over our snapshot, then we snapshot again and write (whole and partial
  // clusters, inside and past the shared range) over both snapshots.
  ASSERT_EQ(run("qemu-io -c 'write -P 2 0 512k' " + f + " >/dev/null"), 0);
  EXPECT_EQ(qemu_check(f), 0);
  ASSERT_EQ(img_run({"snapshot", "-c", "two", f}), 0);
  our_write(f, 256 << 10, 64 << 10, 3);
  our_write(f, (768 << 10) + 512, 1024, 4);
  our_write(f, 3 << 20, 4096, 5);
  EXPECT_EQ(qemu_check(f), 0);
  EXPECT_EQ(our_check(f), 0);
  EXPECT_TRUE(qemu_io_pattern(f, 2, 0, 256 << 10));
  EXPECT_TRUE(qemu_io_pattern(f, 3, 256 << 10, 64 << 10));
  EXPECT_TRUE(qemu_io_pattern(f, 4, (768 << 10) + 512, 1024));
  EXPECT_TRUE(qemu_io_pattern(f, 5, 3 << 20, 4096));

  // Applying "one" with qemu-img and with us gives the same disk.
  ASSERT_EQ(run("cp " + f + " " + a + " && cp " + f + " " + b), 0);
  ASSERT_EQ(qemu_img("snapshot -a one " + a), 0);
  ASSERT_EQ(img_run({"snapshot", "-a", "one", b}), 0);
  std::string out;
  EXPECT_EQ(qemu_img("compare " + a + " " + b, &out), 0) << out;
  EXPECT_TRUE(qemu_io_pattern(b, 1, 0, 1 << 20));
  EXPECT_TRUE(qemu_io_pattern(b, 0, 1 << 20, 3 << 20));
  EXPECT_EQ(qemu_check(b), 0);
  EXPECT_EQ(our_check(b), 0);
  // By ID: "2" is "two".
  ASSERT_EQ(img_run({"snapshot", "-a", "2", b}), 0);
  EXPECT_TRUE(qemu_io_pattern(b, 2, 0, 512 << 10));
  EXPECT_TRUE(qemu_io_pattern(b, 1, 512 << 10, 512 << 10));
  EXPECT_EQ(qemu_check(b), 0);

  // Delete frees what only the snapshot used: no leaks, and the file's clusters are reused.
  ASSERT_EQ(img_run({"snapshot", "-d", "one", b}), 0);
  ASSERT_EQ(qemu_img_stdout("snapshot -l " + b, &list), 0);
  EXPECT_EQ(list.find(" one "), std::string::npos) << list;
  EXPECT_NE(list.find(" two "), std::string::npos) << list;
  EXPECT_EQ(qemu_check(b), 0);
  ASSERT_EQ(img_run({"snapshot", "-d", "two", b}), 0);
  EXPECT_EQ(qemu_check(b), 0);
  EXPECT_EQ(our_check(b), 0);
  ASSERT_EQ(qemu_img_stdout("snapshot -l " + b, &list), 0);
  EXPECT_EQ(list, "");
  EXPECT_TRUE(qemu_io_pattern(b, 2, 0, 512 << 10));
  // Without snapshots every cluster is exclusively ours again: in-place writes, COPIED flags set.
  our_write(b, 0, 64 << 10, 6);
  EXPECT_EQ(qemu_check(b), 0);
  EXPECT_TRUE(qemu_io_pattern(b, 6, 0, 64 << 10));
}

TEST(ImgSnapshot, QemuSnapshotsSurviveOurBackendWrites) {
  TempDir dir;
  const std::string f = dir.file("q.qcow2");
  // Compressed clusters, zero clusters and 4 KiB clusters (many L2 tables) in the shared state.
  ASSERT_EQ(run("qemu-img create -q -f qcow2 -o cluster_size=4k " + f +
                " 8M && qemu-io -c 'write -P 1 0 2M' -c "
                "'write -z 2M 64k' -c 'write -c -P 7 4M 64k' " +
                f + " >/dev/null && qemu-img snapshot -c s1 " + f + " && qemu-io -c 'write -P 2 1M 64k' " + f +
                " >/dev/null && qemu-img snapshot -c s2 " + f),
            0);
  {
    auto d = open_disk([&] {
      DiskOptions o;
      o.path = f;
      o.format = DiskFormat::kQcow2;
      return o;
    }());
    ASSERT_TRUE(d) << d.error().what;
    auto p = pattern(96 << 10, 9);
    // Straddles shared and unshared clusters, a compressed cluster and the zero range.
    EXPECT_EQ(do_write(**d, (1 << 20) - 8192, p.data(), p.size()), static_cast<int32_t>(p.size()));
    EXPECT_EQ(do_write(**d, (4 << 20) + 1000, p.data(), 5000), 5000);
    EXPECT_EQ(do_write(**d, (2 << 20) + 512, p.data(), 512), 512);
    EXPECT_EQ(do_write_zeroes(**d, 0, 64 << 10, true), 0);
    EXPECT_EQ(do_discard(**d, 128 << 10, 64 << 10), 0);
    EXPECT_EQ(do_flush(**d), 0);
    std::vector<uint8_t> back(p.size());
    EXPECT_EQ(do_read(**d, (1 << 20) - 8192, back.data(), back.size()), static_cast<int32_t>(back.size()));
    EXPECT_TRUE(back == p);
  }
  EXPECT_EQ(qemu_check(f), 0);
  EXPECT_EQ(our_check(f), 0);
  EXPECT_TRUE(qemu_io_pattern(f, 0, 0, 64 << 10));
  // Each snapshot still reads as it was taken.
  const std::string a = dir.file("a.qcow2");
  ASSERT_EQ(run("cp " + f + " " + a), 0);
  ASSERT_EQ(qemu_img("snapshot -a s1 " + a), 0);
  EXPECT_TRUE(qemu_io_pattern(a, 1, 0, 2 << 20));
  EXPECT_TRUE(qemu_io_pattern(a, 0, 2 << 20, 64 << 10));
  EXPECT_TRUE(qemu_io_pattern(a, 7, 4 << 20, 64 << 10));
  ASSERT_EQ(img_run({"snapshot", "-a", "s2", f}), 0);
  EXPECT_TRUE(qemu_io_pattern(f, 1, 0, 1 << 20));
  EXPECT_TRUE(qemu_io_pattern(f, 2, 1 << 20, 64 << 10));
  EXPECT_TRUE(qemu_io_pattern(f, 7, 4 << 20, 64 << 10));
  EXPECT_EQ(qemu_check(f), 0);
  // Deleting both leaves the current disk, with nothing leaked.
  ASSERT_EQ(img_run({"snapshot", "-d", "s1", f}), 0);
  ASSERT_EQ(img_run({"snapshot", "-d", "s2", f}), 0);
  EXPECT_EQ(qemu_check(f), 0);
  EXPECT_EQ(our_check(f), 0);
  EXPECT_TRUE(qemu_io_pattern(f, 2, 1 << 20, 64 << 10));
}

TEST(ImgSnapshot, ApplyRestoresTheSizeAsQemuImgDoes) {
  TempDir dir;
  const std::string f = dir.file("r.qcow2"), g = dir.file("g.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + f + " 1M && qemu-io -c 'write -P 1 0 1M' " + f + " >/dev/null"), 0);
  ASSERT_EQ(img_run({"snapshot", "-c", "small", f}), 0);
  ASSERT_EQ(img_run({"resize", "-q", f, "300M"}), 0);  // past one L2 table's reach (512 MiB needs 2)
  our_write(f, 200 << 20, 4096, 2);
  ASSERT_EQ(run("cp " + f + " " + g), 0);
  ASSERT_EQ(img_run({"snapshot", "-a", "small", f}), 0);
  ASSERT_EQ(qemu_img("snapshot -a small " + g), 0);
  std::string out;
  EXPECT_EQ(qemu_img("compare -s " + f + " " + g, &out), 0) << out;
  ASSERT_EQ(run("qemu-img info --output=json " + f + " | grep -q '\"virtual-size\": 1048576'"), 0);
  EXPECT_EQ(qemu_check(f), 0);
}

TEST(ImgSnapshot, FailuresChangeNothing) {
  TempDir dir;
  const std::string f = dir.file("s.qcow2"), raw = dir.file("r.raw"), one = dir.file("one.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + f + " 1M && qemu-io -c 'write -P 1 0 64k' " + f +
                " >/dev/null && qemu-img snapshot -c x " + f + " && qemu-img create -q -f raw " + raw +
                " 1M && qemu-img create -q -f qcow2 -o refcount_bits=1 " + one + " 1M"),
            0);
  const auto before = read_file(f);
  EXPECT_EQ(img_run({"snapshot", "-a", "nope", f}), 1);
  EXPECT_EQ(img_run({"snapshot", "-d", "nope", f}), 1);
  EXPECT_EQ(img_run({"snapshot", "-d", "1", f}), 1);  // -d matches names only, as qemu-img 7.2
  EXPECT_EQ(img_run({"snapshot", "-c", "y", raw}), 1);
  EXPECT_EQ(img_run({"snapshot", "-U", "-c", "y", f}), 2);
  EXPECT_EQ(img_run({"snapshot", "-c", f}), 2);
  EXPECT_EQ(img_run({"snapshot", f}), 2);
  EXPECT_EQ(img_run({"snapshot", "-l", "-c", "x", f}), 2);
  EXPECT_EQ(read_file(f), before);
  const auto one_before = read_file(one);
  EXPECT_EQ(img_run({"snapshot", "-c", "y", one}), 1);  // 1-bit refcounts cannot count a second reference
  EXPECT_EQ(read_file(one), one_before);
  // An image another process holds (qemu-io here) is refused, untouched.
  std::string out;
  ASSERT_EQ(run("(qemu-io -c 'sleep 3000' " + f + " >/dev/null 2>&1 &) ; sleep 1"), 0);
  EXPECT_EQ(img_run({"snapshot", "-c", "y", f}), 1);
  EXPECT_EQ(img_run({"snapshot", "-d", "x", f}), 1);
  EXPECT_EQ(read_file(f), before);
  run("sleep 2.5");
}

// Every snapshot operation, made to fail at each point where it grows the file (a file size
// limit: writes past it fail with EFBIG), leaves the image as it was: check clean, the same
// disk, the same snapshot list. Where it succeeds, the result is clean too.
TEST(ImgSnapshot, FailedWritesLeaveTheImageAsItWas) {
  TempDir dir;
  const std::string orig = dir.file("orig.qcow2"), f = dir.file("f.qcow2"), before = dir.file("before.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + orig + " 4M && qemu-io -c 'write -P 1 0 1M' " + orig +
                " >/dev/null && qemu-img snapshot -c s1 " + orig + " && qemu-io -c 'write -P 2 512k 1M' " + orig +
                " >/dev/null && qemu-img snapshot -c s2 " + orig + " && qemu-io -c 'write -P 3 0 64k' " + orig +
                " >/dev/null"),  // two snapshots: deleting one writes a new table
            0);
  const uint64_t orig_size = read_file(orig).size();
  struct Op {
    const char* flag;
    const char* name;
  };
  for (const Op& op : {Op{"-c", "new"}, Op{"-a", "s1"}, Op{"-d", "s1"}}) {
    std::string list_before;
    ASSERT_EQ(qemu_img_stdout("snapshot -l " + orig, &list_before), 0);
    int failures = 0, successes = 0;
    for (uint64_t limit = orig_size; limit <= orig_size + (8 << 16) && successes < 2; limit += 1 << 16) {
      ASSERT_EQ(run("cp " + orig + " " + f), 0);
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit r{limit, limit};
        ::setrlimit(RLIMIT_FSIZE, &r);
        ::_exit(img_run({"snapshot", op.flag, op.name, f}));
      }
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      ASSERT_TRUE(WIFEXITED(status));
      const int rc = WEXITSTATUS(status);
      EXPECT_EQ(qemu_check(f), 0) << op.flag << " limit " << limit;
      if (rc == 0) {
        ++successes;
        continue;
      }
      ++failures;
      EXPECT_EQ(rc, 1);
      std::string out, list;
      EXPECT_EQ(qemu_img("compare " + orig + " " + f, &out), 0) << op.flag << " limit " << limit << out;
      ASSERT_EQ(qemu_img_stdout("snapshot -l " + f, &list), 0);
      EXPECT_EQ(list, list_before) << op.flag << " limit " << limit;
    }
    EXPECT_GT(failures, 0) << op.flag << ": the limit never made the operation fail";
    EXPECT_GT(successes, 0) << op.flag << ": the operation never succeeded";
  }
}

// Sets the header's snapshot count and offset, and writes `table` at `offset`.
void plant_table(const std::string& path, uint32_t count, uint64_t offset, const std::vector<uint8_t>& table) {
  auto img = read_file(path);
  if (!table.empty() && img.size() < offset + table.size()) img.resize(offset + table.size());
  qcow2::put_be32(&img[60], count);
  qcow2::put_be64(&img[64], offset);
  std::copy(table.begin(), table.end(), img.begin() + static_cast<ptrdiff_t>(offset));
  write_file(path, img);
}

TEST(ImgSnapshot, HostileTablesAreErrors) {
  TempDir dir;
  const std::string good = dir.file("good.qcow2"), f = dir.file("f.qcow2");
  ASSERT_EQ(run("qemu-img create -q -f qcow2 " + good + " 1M && qemu-img snapshot -c first " + good +
                " && qemu-img snapshot -c second " + good),
            0);
  const auto img = read_file(good);
  const uint64_t off = qcow2::be64(&img[64]);
  ASSERT_EQ(qcow2::be32(&img[60]), 2u);
  const std::vector<uint8_t> real(img.begin() + static_cast<ptrdiff_t>(off), img.end());

  // The parser on every truncation of a real table, and on random bytes: values or errors.
  for (size_t n = 0; n < std::min<size_t>(real.size(), 256); ++n) {
    auto r = qcow2::parse_snapshot_table(std::span(real.data(), n), 2);
    if (r) {
      EXPECT_EQ(r->size(), 2u);
    }
  }
  std::mt19937 rng(12);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> t(rng() % 300);
    for (auto& b : t) b = static_cast<uint8_t>(rng());
    auto r = qcow2::parse_snapshot_table(t, rng() % 4);
    if (r) {
      for (auto& s : *r) EXPECT_LE(s.id.size() + s.name.size(), t.size());
    }
  }
  EXPECT_FALSE(qcow2::parse_snapshot_table(real, 70000));  // over QEMU's cap

  struct Case {
    const char* what;
    uint32_t count;
    uint64_t offset;
    std::vector<uint8_t> table;
  };
  std::vector<uint8_t> huge_extra(real.begin(), real.begin() + 48);
  qcow2::put_be32(&huge_extra[36], 0xffffffff);
  std::vector<uint8_t> huge_names(real.begin(), real.begin() + 48);
  qcow2::put_be16(&huge_names[12], 0xffff);
  qcow2::put_be16(&huge_names[14], 0xffff);
  const uint64_t end = (img.size() + 65535) & ~uint64_t{65535};  // a cluster past the image
  const std::vector<Case> cases = {
      {"more entries than the table holds", 50, off, {}},
      {"offset past the end of the file", 1, 1ull << 40, {}},
      {"unaligned offset", 1, off + 8, {}},
      {"count over the cap", 0x7fffffff, off, {}},
      {"extra data size of 4 GiB", 1, end, huge_extra},
      {"ID and name of 64 KiB each", 1, end, huge_names},
  };
  for (const auto& c : cases) {
    write_file(f, img);
    plant_table(f, c.count, c.offset, c.table);
    std::string out;
    EXPECT_EQ(img_run({"snapshot", "-l", f}, &out), 1) << c.what;
    EXPECT_EQ(img_run({"info", f}, &out), 1) << c.what;
  }
}

}  // namespace
}  // namespace microvm
