#include "cli/serial_port_arg.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

TEST(SerialPortArg, SocketAndPty) {
  auto s = parse_serial_port_arg("name=org.qemu.guest_agent.0,socket=/tmp/qga.sock");
  ASSERT_TRUE(s.has_value()) << s.error().what;
  EXPECT_EQ(s->name, "org.qemu.guest_agent.0");
  EXPECT_EQ(s->socket_path, "/tmp/qga.sock");
  EXPECT_FALSE(s->pty);
  auto p = parse_serial_port_arg("pty,name=logs");
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->pty);
  EXPECT_EQ(p->name, "logs");
}

TEST(SerialPortArg, Refusals) {
  for (const char* bad :
       {"", "name=a", "socket=/x", "pty", "name=a,socket=/x,pty", "name=a,pty,socket=/x", "name=,pty", "name=a/b,pty",
        "name=a,name=b,pty", "name=a,socket=,", "name=a,pty=1", "name=a,pty,speed=9600", "name=a b,pty"})
    EXPECT_FALSE(parse_serial_port_arg(bad).has_value()) << bad;
  EXPECT_FALSE(parse_serial_port_arg("name=" + std::string(129, 'x') + ",pty").has_value());
}

}  // namespace
}  // namespace microvm
