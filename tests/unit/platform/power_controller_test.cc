#include "devices/platform/power_controller.h"

#include <gtest/gtest.h>

#include <vector>

#include "devices/platform/boot_marker.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

class PowerTest : public ::testing::Test {
 protected:
  PowerController pc_{[this] { ++poweroffs_; }, [this] { ++reboots_; }};
  int poweroffs_ = 0;
  int reboots_ = 0;

  static void write(IoHandler& h, uint64_t off, std::vector<uint8_t> bytes) {
    std::vector<std::byte> b(bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) b[i] = std::byte{bytes[i]};
    h.io_write(off, b);
  }
  static void write16(IoHandler& h, uint64_t off, uint16_t v) {
    write(h, off, {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)});
  }
  static uint64_t read(IoHandler& h, uint64_t off, size_t len) {
    std::vector<std::byte> b(len, std::byte{0xee});
    h.io_read(off, b);
    uint64_t v = 0;
    for (size_t i = 0; i < len; ++i) v |= uint64_t{static_cast<uint8_t>(b[i])} << (8 * i);
    return v;
  }
};

constexpr uint64_t kPm1Cnt = MICROVM_PORT_ACPI_PM1A_CNT - MICROVM_PORT_ACPI_PM1A_EVT;  // offset 4
constexpr uint16_t kSlpEn = 1u << 13;

TEST_F(PowerTest, Pm1CntOffsetMatchesGuestAbi) { EXPECT_EQ(kPm1Cnt, 4u); }

TEST_F(PowerTest, Pm1aCntS5WordWritePowersOff) {
  write16(pc_.pm1_registers(), kPm1Cnt, (MICROVM_ACPI_S5_SLP_TYP << 10) | kSlpEn);
  EXPECT_EQ(poweroffs_, 1);
  EXPECT_EQ(reboots_, 0);
}

TEST_F(PowerTest, Pm1aCntS5HighByteWritePowersOff) {
  // Some guests write only the high byte: SLP_EN is bit 5 and SLP_TYP bits 2-4 there.
  uint8_t hi = static_cast<uint8_t>(((MICROVM_ACPI_S5_SLP_TYP << 10) | kSlpEn) >> 8);
  write(pc_.pm1_registers(), kPm1Cnt + 1, {hi});
  EXPECT_EQ(poweroffs_, 1);
}

TEST_F(PowerTest, OtherSleepTypesDoNothing) {
  for (uint16_t typ = 0; typ < 8; ++typ) {
    if (typ == MICROVM_ACPI_S5_SLP_TYP) continue;
    write16(pc_.pm1_registers(), kPm1Cnt, static_cast<uint16_t>((typ << 10) | kSlpEn));
    write(pc_.pm1_registers(), kPm1Cnt + 1, {static_cast<uint8_t>(((typ << 10) | kSlpEn) >> 8)});
  }
  // S5 without SLP_EN only sets the type.
  write16(pc_.pm1_registers(), kPm1Cnt, MICROVM_ACPI_S5_SLP_TYP << 10);
  // A byte write to the low half cannot carry SLP_EN.
  write(pc_.pm1_registers(), kPm1Cnt, {0xff});
  EXPECT_EQ(poweroffs_, 0);
  EXPECT_EQ(reboots_, 0);
}

TEST_F(PowerTest, Pm1EnableStoredAndSciEnSet) {
  EXPECT_EQ(read(pc_.pm1_registers(), 2, 2), 0u);
  write16(pc_.pm1_registers(), 2, 0x0121);
  EXPECT_EQ(read(pc_.pm1_registers(), 2, 2), 0x0121u);
  EXPECT_EQ(read(pc_.pm1_registers(), 0, 4), 0x01210000u);   // status 0, enable above it
  EXPECT_EQ(read(pc_.pm1_registers(), 0, 2), 0u);            // PM1 status always clear
  EXPECT_EQ(read(pc_.pm1_registers(), kPm1Cnt, 2) & 1, 1u);  // SCI_EN: always in ACPI mode
  EXPECT_EQ(read(pc_.pm1_registers(), 6, 2), 0u);            // past the block: zeros
  EXPECT_EQ(poweroffs_, 0);
}

class PowerButtonTest : public PowerTest {
 protected:
  PowerController pb_{[this] { ++poweroffs_; }, [this] { ++reboots_; }, [this](bool level) { sci_.push_back(level); }};
  std::vector<bool> sci_;  // every SCI level change, in order
  static constexpr uint16_t kPwrBtn = MICROVM_ACPI_PM1_PWRBTN;
};

TEST_F(PowerButtonTest, PressWithoutEnableSetsStatusOnly) {
  pb_.press_power_button();
  EXPECT_EQ(read(pb_.pm1_registers(), 0, 2), kPwrBtn);
  EXPECT_TRUE(sci_.empty());
  EXPECT_FALSE(pb_.sci_asserted());
  // Enabling with the status already set raises the SCI at once (a press is not lost).
  write16(pb_.pm1_registers(), 2, kPwrBtn);
  EXPECT_EQ(sci_, std::vector<bool>{true});
  EXPECT_EQ(poweroffs_, 0);  // the button only asks; the guest decides
}

TEST_F(PowerButtonTest, EnabledPressRaisesSciUntilStatusCleared) {
  write16(pb_.pm1_registers(), 2, kPwrBtn);
  EXPECT_TRUE(sci_.empty());
  pb_.press_power_button();
  EXPECT_EQ(sci_, std::vector<bool>{true});
  EXPECT_TRUE(pb_.sci_asserted());
  pb_.press_power_button();  // level stays up: no second edge
  EXPECT_EQ(sci_.size(), 1u);
  // Writing 0 (or other bits) does not clear it: write-1-to-clear.
  write16(pb_.pm1_registers(), 0, 0);
  write16(pb_.pm1_registers(), 0, static_cast<uint16_t>(~kPwrBtn));
  EXPECT_EQ(read(pb_.pm1_registers(), 0, 2), kPwrBtn);
  EXPECT_TRUE(pb_.sci_asserted());
  write16(pb_.pm1_registers(), 0, kPwrBtn);
  EXPECT_EQ(read(pb_.pm1_registers(), 0, 2), 0u);
  EXPECT_EQ(sci_, (std::vector<bool>{true, false}));
  EXPECT_FALSE(pb_.sci_asserted());
}

TEST_F(PowerButtonTest, DisablingLowersSciAndByteAccessesWork) {
  write(pb_.pm1_registers(), 3, {kPwrBtn >> 8});  // PWRBTN_EN through the enable high byte
  EXPECT_EQ(read(pb_.pm1_registers(), 2, 2), kPwrBtn);
  pb_.press_power_button();
  EXPECT_EQ(read(pb_.pm1_registers(), 1, 1), kPwrBtn >> 8);
  write(pb_.pm1_registers(), 2, {0xff});  // low byte of enable: PWRBTN_EN untouched
  EXPECT_TRUE(pb_.sci_asserted());
  write(pb_.pm1_registers(), 3, {0});
  EXPECT_FALSE(pb_.sci_asserted());
  EXPECT_EQ(read(pb_.pm1_registers(), 0, 2), kPwrBtn);  // still pending for the OS
  // A dword write at 0 clears status and sets enable together.
  write(pb_.pm1_registers(), 0, {0x00, kPwrBtn >> 8, 0x00, kPwrBtn >> 8});
  EXPECT_EQ(read(pb_.pm1_registers(), 0, 4), uint64_t{kPwrBtn} << 16);
  EXPECT_EQ(sci_, (std::vector<bool>{true, false}));
  // Writes past the block and to control do not touch the event registers.
  write16(pb_.pm1_registers(), 6, 0xffff);
  write16(pb_.pm1_registers(), kPm1Cnt, 0);
  EXPECT_EQ(read(pb_.pm1_registers(), 0, 4), uint64_t{kPwrBtn} << 16);
  EXPECT_EQ(poweroffs_, 0);
}

TEST_F(PowerTest, SleepControlRegisterS5) {
  // ACPI 5 sleep control: SLP_TYP in bits 2-4, SLP_EN bit 5.
  write(pc_.acpi_registers(), 0, {(MICROVM_ACPI_S5_SLP_TYP << 2) | 0x20});
  EXPECT_EQ(poweroffs_, 1);
  write(pc_.acpi_registers(), 0, {MICROVM_ACPI_S5_SLP_TYP << 2});           // no SLP_EN
  write(pc_.acpi_registers(), 0, {(3 << 2) | 0x20});                        // S3
  write(pc_.acpi_registers(), 1, {(MICROVM_ACPI_S5_SLP_TYP << 2) | 0x20});  // sleep status port
  EXPECT_EQ(poweroffs_, 1);
  EXPECT_EQ(reboots_, 0);
  EXPECT_EQ(read(pc_.acpi_registers(), 1, 1), 0u);
}

TEST_F(PowerTest, AcpiResetRegister) {
  const uint64_t off = MICROVM_PORT_ACPI_RESET - MICROVM_PORT_ACPI_SLEEP_CONTROL;
  write(pc_.acpi_registers(), off, {0x02});
  EXPECT_EQ(reboots_, 0);
  write(pc_.acpi_registers(), off, {MICROVM_ACPI_RESET_VALUE});
  EXPECT_EQ(reboots_, 1);
  EXPECT_EQ(poweroffs_, 0);
}

TEST_F(PowerTest, I8042ResetCommand) {
  write(pc_.i8042(), 0, {0xd1});
  write(pc_.i8042(), 0, {0x00});
  write(pc_.i8042(), 0, {});
  EXPECT_EQ(reboots_, 0);
  EXPECT_EQ(read(pc_.i8042(), 0, 1), 0u);  // status: buffers empty, so Linux's reset path proceeds
  write(pc_.i8042(), 0, {0xfe});
  EXPECT_EQ(reboots_, 1);
  EXPECT_EQ(poweroffs_, 0);
}

TEST_F(PowerTest, Cf9ResetControl) {
  write(pc_.reset_control(), 0, {0x02});  // "hard reset" select without RST_CPU
  EXPECT_EQ(reboots_, 0);
  write(pc_.reset_control(), 0, {0x06});
  EXPECT_EQ(reboots_, 1);
}

TEST(BootMarker, ReportsByteWritten) {
  std::vector<uint8_t> seen;
  BootMarker m([&](uint8_t v) { seen.push_back(v); });
  std::byte b{0x2a};
  m.io_write(0, std::span(&b, 1));
  m.io_write(0, {});
  EXPECT_EQ(seen, (std::vector<uint8_t>{0x2a}));
  std::byte r{0xff};
  m.io_read(0, std::span(&r, 1));
  EXPECT_EQ(r, std::byte{0});
}

}  // namespace
}  // namespace microvm
