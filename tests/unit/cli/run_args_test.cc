#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "cli/run_command.h"

namespace microvm {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

Result<RunOptions> parse(std::vector<std::string> args) {
  std::vector<const char*> argv{"run"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_run_args(static_cast<int>(argv.size()), argv.data());
}

RunOptions ok(std::vector<std::string> args) {
  auto r = parse(args);
  EXPECT_TRUE(r) << r.error().what;
  return r ? *r : RunOptions{};
}

void bad(std::vector<std::string> args, const std::string& needle) {
  auto r = parse(args);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EINVAL);  // a usage error, not help
  EXPECT_NE(r.error().what.find(needle), std::string::npos) << r.error().what;
}

TEST(RunArgs, KernelIsRequired) {
  bad({}, "--kernel is required");
  bad({"--memory", "1G"}, "--kernel");
}

TEST(RunArgs, DiskWithoutKernelBootsFromTheDisk) {
  auto o = ok({"--disk", "a.qcow2,format=qcow2", "--disk", "b.raw,format=raw", "--append", "quiet x=1"});
  EXPECT_TRUE(o.boot_from_disk);
  EXPECT_FALSE(o.print_boot);
  EXPECT_FALSE(o.cmdline_given);
  EXPECT_EQ(o.append, "quiet x=1");
  o = ok({"--disk", "a.raw,format=raw", "--print-boot", "-c", "root=/dev/vda1"});
  EXPECT_TRUE(o.print_boot);
  EXPECT_TRUE(o.cmdline_given);
  EXPECT_EQ(o.vm.cmdline, "root=/dev/vda1");
  // With --kernel, --append extends the command line at once.
  o = ok({"--kernel", "vmlinux", "--disk", "a.raw,format=raw", "--append", "x=1"});
  EXPECT_FALSE(o.boot_from_disk);
  EXPECT_EQ(o.vm.cmdline, VmConfig{}.cmdline + " x=1");
  bad({"--kernel", "vmlinux", "--print-boot"}, "--print-boot needs a --disk");
  bad({"--disk", "a.raw,format=raw", "--initrd", "i.cpio"}, "--initrd needs --kernel");
}

TEST(RunArgs, FirmwareIsRefusedAndCloudInitIsParsed) {
  bad({"--kernel", "vmlinux", "--firmware", "CLOUDHV.fd"}, "--firmware is not supported");
  bad({"--disk", "a.raw,format=raw", "--firmware", "x"}, "boots Linux directly");
  bad({"--firmware", "OVMF.fd"}, "--firmware is not supported");  // said first, not "--kernel is required"
  auto o = ok({"--disk", "a.raw,format=raw", "--cloud-init", "hostname=vm1"});
  ASSERT_EQ(o.cloud_init.size(), 2u);
  EXPECT_EQ(o.cloud_init[0].name, "meta-data");
  EXPECT_NE(o.cloud_init[0].data.find("local-hostname: vm1"), std::string::npos);
  EXPECT_EQ(o.vm.disks.size(), 1u);  // the seed disk is added at start-up, not while parsing
  bad({"--disk", "a.raw,format=raw", "--cloud-init", "user-data=/nonexistent/u"},
      "--cloud-init: user-data=/nonexistent/u");
  bad({"--disk", "a.raw,format=raw", "--cloud-init", "hostname=h", "--api-sock", "/tmp/s"}, "not with --api-sock");
}

TEST(RunArgs, Defaults) {
  auto o = ok({"--kernel", "vmlinux"});
  VmConfig defaults;
  EXPECT_EQ(o.vm.kernel_path, "vmlinux");
  EXPECT_EQ(o.vm.initrd_path, "");
  EXPECT_EQ(o.vm.cmdline, defaults.cmdline);
  EXPECT_EQ(o.vm.cpus, 1u);
  EXPECT_EQ(o.vm.memory_bytes, 512 * kMiB);
  EXPECT_FALSE(o.vm.hugepages);
  EXPECT_EQ(o.vm.cpu, "host");
  EXPECT_EQ(o.vm.transport, Transport::kPci);
  EXPECT_TRUE(o.vm.disks.empty());
  EXPECT_TRUE(o.vm.rng);
  EXPECT_EQ(o.vm.log_level, LogLevel::kWarn);
  EXPECT_FALSE(o.boot_timer);
}

TEST(RunArgs, AllOptions) {
  auto o = ok({"-k",
               "bzImage",
               "-i",
               "initrd.cpio",
               "-c",
               "console=ttyS0 quiet",
               "--cpus",
               "4",
               "-m",
               "2G",
               "--hugepages",
               "--cpu",
               "host,-avx2",
               "--transport",
               "mmio",
               "--no-rng",
               "--boot-timer",
               "--log-level",
               "debug",
               "--disk",
               "a.raw,format=raw",
               "--disk",
               "b.qcow2,format=qcow2,readonly=on"});
  EXPECT_EQ(o.vm.kernel_path, "bzImage");
  EXPECT_EQ(o.vm.initrd_path, "initrd.cpio");
  EXPECT_EQ(o.vm.cmdline, "console=ttyS0 quiet");
  EXPECT_EQ(o.vm.cpus, 4u);
  EXPECT_EQ(o.vm.memory_bytes, 2048 * kMiB);
  EXPECT_TRUE(o.vm.hugepages);
  EXPECT_EQ(o.vm.cpu, "host,-avx2");
  EXPECT_EQ(o.vm.transport, Transport::kMmio);
  EXPECT_FALSE(o.vm.rng);
  EXPECT_TRUE(o.boot_timer);
  EXPECT_EQ(o.vm.log_level, LogLevel::kDebug);
  ASSERT_EQ(o.vm.disks.size(), 2u);
  EXPECT_EQ(o.vm.disks[0].path, "a.raw");
  EXPECT_EQ(o.vm.disks[1].format, DiskFormat::kQcow2);
  EXPECT_TRUE(o.vm.disks[1].read_only);
}

TEST(RunArgs, MemoryIsMiBByDefault) {
  EXPECT_EQ(ok({"--kernel", "k", "--memory", "256"}).vm.memory_bytes, 256 * kMiB);
  EXPECT_EQ(ok({"--kernel", "k", "--memory=1.5G"}).vm.memory_bytes, 1536 * kMiB);
  EXPECT_EQ(ok({"--kernel", "k", "-m", "4096K"}).vm.memory_bytes, 4 * kMiB);
  bad({"--kernel", "k", "--memory", "lots"}, "--memory");
  bad({"--kernel", "k", "--memory", "-1G"}, "negative");
}

TEST(RunArgs, CpusRange) {
  EXPECT_EQ(ok({"--kernel", "k", "--cpus", "1"}).vm.cpus, 1u);
  EXPECT_EQ(ok({"--kernel", "k", "--cpus", "254"}).vm.cpus, 254u);
  bad({"--kernel", "k", "--cpus", "0"}, "--cpus");
  bad({"--kernel", "k", "--cpus", "255"}, "--cpus");
  bad({"--kernel", "k", "--cpus", "-1"}, "--cpus");
  bad({"--kernel", "k", "--cpus", "two"}, "--cpus");
}

TEST(RunArgs, Transport) {
  EXPECT_EQ(ok({"--kernel", "k", "--transport", "pci"}).vm.transport, Transport::kPci);
  EXPECT_EQ(ok({"--kernel", "k", "--transport", "mmio"}).vm.transport, Transport::kMmio);
  bad({"--kernel", "k", "--transport", "isa"}, "--transport");
}

TEST(RunArgs, LogLevels) {
  EXPECT_EQ(ok({"--kernel", "k", "--log-level", "error"}).vm.log_level, LogLevel::kError);
  EXPECT_EQ(ok({"--kernel", "k", "--log-level", "info"}).vm.log_level, LogLevel::kInfo);
  bad({"--kernel", "k", "--log-level", "loud"}, "--log-level");
}

TEST(RunArgs, UnknownOptionAndExtraArgument) {
  bad({"--kernel", "k", "--frobnicate"}, "frobnicate");
  bad({"--kernel", "k", "stray"}, "stray");
  bad({"--kernel"}, "--kernel");  // value missing
}

TEST(RunArgs, DiskErrorsCarryTheSpec) {
  bad({"--kernel", "k", "--disk", "a.raw"}, "--disk a.raw: ");
  bad({"--kernel", "k", "--disk", "a.raw"}, "format= is required");
  bad({"--kernel", "k", "--disk", "a.raw,format=vmdk"}, "unknown disk format 'vmdk'");
  bad({"--kernel", "k", "--disk", ",format=raw"}, "path is empty");
  bad({"--kernel", "k", "--disk", "ok.raw,format=raw", "--disk", "x,format=raw,foo=1"}, "--disk x,format=raw,foo=1");
}

TEST(RunArgs, HelpReturnsCodeZeroWithText) {
  for (const char* flag : {"--help", "-h"}) {
    auto r = parse({flag});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, 0) << flag;
    EXPECT_NE(r.error().what.find("--kernel"), std::string::npos);
    EXPECT_NE(r.error().what.find("--disk"), std::string::npos);
    EXPECT_NE(r.error().what.find("Exit codes"), std::string::npos);
  }
  // Help wins even when required options are missing or others are given.
  auto r = parse({"--memory", "1G", "--help"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 0);
}

TEST(DiskArg, FullSpec) {
  auto d = parse_disk_arg(
      "/img/a.qcow2,format=qcow2,readonly=on,cache=none,serial=vol1,backing=/img/base.raw,backing_format=raw,"
      "image_backing=on,engine=sync");
  ASSERT_TRUE(d) << d.error().what;
  EXPECT_EQ(d->path, "/img/a.qcow2");
  EXPECT_EQ(d->format, DiskFormat::kQcow2);
  EXPECT_TRUE(d->read_only);
  EXPECT_EQ(d->cache, CacheMode::kNone);
  EXPECT_EQ(d->serial, "vol1");
  EXPECT_EQ(d->backing, "/img/base.raw");
  EXPECT_EQ(d->backing_format, DiskFormat::kRaw);
  EXPECT_TRUE(d->trust_image_backing);
  EXPECT_EQ(d->engine, EngineKind::kSync);
}

TEST(DiskArg, Defaults) {
  auto d = parse_disk_arg("disk.img,format=raw");
  ASSERT_TRUE(d) << d.error().what;
  DiskConfig defaults;
  EXPECT_EQ(d->path, "disk.img");
  EXPECT_EQ(d->format, DiskFormat::kRaw);
  EXPECT_FALSE(d->read_only);
  EXPECT_EQ(d->cache, defaults.cache);
  EXPECT_EQ(d->serial, "");
  EXPECT_EQ(d->backing, "");
  EXPECT_EQ(d->backing_format, std::nullopt);
  EXPECT_FALSE(d->trust_image_backing);
  EXPECT_EQ(d->engine, EngineKind::kAuto);
  EXPECT_EQ(d->queues, 1u);
  EXPECT_EQ(parse_disk_arg("d,format=raw,engine=io_uring")->engine, EngineKind::kIoUring);
}

TEST(DiskArg, Errors) {
  auto expect_err = [](const std::string& spec, const char* needle) {
    auto d = parse_disk_arg(spec);
    ASSERT_FALSE(d) << spec;
    EXPECT_EQ(d.error().code, EINVAL);
    EXPECT_NE(d.error().what.find("--disk " + spec), std::string::npos) << d.error().what;
    EXPECT_NE(d.error().what.find(needle), std::string::npos) << d.error().what;
  };
  expect_err("", "path is empty");
  expect_err("a.raw,format=raw,readonly=maybe", "expected on or off");
  expect_err("a.raw,format=raw,cache=unsafe", "cache=unsafe");
  expect_err("a.raw,format=raw,serial=123456789012345678901", "at most 20 bytes");
  expect_err("a.raw,format=raw,backing=b", "only qcow2");
  expect_err("a,b.raw,format=raw", "expected key=value");
  expect_err("a.raw,format=raw,engine=posix", "engine=posix");
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST(RunArgs, ShutdownTimeoutAndPvpanic) {
  auto d = ok({"--kernel", "k"});
  EXPECT_EQ(d.shutdown_timeout_s, 0u);  // SIGTERM stops at once unless asked
  EXPECT_FALSE(d.vm.pvpanic);           // guest-visible device: off unless asked
  auto o = ok({"--kernel", "k", "--shutdown-timeout", "30", "--pvpanic"});
  EXPECT_EQ(o.shutdown_timeout_s, 30u);
  EXPECT_TRUE(o.vm.pvpanic);
  bad({"--kernel", "k", "--shutdown-timeout", "-1"}, "--shutdown-timeout");
  bad({"--kernel", "k", "--shutdown-timeout", "x"}, "--shutdown-timeout");
  bad({"--kernel", "k", "--shutdown-timeout", "86401"}, "--shutdown-timeout");
}

TEST(RunArgs, RateLimitsReachTheConfig) {
  auto o = ok({"--kernel", "k", "--disk", "d.raw,format=raw,iops=200,bps=1M", "--net", "user,pps=500", "--rng",
               "bps=4K,bps_burst=8K"});
  ASSERT_EQ(o.vm.disks.size(), 1u);
  EXPECT_EQ(o.vm.disks[0].rate_limit.ops.per_second, 200u);
  EXPECT_EQ(o.vm.disks[0].rate_limit.bytes.per_second, 1u << 20);
  ASSERT_EQ(o.vm.nets.size(), 1u);
  EXPECT_EQ(o.vm.nets[0].rate_limit.ops.per_second, 500u);
  EXPECT_EQ(o.vm.rng_rate_limit.bytes.per_second, 4096u);
  EXPECT_EQ(o.vm.rng_rate_limit.bytes.burst, 8192u);
  EXPECT_FALSE(ok({"--kernel", "k"}).vm.rng_rate_limit.limited());
  bad({"--kernel", "k", "--rng", "bps=4K", "--no-rng"}, "--no-rng");
  bad({"--kernel", "k", "--rng", "speed=4K"}, "unknown option");
  bad({"--kernel", "k", "--rng", "bps"}, "key=value");
  bad({"--kernel", "k", "--rng", "iops_burst=4"}, "needs iops");
}

TEST(RunArgs, JailOptions) {
  auto o = ok({"--kernel", "k", "--jail", "--uid", "123", "--gid", "456"});
  EXPECT_TRUE(o.jail);
  auto j = jail_options_for(o);
  ASSERT_TRUE(j.has_value()) << j.error().what;
  EXPECT_EQ(j->uid, 123u);
  EXPECT_EQ(j->gid, 456u);
  EXPECT_TRUE(j->new_net_ns);
  EXPECT_FALSE(j->keep_cap_kill);
  EXPECT_TRUE(j->copied_files.empty());
  auto net = ok({"--kernel", "k", "--jail", "--net", "user,max-sockets=1000", "--share", "/tmp,tag=t"});
  auto jn = jail_options_for(net);
  ASSERT_TRUE(jn.has_value());
  EXPECT_FALSE(jn->new_net_ns) << "user networking needs the host's network";
  EXPECT_EQ(jn->copied_files, std::vector<std::string>{"/etc/resolv.conf"});
  EXPECT_TRUE(jn->keep_cap_kill) << "virtiofsd must be stoppable";
  EXPECT_GE(jn->fd_headroom, 1000u) << "slirp's sockets fit under RLIMIT_NOFILE";
  bad({"--kernel", "k", "--jail", "off", "--uid", "1"}, "--jail on");
  bad({"--kernel", "k", "--jail", "maybe"}, "--jail");
}

TEST(RunArgs, JailIsOnByDefaultForRootOnly) {
  EXPECT_EQ(ok({"--kernel", "k"}).jail, ::geteuid() == 0);
  EXPECT_TRUE(ok({"--kernel", "k", "--jail"}).jail) << "a bare --jail means on";
  EXPECT_TRUE(ok({"--kernel", "k", "--jail", "on"}).jail);
  EXPECT_FALSE(ok({"--kernel", "k", "--jail", "off"}).jail);
  EXPECT_FALSE(ok({"--jail", "off", "--kernel", "k"}).jail) << "the value is not taken for the next option";
  EXPECT_EQ(ok({"--api-sock", "/tmp/x.sock"}).jail, ::geteuid() == 0) << "with the API too (snapshots: --snapshot-dir)";
  EXPECT_FALSE(ok({"--api-sock", "/tmp/x.sock", "--jail", "off"}).jail);
  EXPECT_TRUE(ok({"--api-sock", "/tmp/x.sock", "--jail", "on"}).jail);
}

TEST(RunArgs, JailWithTheApiIsFittedOnceTheDevicesAreKnown) {
  // Configured through the API: the devices come with InstanceStart.
  auto api = ok({"--jail", "on", "--api-sock", "/tmp/x.sock"});
  auto j = jail_options_for(api);
  ASSERT_TRUE(j.has_value()) << j.error().what;
  EXPECT_FALSE(j->new_net_ns) << "not before the network interfaces are known";
  EXPECT_FALSE(j->new_net_ns_at_lock_down);
  VmConfig none;
  JailOptions fitted = *j;
  jail_fit_to_vm(fitted, none);
  EXPECT_TRUE(fitted.new_net_ns_at_lock_down) << "no --net: an empty network namespace at lock-down";
  VmConfig user;
  user.nets.push_back(NetConfig{.user = true});
  JailOptions with_net = *j;
  jail_fit_to_vm(with_net, user);
  EXPECT_FALSE(with_net.new_net_ns_at_lock_down);
  EXPECT_EQ(with_net.copied_files, std::vector<std::string>{"/etc/resolv.conf"});
  // With --kernel the command line says it all, as without the API.
  auto k = jail_options_for(ok({"--jail", "on", "--api-sock", "/tmp/x.sock", "--kernel", "k"}));
  ASSERT_TRUE(k.has_value());
  EXPECT_TRUE(k->new_net_ns);
  // A vsock socket's directory is bound into the jail; a relative path is made absolute first.
  auto v = ok({"--kernel", "k", "--jail", "on", "--vsock", "cid=3,socket=rel/v.sock"});
  absolute_vsock_path(v.vm);
  ASSERT_TRUE(v.vm.vsock);
  EXPECT_EQ(v.vm.vsock->socket_path.front(), '/');
  auto jv = jail_options_for(v);
  ASSERT_TRUE(jv.has_value());
  ASSERT_EQ(jv->bound_dirs.size(), 1u);
  EXPECT_TRUE(jv->bound_dirs[0].ends_with("/rel")) << jv->bound_dirs[0];
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST(RunArgs, Vsock) {
  auto o = ok({"--kernel", "k", "--vsock", "cid=42,socket=/run/v.sock"});
  ASSERT_TRUE(o.vm.vsock.has_value());
  EXPECT_EQ(o.vm.vsock->guest_cid, 42u);
  EXPECT_EQ(o.vm.vsock->socket_path, "/run/v.sock");
  EXPECT_FALSE(ok({"--kernel", "k"}).vm.vsock.has_value());
  EXPECT_EQ(ok({"--kernel", "k", "--vsock", "socket=/v,cid=4294967294"}).vm.vsock->guest_cid, 4294967294u);
  bad({"--kernel", "k", "--vsock", "cid=2,socket=/v"}, "--vsock cid=2,socket=/v: cid must be");
  bad({"--kernel", "k", "--vsock", "cid=4294967295,socket=/v"}, "cid must be");
  bad({"--kernel", "k", "--vsock", "cid=x,socket=/v"}, "cid must be");
  bad({"--kernel", "k", "--vsock", "cid=3"}, "want cid=N,socket=PATH");
  bad({"--kernel", "k", "--vsock", "socket=/v"}, "want cid=N,socket=PATH");
  bad({"--kernel", "k", "--vsock", "cid=3,socket=/v,foo=1"}, "unknown key 'foo'");
  bad({"--kernel", "k", "--vsock", "cid=3,socket="}, "needs a path");
}

}  // namespace
TEST(RunArgs, SnapshotDirIsCanonicalAndBoundIntoTheJail) {
  char tmpl[] = "/tmp/run-args-snapdir-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto o = ok({"--api-sock", "/tmp/x.sock", "--snapshot-dir", dir + "/./"});
  EXPECT_EQ(o.snapshot_dir, dir) << "made canonical";
  auto j = jail_options_for(o);
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(j->snapshot_dir, dir);
  bad({"--kernel", "k", "--snapshot-dir", dir}, "--api-sock");
  bad({"--api-sock", "/tmp/x.sock", "--snapshot-dir", dir + "/absent"}, "--snapshot-dir");
  bad({"--api-sock", "/tmp/x.sock", "--snapshot-dir", "/etc/hostname"}, "not a directory");
  bad({"--api-sock", "/tmp/x.sock", "--snapshot-dir", "/"}, "cannot be /");
  ::rmdir(dir.c_str());
}

}  // namespace microvm
