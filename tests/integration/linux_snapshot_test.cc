// Snapshot and restore of a real Linux guest. The harness's base snapshot (support/
// linux_snapshot.h) is the boot: the shared kernel with a virtio-blk disk, virtio-rng and the
// serial console, booted to its shell, where it wrote a nonce into tmpfs and (O_DIRECT, synced)
// into vda, then paused, snapshotted and SIGKILLed. Here it is restored: the guest answers on
// the serial console, still holds its tmpfs file, reads the disk data written before the
// snapshot, writes after it, and its clock went on from where it stopped. Then two clones of
// the same snapshot run at once, each with its own disk, and none sees another's writes.
#include "support/linux_snapshot.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

void require_guest() {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  ASSERT_FALSE(guest_cmdline().empty()) << "guest kernel command line missing: " << guest_dir() << "/cmdline";
  ASSERT_EQ(access(guest_kernel().c_str(), R_OK), 0) << "guest kernel missing: " << guest_kernel();
}

// What a restored guest prints about itself; `tag` tells clones apart.
std::string probe_script(const std::string& tag) {
  return "echo \"answer=$((6*7))\"\n"
         "echo \"tmpfs_nonce=$(cat /tmp/base-nonce)\"\n"
         "echo \"disk_before=$(dd if=/dev/vda bs=512 skip=2040 count=1 iflag=direct 2>/dev/null | head -c 29)\"\n"
         "printf 'written-after-restore-" +
         tag +
         "' | dd of=/dev/vda bs=512 seek=2050 count=1 conv=sync "
         "oflag=direct 2>/dev/null; echo \"write_rc=$?\"\n"
         "sync\n"
         "echo " +
         tag +
         " > /tmp/clone-tag; sleep 2\n"
         "echo \"tmpfs_tag=$(cat /tmp/clone-tag)\"\n"
         "echo \"disk_after=$(dd if=/dev/vda bs=512 skip=2050 count=1 iflag=direct 2>/dev/null | head -c " +
         std::to_string(std::string("written-after-restore-" + tag).size()) +
         ")\"\n"
         "echo \"uptime_base=$(cut -d' ' -f1 /tmp/base-uptime) uptime_now=$(cut -d' ' -f1 /proc/uptime)\"\n"
         "echo \"rng=$(head -c 16 /dev/hwrng | wc -c)\"\n"
         "echo \"clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\"\n";
}

std::string value_of(const VmRunResult& r, const std::string& key) {
  auto lines = r.lines_with_prefix(key + "=");
  return lines.empty() ? "<missing>" : lines.back().substr(key.size() + 1);
}

// Checks one restored run of probe_script(tag) whose vda was `disk`.
void check_restored(const LinuxRun& lr, const LinuxBase& base, const std::string& tag, const std::string& disk) {
  const auto& r = lr.run;
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(lr.userspace_ready) << r.describe();
  ASSERT_EQ(lr.test_exit, 0) << r.describe();
  // The restore did not boot: no kernel banner, no /init start.
  EXPECT_EQ(r.out.find("Linux version"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("microvm-guest: userspace ready\n"), std::string::npos) << r.describe();
  EXPECT_EQ(value_of(r, "answer"), "42") << r.describe();
  EXPECT_EQ(value_of(r, "tmpfs_nonce"), base.nonce) << r.describe();
  EXPECT_EQ(value_of(r, "disk_before"), "base-written-" + base.nonce) << r.describe();
  EXPECT_EQ(value_of(r, "write_rc"), "0") << r.describe();
  EXPECT_EQ(value_of(r, "tmpfs_tag"), tag) << r.describe();
  EXPECT_EQ(value_of(r, "disk_after"), "written-after-restore-" + tag) << r.describe();
  EXPECT_EQ(value_of(r, "rng"), "16") << r.describe();
  EXPECT_EQ(value_of(r, "clocksource"), "kvm-clock") << "the harness's base boots with clocksource=kvm-clock";
  // The guest's clock went on from the snapshot: later than then, and not by the host's
  // wall time in between (kvmclock was frozen at the pause).
  auto up = r.lines_with_prefix("uptime_base=");
  ASSERT_FALSE(up.empty()) << r.describe();
  double before = 0, now = 0;
  ASSERT_EQ(std::sscanf(up.back().c_str(), "uptime_base=%lf uptime_now=%lf", &before, &now), 2) << up.back();
  EXPECT_GT(now, before) << up.back();
  EXPECT_LT(now - before, 600 + r.seconds) << up.back();
  // What the guest wrote is in its own image, after the data from before the snapshot.
  std::string img = read_text_file(disk);
  ASSERT_EQ(img.size(), 4u << 20) << disk;
  EXPECT_EQ(img.substr(2040 * 512, 29), "base-written-" + base.nonce);
  std::string want = "written-after-restore-" + tag;
  EXPECT_EQ(img.substr(2050 * 512, want.size()), want);
}

TEST(LinuxSnapshot, RestoredGuestAnswersKeepsTmpfsAndDiskAndTwoClonesRunApart) {
  require_guest();
  auto base = linux_base_snapshot();
  ASSERT_TRUE(base) << base.error().what;
  if (base->boot_seconds > 0) std::fprintf(stderr, "base booted and snapshotted in %.1f s\n", base->boot_seconds);

  // One restore on its own, then two clones of the same snapshot at once (two processes
  // mapping one memory file), each with its own copy of the disks.
  TempDir dir_s, dir_a, dir_b;
  Result<LinuxRun> single = fail("not run"), a = fail("not run"), b = fail("not run");
  auto restore = [](const TempDir& dir, const char* tag, Result<LinuxRun>& out) {
    out = run_linux_script_restored(dir, {.script = probe_script(tag), .timeout = std::chrono::minutes(10)});
  };
  restore(dir_s, "single", single);
  ASSERT_TRUE(single) << single.error().what;
  check_restored(*single, *base, "single", restored_slot_copy(dir_s, 0));
  std::fprintf(stderr, "restore + script + power-off: %.1f s\n", single->run.seconds);
  std::thread ta(restore, std::cref(dir_a), "clone-a", std::ref(a));
  std::thread tb(restore, std::cref(dir_b), "clone-b", std::ref(b));
  ta.join();
  tb.join();
  ASSERT_TRUE(a) << a.error().what;
  ASSERT_TRUE(b) << b.error().what;
  check_restored(*a, *base, "clone-a", restored_slot_copy(dir_a, 0));
  check_restored(*b, *base, "clone-b", restored_slot_copy(dir_b, 0));
  std::fprintf(stderr, "two clones at once: %.1f s, %.1f s\n", a->run.seconds, b->run.seconds);
  // Neither clone's writes reached the other (nor the base's image).
  EXPECT_EQ(a->run.out.find("clone-b"), std::string::npos) << a->run.describe();
  EXPECT_EQ(b->run.out.find("clone-a"), std::string::npos) << b->run.describe();
  EXPECT_EQ(single->run.out.find("clone-"), std::string::npos) << single->run.describe();
  std::string base_img = read_text_file(base->slots[0].file);
  EXPECT_EQ(base_img.find("written-after-restore"), std::string::npos);
}

}  // namespace
}  // namespace microvm::testing
