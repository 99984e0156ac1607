// virtio-console with the real Linux driver, in one boot: the console is hvc0 (console=hvc0,
// no ttyS0), so /init's own lines reach microvm's stdout through port 0; a named port on a
// Unix socket is found by its sysfs name, the guest writes to it and the host reads it from
// the socket, and the host's answer reaches the guest. Typing on stdin reaches hvc0 too.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

constexpr char kScript[] = R"SH(dev=
for d in /sys/class/virtio-ports/*; do
  [ "$(cat $d/name 2>/dev/null)" = test.port ] && dev=/dev/${d##*/}
done
echo "port-dev=$dev"
[ -n "$dev" ] || exit 1
echo "written-to-hvc0" > /dev/hvc0
exec 5<>"$dev"
echo "guest-says-hello" >&5
read -r line <&5
echo "host-said:$line"
exec 5>&-
echo "console-waits-for-input"
read -r typed
echo "console-got:$typed"
)SH";

TEST(LinuxConsole, HvcConsoleAndNamedSocketPortBothWays) {
  std::string why = kvm_unavailable_reason();
  ASSERT_TRUE(why.empty()) << "this test needs /dev/kvm: " << why;
  std::string cmdline = guest_cmdline();
  ASSERT_FALSE(cmdline.empty()) << "guest kernel command line missing: " << guest_dir() << "/cmdline";
  auto at = cmdline.find("console=ttyS0");
  ASSERT_NE(at, std::string::npos) << cmdline;
  cmdline.replace(at, std::strlen("console=ttyS0"), "console=hvc0");

  TempDir dir;
  auto initrd = make_initramfs(dir, {.script = kScript});
  ASSERT_TRUE(initrd) << initrd.error().what;
  std::string sock = dir.path() + "/port.sock";

  // The host side of the named port: connect once microvm listens, read the guest's line,
  // answer it.
  std::string from_guest;
  std::thread host([&] {
    int fd = -1;
    for (int i = 0; i < 3000 && fd < 0; ++i) {
      int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
      if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
        fd = s;
      else {
        ::close(s);
        ::usleep(100'000);
      }
    }
    if (fd < 0) return;
    timeval tv{1300, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    while (::read(fd, &c, 1) == 1) {
      from_guest.push_back(c);
      if (c == '\n') break;
    }
    const char answer[] = "host-input-42\n";
    [[maybe_unused]] ssize_t n = ::write(fd, answer, sizeof answer - 1);
    ::sleep(5);  // keep the connection while the guest reads
    ::close(fd);
  });

  VmRunOptions opts;
  opts.timeout = std::chrono::minutes(22);  // this host emulates guest kernel code; under load boots are slow
  opts.interactions = {{"console-waits-for-input", "typed-on-stdin\n"}};
  auto r = run_microvm({"run", "--kernel", guest_kernel(), "--initrd", *initrd, "--cpus", "2", "--memory", "256M",
                        "--cmdline", cmdline, "--console", "virtio", "--serial-port", "name=test.port,socket=" + sock},
                       opts);
  host.join();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // /init's own output went to /dev/console = hvc0.
  EXPECT_FALSE(r.lines_with_prefix("microvm-guest: userspace ready").empty()) << r.describe();
  EXPECT_FALSE(r.lines_with_prefix("written-to-hvc0").empty()) << r.describe();
  EXPECT_EQ(from_guest, "guest-says-hello\n") << r.describe();
  EXPECT_FALSE(r.lines_with_prefix("host-said:host-input-42").empty()) << r.describe();
  EXPECT_FALSE(r.lines_with_prefix("console-got:typed-on-stdin").empty()) << r.describe();
  EXPECT_FALSE(r.lines_with_prefix("microvm-guest: test exit=0").empty()) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
