// `microvm run --jail` with firmware guests (milliseconds each), checked from the host side:
// the jailed VMM (the launcher's child) runs in its own mount, PID, IPC, UTS, cgroup and
// network namespaces, in an empty read-only root, as nobody (or --uid/--gid) with no
// capabilities, no_new_privs and every thread seccomp-filtered, with only the fds it opened
// itself and no environment; and guests with a qcow2 disk, a shared folder and user
// networking still work inside it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

class JailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_KVM();
    ASSERT_EQ(::geteuid(), 0u) << "--jail needs root; this test must run as root";
  }
};

// Starts `microvm run --jail` with a halting guest in the background, with a stray fd (7,
// /etc/hostname) the VMM must not inherit and TMPDIR pointing at `tmp`. Once its child
// runs the event loop, prints what /proc says about that child as "key value" lines, then
// SIGTERMs the launcher and prints "rc <N>" and the scratch directories left in `tmp`.
VmRunResult inspect_jailed_vm(const std::string& extra_args, const std::string& tmp) {
  std::string script =
      "exec 7</etc/hostname\n"
      "TMPDIR=\"$3\" \"$0\" run --jail --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt " +
      extra_args +
      " </dev/null >/dev/null 2>\"$2\" & p=$!\n"
      "exec 7<&-\n"
      "for i in $(seq 200); do c=$(cat /proc/$p/task/$p/children 2>/dev/null | tr -d ' ');"
      " [ -n \"$c\" ] && grep -q vmm-loop /proc/$c/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
      "sleep 0.2\n"
      "echo child $c\n"
      "echo nspid $(awk '/^NSpid:/{print $3}' /proc/$c/status)\n"
      "for k in Uid Gid Groups CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs; do"
      " echo $k $(awk -v k=$k: '$1==k{$1=\"\"; print}' /proc/$c/status); done\n"
      "for t in /proc/$c/task/*; do echo thread $(cat $t/comm | tr ' ' _) $(awk '/^Seccomp:/{print $2}' $t/status); "
      "done\n"
      "for n in mnt pid ipc uts cgroup net; do"
      " [ \"$(readlink /proc/$c/ns/$n)\" = \"$(readlink /proc/self/ns/$n)\" ] && echo ns_$n host || echo ns_$n own; "
      "done\n"
      "echo root_entries $(ls -A /proc/$c/root | wc -l)\n"
      "[ -e /proc/$c/root/etc/passwd ] && echo host_passwd visible || echo host_passwd absent\n"
      "echo root_mount $(awk '$5==\"/\"{print $6}' /proc/$c/mountinfo)\n"
      "for f in /proc/$c/fd/*; do echo fd $(readlink $f); done\n"
      "echo environ_vars $(tr '\\0' '\\n' </proc/$c/environ | grep -c =)\n"
      "echo nofile $(awk '/^Max open files/{print $4}' /proc/$c/limits)\n"
      "echo core $(awk '/^Max core file size/{print $5}' /proc/$c/limits)\n"
      "echo hostname $(nsenter -t $c -u hostname)\n"
      "kill -TERM $p; wait $p; echo rc $?\n"
      "echo leftover $(ls -A \"$3\" | wc -l)\n";
  TempDir dir;
  std::string err_path = dir.path() + "/err";
  VmRunResult r = run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), err_path, tmp},
                              VmRunOptions{.timeout = std::chrono::seconds(30)});
  std::ifstream f(err_path);
  r.err = std::string(std::istreambuf_iterator<char>(f), {});
  return r;
}

// "key value..." lines; repeated keys ("thread", "fd") are joined with '|'.
std::map<std::string, std::string> parse(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    size_t sp = line.find(' ');
    std::string key = line.substr(0, sp);
    std::string value = sp == std::string::npos ? "" : line.substr(sp + 1);
    m[key] = m.count(key) ? m[key] + "|" + value : value;
  }
  return m;
}

TEST_F(JailTest, TheRunningVmmIsConfinedAndSeesOnlyItsOwnFiles) {
  TempDir tmp;
  VmRunResult r = inspect_jailed_vm("", tmp.path());
  ASSERT_FALSE(r.timed_out) << r.describe();
  auto m = parse(r.out);
  ASSERT_FALSE(m["child"].empty()) << "no jailed child found\n" << r.describe();
  EXPECT_EQ(m["nspid"], "1") << "the VMM must be pid 1 of its own PID namespace\n" << r.describe();
  EXPECT_EQ(m["Uid"], "65534 65534 65534 65534") << r.describe();
  EXPECT_EQ(m["Gid"], "65534 65534 65534 65534") << r.describe();
  EXPECT_EQ(m["Groups"], "") << r.describe();
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(m[cap], "0000000000000000") << cap << "\n" << r.describe();
  EXPECT_EQ(m["NoNewPrivs"], "1") << r.describe();
  // Every thread filtered (seccomp mode 2), the event loop and the vCPU among them.
  EXPECT_NE(m["thread"].find("vmm-loop 2"), std::string::npos) << r.describe();
  EXPECT_NE(m["thread"].find("vcpu0 2"), std::string::npos) << r.describe();
  std::istringstream threads(m["thread"]);
  for (std::string t; std::getline(threads, t, '|');) EXPECT_TRUE(t.ends_with(" 2")) << "unfiltered: " << t;
  for (const char* ns : {"ns_mnt", "ns_pid", "ns_ipc", "ns_uts", "ns_cgroup", "ns_net"})
    EXPECT_EQ(m[ns], "own") << ns << "\n" << r.describe();
  // Its root is an empty read-only tmpfs: no host file can be opened by path.
  EXPECT_EQ(m["root_entries"], "0") << r.describe();
  EXPECT_EQ(m["host_passwd"], "absent") << r.describe();
  EXPECT_TRUE(m["root_mount"].starts_with("ro,")) << r.describe();
  // Only what setup opened: not the stray fd 7 it was started with.
  EXPECT_EQ(m["fd"].find("/etc/hostname"), std::string::npos) << r.describe();
  EXPECT_NE(m["fd"].find("kvm-vm"), std::string::npos) << r.describe();
  EXPECT_NE(m["fd"].find("memfd:microvm-guest-ram"), std::string::npos) << r.describe();
  EXPECT_EQ(m["environ_vars"], "0") << "the environment must be wiped\n" << r.describe();
  EXPECT_EQ(m["nofile"], "2048") << r.describe();
  EXPECT_EQ(m["core"], "0") << r.describe();
  EXPECT_EQ(m["hostname"], "microvm") << r.describe();
  // SIGTERM to the launcher reaches the VMM (exit 5, as without the jail), and the scratch
  // directory is gone.
  EXPECT_EQ(m["rc"], "5") << r.describe();
  EXPECT_EQ(m["leftover"], "0") << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
}

TEST_F(JailTest, UidAndGidOptionsAndTheHostNetworkForUserNetworking) {
  TempDir tmp;
  VmRunResult r = inspect_jailed_vm("--uid 4242 --gid 4343 --net user", tmp.path());
  ASSERT_FALSE(r.timed_out) << r.describe();
  auto m = parse(r.out);
  EXPECT_EQ(m["Uid"], "4242 4242 4242 4242") << r.describe();
  EXPECT_EQ(m["Gid"], "4343 4343 4343 4343") << r.describe();
  EXPECT_EQ(m["CapEff"], "0000000000000000") << r.describe();
  // User networking needs the host's network; the other namespaces stay private.
  EXPECT_EQ(m["ns_net"], "host") << r.describe();
  EXPECT_EQ(m["ns_mnt"], "own") << r.describe();
  // libslirp's DNS forwarder reads resolv.conf: the only file in the jail.
  EXPECT_EQ(m["root_entries"], "1") << r.describe();
  EXPECT_EQ(m["rc"], "5") << r.describe();
}

// A guest using a qcow2 disk, a virtio-fs share (virtiofsd started before the jail closes,
// stopped at tear-down through the one capability kept, CAP_KILL) and user networking.
TEST_F(JailTest, DiskShareAndUserNetworkingWorkInsideTheJail) {
  TempDir dir;
  std::string qcow2 = dir.path() + "/disk.qcow2";
  ASSERT_EQ(std::system(("qemu-img create -q -f qcow2 " + qcow2 + " 16M").c_str()), 0);
  std::string share = dir.path() + "/share";
  ASSERT_EQ(std::system(("mkdir -p " + share + " " + dir.path() + "/tmp").c_str()), 0);
  ASSERT_EQ(::setenv("TMPDIR", (dir.path() + "/tmp").c_str(), 1), 0);
  VmRunResult r = run_microvm({"run", "--jail", "--kernel", firmware_path("virtio_blk_driver"), "--memory", "64M",
                               "--disk", qcow2 + ",format=qcow2", "--share", share + ",tag=s", "--net", "user"},
                              VmRunOptions{.timeout = std::chrono::seconds(90)});
  ::unsetenv("TMPDIR");
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK done failures=0").size(), 1u) << r.describe();
  EXPECT_EQ(r.err.find("forbidden system call"), std::string::npos) << r.describe();
  EXPECT_EQ(std::system(("qemu-img check -q " + qcow2).c_str()), 0) << r.describe();
  EXPECT_EQ(shell_line("ls -A " + dir.path() + "/tmp | wc -l"), "0") << "scratch directory left behind";
}

// virtiofsd starts before the jail closes (as root: it needs that to sandbox itself) and ends
// up inside the VMM's PID namespace. Under us it must still sandbox itself: some virtiofsd
// process below the VMM runs seccomp-filtered, in a mount namespace of its own, with the
// shared folder as its root.
TEST_F(JailTest, VirtiofsdStillSandboxesItselfInsideTheJail) {
  TempDir dir;
  std::string share = dir.path() + "/share";
  ASSERT_EQ(std::system(("mkdir -p " + share + " " + dir.path() + "/tmp && touch " + share + "/marker").c_str()), 0);
  std::string script =
      "TMPDIR=\"$3\" \"$0\" run --jail --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt --share \"$2\",tag=s"
      " </dev/null >/dev/null 2>&1 & p=$!\n"
      "for i in $(seq 200); do c=$(cat /proc/$p/task/$p/children 2>/dev/null | tr -d ' ');"
      " [ -n \"$c\" ] && grep -q vmm-loop /proc/$c/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
      "sleep 0.3\n"
      "walk() { for k in $(cat /proc/$1/task/*/children 2>/dev/null); do echo $k; walk $k; done; }\n"
      "for v in $(walk $c); do [ \"$(cat /proc/$v/comm)\" = virtiofsd ] || continue;"
      " echo \"virtiofsd seccomp=$(awk '/^Seccomp:/{print $2}' /proc/$v/status)"
      " own_mnt=$([ \"$(readlink /proc/$v/ns/mnt)\" != \"$(readlink /proc/$c/ns/mnt)\" ] && echo 1 || echo 0)"
      " pid_levels=$(awk '/^NSpid:/{print NF-1}' /proc/$v/status)"
      " root=$(ls -A /proc/$v/root | tr '\\n' ' ')\"; done\n"
      "kill -TERM $p; wait $p; echo rc $?\n";
  VmRunResult r =
      run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), share, dir.path() + "/tmp"},
                  VmRunOptions{.timeout = std::chrono::seconds(30)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.out.find("virtiofsd seccomp=2 own_mnt=1"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("root=marker "), std::string::npos) << "the sandboxed virtiofsd sees only the folder\n"
                                                           << r.describe();
  // NSpid lists the pid in every namespace from the host's down: 1 level would be the host's only.
  EXPECT_NE(r.out.find("pid_levels="), std::string::npos) << r.describe();
  EXPECT_EQ(r.out.find("pid_levels=1 "), std::string::npos) << "virtiofsd outside the jail's PID namespace\n"
                                                            << r.describe();
  EXPECT_NE(r.out.find("rc 5"), std::string::npos) << "tear-down must stop virtiofsd\n" << r.describe();
}

// Without --jail, as root: jailed all the same (the default).
TEST_F(JailTest, OnByDefaultForRoot) {
  TempDir tmp;
  std::string script =
      "TMPDIR=\"$2\" \"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt </dev/null >/dev/null 2>&1 "
      "& p=$!\n"
      "for i in $(seq 200); do c=$(cat /proc/$p/task/$p/children 2>/dev/null | tr -d ' ');"
      " [ -n \"$c\" ] && grep -q vmm-loop /proc/$c/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
      "echo nspid $(awk '/^NSpid:/{print $3}' /proc/$c/status)\n"
      "echo uid $(awk '/^Uid:/{print $2}' /proc/$c/status)\n"
      "echo root_entries $(ls -A /proc/$c/root | wc -l)\n"
      "kill -TERM $p; wait $p; echo rc $?\n"
      // --jail off: no launcher, no child.
      "\"$0\" run --jail off --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt </dev/null >/dev/null 2>&1 & "
      "p=$!\n"
      "for i in $(seq 200); do grep -q vmm-loop /proc/$p/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
      "echo off_children $(cat /proc/$p/task/$p/children | wc -w)\n"
      "echo off_uid $(awk '/^Uid:/{print $2}' /proc/$p/status)\n"
      "kill -TERM $p; wait $p; echo off_rc $?\n";
  VmRunResult r = run_process("/bin/sh", {"-c", script, microvm_binary(), firmware_path("boot_check"), tmp.path()},
                              VmRunOptions{.timeout = std::chrono::seconds(30)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  auto m = parse(r.out);
  EXPECT_EQ(m["nspid"], "1") << r.describe();
  EXPECT_EQ(m["uid"], "65534") << r.describe();
  EXPECT_EQ(m["root_entries"], "0") << r.describe();
  EXPECT_EQ(m["rc"], "5") << r.describe();
  EXPECT_EQ(m["off_children"], "0") << r.describe();
  EXPECT_EQ(m["off_uid"], "0") << r.describe();
  EXPECT_EQ(m["off_rc"], "5") << r.describe();
}

// --api-sock inside the jail: the socket is bound before the jail closes, on the host's file
// system, so curl from outside reaches it before and after InstanceStart; configuration
// before the start names host files as without the jail; once the VM runs jailed (every
// thread filtered and without capabilities, the API thread included), PUT /snapshot/create
// is refused with a message naming the jail; the launcher removes the socket at exit.
TEST_F(JailTest, ApiSocketServesFromInsideTheJail) {
  TempDir dir;
  std::string sock = dir.path() + "/api.sock";
  ASSERT_EQ(std::system(("mkdir -p " + dir.path() + "/tmp").c_str()), 0);
  auto curl = [&](const std::string& method, const std::string& path, const std::string& body) {
    return shell_output("curl -s --max-time 30 --unix-socket '" + sock + "' -X " + method +
                        " -w ' %{http_code}' -H 'Content-Type: application/json' " +
                        (body.empty() ? std::string() : "--data '" + body + "' ") + "'http://localhost" + path + "'");
  };
  std::string script =
      "TMPDIR=\"$2\" exec \"$0\" run --jail on --api-sock \"$1\" </dev/null >/dev/null 2>\"$2/../err\"\n";
  pid_t launcher = ::fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    ::execl("/bin/sh", "sh", "-c", script.c_str(), microvm_binary().c_str(), sock.c_str(),
            (dir.path() + "/tmp").c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 400 && shell_line("test -S '" + sock + "' && echo y") != "y"; ++i) ::usleep(25000);
  ASSERT_EQ(shell_line("test -S '" + sock + "' && echo y"), "y") << read_text_file(dir.path() + "/err");
  EXPECT_TRUE(curl("GET", "/", "").ends_with(" 200")) << read_text_file(dir.path() + "/err");
  // A host path named before the start is checked (and later opened) as without the jail.
  EXPECT_TRUE(
      curl("PUT", "/boot-source",
           R"({"kernel_image_path":")" + firmware_path("boot_check") + R"(","boot_args":"bootcheck.exit=halt"})")
          .ends_with(" 204"));
  EXPECT_TRUE(curl("PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":64})").ends_with(" 204"));
  std::string started = curl("PUT", "/actions", R"({"action_type":"InstanceStart"})");
  ASSERT_TRUE(started.ends_with(" 204")) << started << "\n" << read_text_file(dir.path() + "/err");
  std::string c = shell_line("cat /proc/" + std::to_string(launcher) + "/task/" + std::to_string(launcher) +
                             "/children | tr -d ' '");
  ASSERT_FALSE(c.empty()) << "no jailed child";
  for (int i = 0; i < 200 && shell_output("cat /proc/" + c + "/task/*/comm").find("vmm-loop") == std::string::npos; ++i)
    ::usleep(25000);
  EXPECT_TRUE(curl("GET", "/machine-config", "").ends_with(" 200")) << "the API thread serves under its filter";
  std::string threads =
      shell_output("for t in /proc/" + c +
                   "/task/*; do echo $(cat $t/comm) $(awk '/^Seccomp:/{print $2}' $t/status)"
                   " $(awk '/^CapEff:/{print $2}' $t/status) $(awk '/^CapPrm:/{print $2}' $t/status)"
                   " $(awk '/^NoNewPrivs:/{print $2}' $t/status) $(awk '/^Uid:/{print $2}' $t/status); done");
  EXPECT_NE(threads.find("vmm-api 2 0000000000000000 0000000000000000 1 65534"), std::string::npos) << threads;
  EXPECT_NE(threads.find("vmm-loop 2 "), std::string::npos) << threads;
  std::istringstream lines(threads);
  for (std::string t; std::getline(lines, t);)
    EXPECT_TRUE(t.ends_with(" 2 0000000000000000 0000000000000000 1 65534")) << "not confined: " << t;
  EXPECT_EQ(shell_line("ls -A /proc/" + c + "/root | wc -l"), "0");
  EXPECT_EQ(shell_line("[ \"$(readlink /proc/" + c +
                       "/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ] && echo host || echo own"),
            "own")
      << "no network interface was configured";
  ASSERT_TRUE(curl("PATCH", "/vm", R"({"state":"Paused"})").ends_with(" 204"));
  std::string snap = curl("PUT", "/snapshot/create",
                          R"({"snapshot_type":"Full","snapshot_path":")" + dir.path() + R"(/s","mem_file_path":")" +
                              dir.path() + R"(/m"})");
  EXPECT_TRUE(snap.ends_with(" 400")) << snap;
  EXPECT_NE(snap.find("jail"), std::string::npos) << snap;
  EXPECT_EQ(shell_line("ls -A " + dir.path() + " | grep -c '^[sm]$'"), "0") << "nothing written";
  ASSERT_EQ(::kill(launcher, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(launcher, &status, 0), launcher);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5) << status << "\n" << read_text_file(dir.path() + "/err");
  EXPECT_EQ(shell_line("test -e '" + sock + "' && echo left || echo gone"), "gone");
  EXPECT_EQ(shell_line("ls -A " + dir.path() + "/tmp | wc -l"), "0") << "scratch directory left behind";
  std::string err = read_text_file(dir.path() + "/err");
  EXPECT_EQ(err.find("forbidden system call"), std::string::npos) << err;
}

// --vsock: guest connections reach PATH_<port> by path after the jail closed, so the
// socket's directory is bound into the jail, read-only, and nothing else of the host.
TEST_F(JailTest, VsockSocketDirectoryIsBoundReadOnly) {
  TempDir dir;
  ASSERT_EQ(
      std::system(("mkdir -p " + dir.path() + "/v " + dir.path() + "/tmp && touch " + dir.path() + "/secret").c_str()),
      0);
  std::string script =
      "TMPDIR=\"$3\" \"$0\" run --kernel \"$1\" --memory 64M --cmdline bootcheck.exit=halt --vsock cid=3,socket=\"$2\""
      " </dev/null >/dev/null 2>&1 & p=$!\n"
      "for i in $(seq 200); do c=$(cat /proc/$p/task/$p/children 2>/dev/null | tr -d ' ');"
      " [ -n \"$c\" ] && grep -q vmm-loop /proc/$c/task/*/comm 2>/dev/null && break; sleep 0.05; done\n"
      "echo socket $(ls -A /proc/$c/root\"$(dirname \"$2\")\")\n"
      "echo secret $([ -e /proc/$c/root\"$(dirname \"$2\")/../secret\" ] && echo visible || echo absent)\n"
      "echo mount $(awk -v d=\"$(dirname \"$2\")\" '$5==d{print $6}' /proc/$c/mountinfo)\n"
      "kill -TERM $p; wait $p; echo rc $?\n";
  VmRunResult r = run_process(
      "/bin/sh",
      {"-c", script, microvm_binary(), firmware_path("boot_check"), dir.path() + "/v/v.sock", dir.path() + "/tmp"},
      VmRunOptions{.timeout = std::chrono::seconds(30)});
  ASSERT_FALSE(r.timed_out) << r.describe();
  auto m = parse(r.out);
  EXPECT_EQ(m["socket"], "v.sock") << r.describe();
  EXPECT_EQ(m["secret"], "absent") << "only the socket's directory is bound\n" << r.describe();
  EXPECT_TRUE(m["mount"].starts_with("ro,")) << r.describe();
  EXPECT_EQ(m["rc"], "5") << r.describe();
}

TEST_F(JailTest, BadJailArgumentsExit2) {
  std::string fw = firmware_path("boot_check");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "--jail", "off", "--kernel", fw, "--uid", "1000"},
           {"run", "--jail", "off", "--kernel", fw, "--gid", "1000"},
           {"run", "--jail", "--kernel", fw, "--uid", "no-such-user-here"},
           {"run", "--jail", "--kernel", fw, "--gid", "no-such-group-here"},
           {"run", "--jail", "maybe", "--kernel", fw},
       }) {
    VmRunResult r = run_microvm(args);
    EXPECT_EQ(r.exit_code, 2) << r.describe();
  }
}

}  // namespace
}  // namespace microvm::testing
