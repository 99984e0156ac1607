#include "tests/integration/support/linux_snapshot.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/fd.h"

namespace microvm::testing {
namespace {

namespace fs = std::filesystem;

// Bump when the base's devices, its setup line or the restore line change: the key must
// change with anything a cached snapshot was made from.
constexpr const char* kBaseLayoutVersion = "base-v1";
constexpr uint64_t kPayloadBytes = 2 << 20;

struct SlotShape {
  const char* format;
  uint64_t bytes;
  bool read_only;
  const char* extra;  // more --disk options
};
constexpr SlotShape kSlots[] = {
    {"raw", 4 << 20, false, ",serial=microvm-disk0"},
    {"raw", 1 << 20, true, ""},
    {"qcow2", 8 << 20, true, ""},
    {"qcow2", 6 << 20, false, ""},
};

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::move(fallback);
}

// Identity of a file for the cache key: size and modification time (content hashing the
// 40 MB kernel on every test start would cost more than it protects against).
std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path + ":missing";
  return path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// The base keeps time with kvm-clock rather than the TSC that the shared command line lets
// it prefer (tsc=reliable). KVM puts kvmclock back exactly (KVM_SET_CLOCK), but the guest TSC
// only where KVM can offset it; some KVMs cannot (the restore warns), and a TSC-clocked guest
// then jumps by the snapshot's age and its watchdogs (RCU stalls) fire.
std::string base_cmdline() { return guest_cmdline() + " clocksource=kvm-clock"; }

std::string cache_key() {
  std::string id = std::string(kBaseLayoutVersion) + "\n" + file_identity(guest_kernel()) + "\n" + base_cmdline() +
                   "\n" + file_identity(microvm_binary()) + "\n" +
                   read_text_file(source_dir() + "/scripts/make-initramfs.sh") + "\n" +
                   file_identity(firmware_path("boot_marker"));
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", fnv1a32(id));
  return hex;
}

std::string slot_file(const std::string& dir, size_t i) {
  return dir + "/slot" + std::to_string(i) + "." + kSlots[i].format;
}

std::string disk_spec(const std::string& path, size_t i) {
  std::string s = path + ",format=" + kSlots[i].format + kSlots[i].extra;
  if (kSlots[i].read_only) s += ",readonly=on";
  return s;
}

// An empty image of a slot's shape.
bool make_slot_image(const std::string& path, const SlotShape& shape) {
  if (std::string(shape.format) == "raw") {
    return shell_line("truncate -s " + std::to_string(shape.bytes) + " '" + path + "' && echo ok") == "ok";
  }
  return shell_line("qemu-img create -q -f qcow2 '" + path + "' " + std::to_string(shape.bytes) + " && echo ok") ==
         "ok";
}

LinuxBase describe_base(const std::string& dir) {
  LinuxBase b;
  b.dir = dir;
  for (size_t i = 0; i < std::size(kSlots); ++i)
    b.slots.push_back({slot_file(dir, i), kSlots[i].format, kSlots[i].bytes, kSlots[i].read_only});
  b.nonce = shell_line("cat '" + dir + "/nonce'");
  return b;
}

// One boot of the base, up to its shell; snapshot; kill. Runs under the cache lock.
Result<void> make_base(const std::string& dir, double* seconds) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create " + dir + ": " + ec.message());
  // The initramfs is made in a TempDir (make_initramfs's interface) and moved next to the snapshot.
  TempDir tmp;
  std::string initrd = TRY(make_initramfs(tmp, {}));
  fs::rename(initrd, dir + "/initramfs.cpio", ec);
  if (ec) fs::copy_file(initrd, dir + "/initramfs.cpio", ec);
  if (ec) return fail("cannot keep the initramfs: " + ec.message());
  std::vector<std::string> args = {"run", "--kernel", guest_kernel(), "--initrd", dir + "/initramfs.cpio", "--cpus",
                                   "2", "--memory", "256M", "--cmdline", base_cmdline(), "--api-sock",
                                   dir + "/api.sock",
                                   // The cache directory is root's: a jailed VMM (nobody) could not write
                                   // the snapshot into it (api_snapshot_test covers --snapshot-dir).
                                   "--jail", "off"};
  for (size_t i = 0; i < std::size(kSlots); ++i) {
    if (!make_slot_image(slot_file(dir, i), kSlots[i])) return fail("cannot create " + slot_file(dir, i));
    args.insert(args.end(), {"--disk", disk_spec(slot_file(dir, i), i)});
  }
  const std::string payload = dir + "/payload.raw";
  if (!make_slot_image(payload, {"raw", kPayloadBytes, true, ""})) return fail("cannot create " + payload);
  args.insert(args.end(), {"--disk", payload + ",format=raw,readonly=on"});

  const std::string nonce = shell_line("head -c 8 /dev/urandom | od -A n -t x1 | tr -d ' \\n'");
  if (nonce.size() != 16) return fail("cannot make a nonce");
  // Echo off first: busybox ash then reads plain lines without line editing, and what a test
  // types after the restore does not come back on the console it parses.
  std::string setup = "stty -echo; echo " + nonce +
                      " > /tmp/base-nonce; cat /proc/uptime > /tmp/base-uptime; "
                      "printf 'base-written-" +
                      nonce +
                      "' | dd of=/dev/vda bs=512 seek=2040 count=1 conv=sync oflag=direct 2>/dev/null; sync; "
                      "echo base-ready-$((40+2))\n";
  std::string snapshot_log;
  bool snapshot_ok = false, ended = false;
  VmRunOptions opts;
  // Inside ctest's 1500 s per Linux test; MICROVM_LINUX_BASE_TIMEOUT_S for an overloaded host.
  opts.timeout = std::chrono::seconds(std::atoi(env_or("MICROVM_LINUX_BASE_TIMEOUT_S", "1380").c_str()));
  opts.interactions = {{"microvm-guest: userspace ready", setup}};
  opts.ended_by_on_output = &ended;
  opts.on_output = [&](const std::string& out) {
    // The marker, then the shell's next prompt: the guest is idle in a read of the console.
    size_t at = out.find("base-ready-42\n");
    if (at == std::string::npos && (at = out.find("base-ready-42\r\n")) == std::string::npos) return false;
    if (out.find("# ", at) == std::string::npos) return false;
    auto r = run_microvm({"snapshot", "--api-sock", dir + "/api.sock", "create", dir, "--keep-paused"},
                         VmRunOptions{.timeout = std::chrono::minutes(5), .retry_on_guest_segfault = false});
    snapshot_ok = r.exit_code == 0;
    snapshot_log = r.describe();
    return true;
  };
  auto r = run_microvm(args, opts);
  std::ofstream(dir + "/boot.log") << r.describe(1 << 20) << "\n--- snapshot ---\n" << snapshot_log;
  *seconds = r.seconds;
  if (!ended) return fail("the base guest never reached its shell (see " + dir + "/boot.log):\n" + r.describe());
  if (!snapshot_ok) return fail("microvm snapshot create failed:\n" + snapshot_log);
  std::ofstream(dir + "/nonce") << nonce << "\n";
  fs::remove(dir + "/api.sock", ec);
  // Written last: a directory without it is a snapshot that was interrupted.
  std::ofstream(dir + "/ready") << "ready\n";
  return {};
}

}  // namespace

Result<LinuxBase> linux_base_snapshot() {
  // A base made earlier, used as it is: lets a developer keep one base across rebuilds (whose
  // new binary would otherwise key a new boot). Restoring an older build's snapshot is itself a
  // supported path; CI starts from an empty build tree and always boots its own.
  if (const char* pinned = std::getenv("MICROVM_LINUX_SNAPSHOT_BASE"); pinned && *pinned) {
    if (!fs::exists(std::string(pinned) + "/ready"))
      return fail(std::string(pinned) + " is not a finished base snapshot");
    LinuxBase b = describe_base(pinned);
    if (b.nonce.size() != 16) return fail(std::string(pinned) + "/nonce is missing or damaged");
    return b;
  }
  const std::string parent = env_or("MICROVM_LINUX_SNAPSHOT_DIR", build_dir() + "/linux-snapshots");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return fail("cannot create " + parent + ": " + ec.message());
  const std::string dir = parent + "/base-" + cache_key();
  // Test binaries may run in parallel (ctest -j): the first makes the base, the others wait.
  Fd lock(::open((parent + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) return fail("cannot open the snapshot cache lock: " + std::string(strerror(errno)));
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) return fail("flock: " + std::string(strerror(errno)));
  double seconds = 0;
  if (!fs::exists(dir + "/ready")) {
    // Bases of older builds are stale for good (their key can only come back with the same
    // binary); each holds a 256 MiB sparse memory file.
    for (const auto& e : fs::directory_iterator(parent, ec))
      if (e.path().filename().string().starts_with("base-") && e.path() != fs::path(dir)) fs::remove_all(e.path(), ec);
    auto made = make_base(dir, &seconds);
    if (!made) return std::unexpected(made.error());
    std::fprintf(stderr, "linux_snapshot: booted the base guest and snapshotted it in %.1f s: %s\n", seconds,
                 dir.c_str());
  }
  LinuxBase b = describe_base(dir);
  b.boot_seconds = seconds;
  if (b.nonce.size() != 16) return fail(dir + "/nonce is missing or damaged");
  return b;
}

std::string restored_slot_copy(const TempDir& dir, size_t slot) {
  return dir.path() + "/slot" + std::to_string(slot) + "." + kSlots[slot < std::size(kSlots) ? slot : 0].format;
}

Result<LinuxRun> run_linux_script_restored(const TempDir& dir, const RestoredLinuxOptions& options) {
  LinuxBase base = TRY(linux_base_snapshot());
  if (options.disks.size() > std::size(kSlots)) return fail("the base has only 4 disk slots");
  std::vector<std::string> args = {"run", "--restore", base.dir, "--clone"};
  for (size_t i = 0; i < std::size(kSlots); ++i) {
    std::string spec = i < options.disks.size() ? options.disks[i] : "";
    if (spec.empty()) {
      std::string copy = restored_slot_copy(dir, i);
      std::error_code ec;
      fs::copy_file(base.slots[i].file, copy, fs::copy_options::overwrite_existing, ec);
      if (ec) return fail("cannot copy " + base.slots[i].file + ": " + ec.message());
      spec = disk_spec(copy, i);
    }
    args.insert(args.end(), {"--disk", spec});
  }
  // The payload: /test.sh and the test's files in a tar the guest unpacks from vde.
  const std::string root = dir.path() + "/payload-root";
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return fail("cannot create " + root);
  std::ofstream(root + "/test.sh") << options.script;
  for (const auto& [host, guest] : options.add) {
    if (guest.empty() || guest[0] != '/') return fail("add: guest path must be absolute: " + guest);
    fs::create_directories(fs::path(root + guest).parent_path(), ec);
    fs::copy_file(host, root + guest, fs::copy_options::overwrite_existing, ec);
    if (ec) return fail("cannot copy " + host + " into the payload: " + ec.message());
  }
  const std::string payload = dir.path() + "/payload.raw";
  if (shell_line("tar --format=ustar --owner=0 --group=0 -cf '" + payload + "' -C '" + root + "' . && echo ok") != "ok")
    return fail("tar of the payload failed");
  if (fs::file_size(payload, ec) > kPayloadBytes) return fail("payload larger than its 2 MiB slot");
  fs::resize_file(payload, kPayloadBytes, ec);
  if (ec) return fail("cannot size the payload: " + ec.message());
  args.insert(args.end(), {"--disk", payload + ",format=raw,readonly=on"});
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());

  // Blocks of the base's disks may sit in the guest's page cache; this guest must read its own.
  const std::string line =
      "echo 'microvm-guest: userspace ready (restored)'; for d in /dev/vd?; do blockdev --flushbufs $d; done; "
      "echo 3 > /proc/sys/vm/drop_caches; tar -xf /dev/vde -C / && sh /test.sh; "
      "echo \"microvm-guest: test exit=$?\"; poweroff -f\n";
  LinuxRun lr;
  lr.run = run_microvm(args, VmRunOptions{.timeout = options.timeout, .stdin_data = line});
  lr.userspace_ready = !lr.run.lines_with_prefix("microvm-guest: userspace ready").empty();
  auto exits = lr.run.lines_with_prefix("microvm-guest: test exit=");
  if (!exits.empty()) lr.test_exit = std::atoi(exits.back().c_str() + std::strlen("microvm-guest: test exit="));
  return lr;
}

}  // namespace microvm::testing
