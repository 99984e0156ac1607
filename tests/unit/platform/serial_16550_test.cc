#include "devices/platform/serial_16550.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

// Register offsets and bits (16550 datasheet / Linux serial_reg.h).
constexpr uint64_t RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6,
                   SCR = 7;
constexpr uint8_t IER_RDI = 0x01, IER_THRI = 0x02;
constexpr uint8_t IIR_NO_INT = 0x01, IIR_THRI = 0x02, IIR_RDI = 0x04;
constexpr uint8_t LCR_DLAB = 0x80, LSR_DR = 0x01, LSR_THRE = 0x20, LSR_TEMT = 0x40;
constexpr uint8_t MCR_LOOP = 0x10;

class SerialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    rd_ = Fd(p[0]);
    wr_ = Fd(p[1]);
    uart_ = std::make_unique<Serial16550>([this] { ++irqs_; },
                                          [this](uint8_t b) { ASSERT_EQ(::write(wr_.get(), &b, 1), 1); });
  }
  uint8_t in(uint64_t reg) {
    std::byte b{0xee};
    uart_->io_read(reg, std::span(&b, 1));
    return static_cast<uint8_t>(b);
  }
  void out(uint64_t reg, uint8_t v) {
    std::byte b{v};
    uart_->io_write(reg, std::span(&b, 1));
  }
  std::string drain_output() {
    std::string s;
    char buf[256];
    ssize_t n;
    while ((n = ::read(rd_.get(), buf, sizeof buf)) > 0) s.append(buf, n);
    return s;
  }
  void input(std::string_view s) {
    uart_->enqueue_input(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }

  Fd rd_, wr_;
  int irqs_ = 0;
  std::unique_ptr<Serial16550> uart_;
};

TEST_F(SerialTest, Linux8250ProbeSequence) {
  // autoconfig(): IER must hold exactly the low 4 bits written.
  out(IER, 0);
  EXPECT_EQ(in(IER)&0x0f, 0);
  out(IER, 0x0f);
  EXPECT_EQ(in(IER)&0x0f, 0x0f);
  out(IER, 0xff);
  EXPECT_EQ(in(IER), 0x0f);  // upper bits are not stored
  out(IER, 0);
  // Scratch register holds any value.
  for (uint8_t v : {0x00, 0x55, 0xaa, 0xff}) {
    out(SCR, v);
    EXPECT_EQ(in(SCR), v);
  }
  // Loopback: MCR = LOOP | OUT2 | RTS (0x1a) -> MSR high nibble = DCD | CTS = 0x90.
  out(MCR, 0x1a);
  EXPECT_EQ(in(MSR)&0xf0, 0x90);
  out(MCR, MCR_LOOP | 0x0f);  // all outputs on: CTS, DSR, RI, DCD
  EXPECT_EQ(in(MSR)&0xf0, 0xf0);
  out(MCR, MCR_LOOP);
  EXPECT_EQ(in(MSR)&0xf0, 0x00);
  out(MCR, 0x0b);  // normal mode: a terminal is attached (CTS, DSR, DCD)
  EXPECT_EQ(in(MSR)&0xb0, 0xb0);
  // FIFO enabled shows in IIR bits 7-6 (a 16550A, not a plain 8250).
  out(FCR, 0x01);
  EXPECT_EQ(in(IIR)&0xc0, 0xc0);
  out(FCR, 0x00);
  EXPECT_EQ(in(IIR)&0xc0, 0x00);
}

TEST_F(SerialTest, LsrIdle) {
  EXPECT_EQ(in(LSR), LSR_THRE | LSR_TEMT);
  EXPECT_EQ(in(IIR), IIR_NO_INT);
  EXPECT_EQ(irqs_, 0);
}

TEST_F(SerialTest, ThreInterruptWhenEnabledAndAfterEachWrite) {
  out(IER, IER_THRI);  // enabling THRI with an empty THR raises at once
  EXPECT_EQ(irqs_, 1);
  EXPECT_EQ(in(IIR)&0x0f, IIR_THRI);
  EXPECT_EQ(in(IIR)&0x0f, IIR_NO_INT);  // the IIR read acknowledged it
  out(THR, 'a');
  EXPECT_EQ(irqs_, 2);
  out(THR, 'b');
  EXPECT_EQ(irqs_, 3);
  EXPECT_EQ(in(IIR)&0x0f, IIR_THRI);
  EXPECT_EQ(in(IIR)&0x0f, IIR_NO_INT);
  // Re-writing IER with THRI still set does not re-latch (no new edge).
  out(IER, IER_THRI);
  EXPECT_EQ(in(IIR)&0x0f, IIR_NO_INT);
  EXPECT_EQ(drain_output(), "ab");
}

TEST_F(SerialTest, NoThreInterruptWhenDisabled) {
  out(THR, 'x');
  EXPECT_EQ(irqs_, 0);
  EXPECT_EQ(in(IIR)&0x0f, IIR_NO_INT);
  EXPECT_EQ(drain_output(), "x");
}

TEST_F(SerialTest, ReceivedDataRaisesRdi) {
  out(IER, IER_RDI);
  EXPECT_EQ(irqs_, 0);
  input("hi");
  EXPECT_EQ(irqs_, 1);
  EXPECT_EQ(in(IIR)&0x0f, IIR_RDI);
  EXPECT_EQ(in(LSR)&LSR_DR, LSR_DR);
  EXPECT_EQ(uart_->input_space(), Serial16550::kInputBufferSize - 2);
  EXPECT_EQ(in(RBR), 'h');
  EXPECT_EQ(in(IIR)&0x0f, IIR_RDI);  // still one byte pending
  EXPECT_EQ(in(RBR), 'i');
  EXPECT_EQ(in(LSR)&LSR_DR, 0);
  EXPECT_EQ(in(IIR)&0x0f, IIR_NO_INT);
  EXPECT_EQ(in(RBR), 0);  // empty FIFO reads 0
}

TEST_F(SerialTest, RdiHasPriorityOverThre) {
  out(IER, IER_RDI | IER_THRI);
  input("z");
  EXPECT_EQ(in(IIR)&0x0f, IIR_RDI);
  EXPECT_EQ(in(RBR), 'z');
  EXPECT_EQ(in(IIR)&0x0f, IIR_THRI);  // THRE still latched underneath
}

TEST_F(SerialTest, InputWithoutRdiEnabledDoesNotInterrupt) {
  input("q");
  EXPECT_EQ(irqs_, 0);
  EXPECT_EQ(in(LSR)&LSR_DR, LSR_DR);  // polled mode still sees it
}

TEST_F(SerialTest, FcrClearsReceiveFifo) {
  input("abc");
  out(FCR, 0x03);
  EXPECT_EQ(in(LSR)&LSR_DR, 0);
}

TEST_F(SerialTest, DlabSelectsDivisor) {
  EXPECT_EQ(in(LCR), 0);
  out(LCR, LCR_DLAB | 0x03);
  EXPECT_EQ(in(DLL), 0x0c);  // 9600 baud as firmware leaves it
  EXPECT_EQ(in(DLM), 0x00);
  out(DLL, 0x01);  // 115200
  out(DLM, 0x02);
  EXPECT_EQ(in(DLL), 0x01);
  EXPECT_EQ(in(DLM), 0x02);
  out(LCR, 0x03);
  EXPECT_EQ(in(LCR), 0x03);
  EXPECT_EQ(in(IER), 0x00);       // the DLM write did not land in IER
  EXPECT_EQ(drain_output(), "");  // the DLL write was not transmitted
  out(IER, 0x05);
  out(LCR, LCR_DLAB);
  EXPECT_EQ(in(DLM), 0x02);  // and IER writes do not touch DLM
}

TEST_F(SerialTest, InputBufferLimit) {
  std::string big(Serial16550::kInputBufferSize + 100, 'k');
  input(big);
  EXPECT_EQ(uart_->input_space(), 0u);
  size_t n = 0;
  while (in(LSR)&LSR_DR) {
    in(RBR);
    ++n;
  }
  EXPECT_EQ(n, Serial16550::kInputBufferSize);
  EXPECT_EQ(uart_->input_space(), Serial16550::kInputBufferSize);
}

TEST_F(SerialTest, LoopbackDoesNotTransmit) {
  out(MCR, MCR_LOOP);
  out(THR, 'L');
  EXPECT_EQ(in(RBR), 'L');
  EXPECT_EQ(drain_output(), "");
}

TEST_F(SerialTest, OutputReachesFd) {
  for (char c : std::string("hello\r\n")) out(THR, static_cast<uint8_t>(c));
  EXPECT_EQ(drain_output(), "hello\r\n");
}

TEST_F(SerialTest, WideAndOutOfRangeAccesses) {
  out(SCR, 0x42);
  std::byte wide[4] = {std::byte{1}, std::byte{1}, std::byte{1}, std::byte{1}};
  uart_->io_read(SCR, wide);
  EXPECT_EQ(wide[0], std::byte{0x42});
  EXPECT_EQ(wide[1], std::byte{0});  // zero-extended
  std::byte b{0x99};
  uart_->io_read(8, std::span(&b, 1));
  EXPECT_EQ(b, std::byte{0});
  uart_->io_write(8, std::span(&b, 1));  // ignored, no crash
  uart_->io_write(0, {});                // empty write ignored
  EXPECT_EQ(drain_output(), "");
}

TEST_F(SerialTest, ConsoleMarkerWatcher) {
  int hits = 0;
  uart_->watch_output(MICROVM_CONSOLE_MARKER, [&] { ++hits; });
  auto send = [&](std::string_view s) {
    for (char c : s) out(THR, static_cast<uint8_t>(c));
  };
  send("booting...\n");
  EXPECT_EQ(hits, 0);
  send(MICROVM_CONSOLE_MARKER);
  EXPECT_EQ(hits, 1);
  // The bytes still reach the output.
  EXPECT_NE(drain_output().find(MICROVM_CONSOLE_MARKER), std::string::npos);
  // A partial match followed by a restart of the marker.
  std::string marker = MICROVM_CONSOLE_MARKER;
  send(marker.substr(0, 8));
  send(marker);
  EXPECT_EQ(hits, 2);
  // A partial match broken by another byte does not count.
  send(marker.substr(0, 10) + "x" + marker.substr(10));
  EXPECT_EQ(hits, 2);
  // Split across writes with other output around it.
  send("abc" + marker.substr(0, 5));
  send(marker.substr(5) + "def");
  EXPECT_EQ(hits, 3);
}

TEST_F(SerialTest, ConsoleMarkerAfterNearlyCompleteMarker) {
  // The marker contains ESC twice ("\e_microvm-boot-marker\e\\"): a marker cut off right
  // before its final '\\' ends in ESC, which is also where the real marker starts.
  int hits = 0;
  uart_->watch_output(MICROVM_CONSOLE_MARKER, [&] { ++hits; });
  std::string marker = MICROVM_CONSOLE_MARKER;
  std::string cut = marker.substr(0, marker.size() - 1);
  for (char c : cut + marker.substr(1)) out(THR, static_cast<uint8_t>(c));
  EXPECT_EQ(hits, 1);
  for (char c : cut + marker) out(THR, static_cast<uint8_t>(c));
  EXPECT_EQ(hits, 2);
}

// Snapshot/restore: a fresh UART loaded with another's state behaves like it: the guest's
// programmed IER still routes input to an interrupt, the divisor and scratch survive, and
// unread input is still there.
TEST_F(SerialTest, SavedStateRestoresRegistersAndUnreadInput) {
  out(LCR, LCR_DLAB);
  out(DLL, 0x01);
  out(DLM, 0x02);
  out(LCR, 0x03);
  out(SCR, 0x5a);
  out(IER, IER_RDI);
  input("ab");
  auto blob = uart_->save_state();

  int irqs = 0;
  Serial16550 other([&] { ++irqs; }, {});
  ASSERT_TRUE(other.load_state(blob));
  auto rd = [&](uint64_t reg) {
    std::byte b{0xee};
    other.io_read(reg, std::span(&b, 1));
    return static_cast<uint8_t>(b);
  };
  auto wr = [&](uint64_t reg, uint8_t v) {
    std::byte b{v};
    other.io_write(reg, std::span(&b, 1));
  };
  EXPECT_EQ(rd(IER), IER_RDI);
  EXPECT_EQ(rd(LCR), 0x03);
  EXPECT_EQ(rd(SCR), 0x5a);
  EXPECT_EQ(rd(IIR) & 0x0f, IIR_RDI);
  EXPECT_EQ(rd(RBR), 'a');
  EXPECT_EQ(rd(RBR), 'b');
  EXPECT_EQ(rd(LSR) & LSR_DR, 0);
  // New input raises the interrupt the restored IER enables.
  uint8_t c = 'z';
  other.enqueue_input(std::span(&c, 1));
  EXPECT_EQ(irqs, 1);
  wr(LCR, LCR_DLAB);
  EXPECT_EQ(rd(DLL), 0x01);
  EXPECT_EQ(rd(DLM), 0x02);
}

TEST_F(SerialTest, HostileStateIsRefusedAndLeavesTheUartAlone) {
  out(SCR, 0x11);
  auto good = uart_->save_state();
  // Truncated at every length, trailing bytes, reserved IER/MCR bits, a wrong tag, a
  // non-boolean, an input queue longer than the UART's buffer.
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(uart_->load_state(std::span(good).first(n))) << n;
  auto longer = good;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(uart_->load_state(longer));
  auto bad = good;
  bad[6] = std::byte{0x10};  // IER (after the 4-byte tag and 2-byte version)
  EXPECT_FALSE(uart_->load_state(bad));
  bad = good;
  bad[8] = std::byte{0x20};  // MCR
  EXPECT_FALSE(uart_->load_state(bad));
  bad = good;
  bad[0] = std::byte{'X'};
  EXPECT_FALSE(uart_->load_state(bad));
  bad = good;
  bad[13] = std::byte{2};  // the THRE boolean
  EXPECT_FALSE(uart_->load_state(bad));
  bad = good;
  uint32_t huge = Serial16550::kInputBufferSize + 1;
  std::memcpy(bad.data() + 14, &huge, 4);
  bad.resize(18 + huge);
  EXPECT_FALSE(uart_->load_state(bad));
  EXPECT_EQ(in(SCR), 0x11);
}

}  // namespace
}  // namespace microvm
