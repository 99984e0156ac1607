#pragma once
// PCI 3.0 configuration header offsets and bits we use (type 0 header).
#include <cstdint>

namespace microvm::pci {

inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kRevisionId = 0x08;
inline constexpr uint16_t kClassCode = 0x09;  // 3 bytes: prog-if, subclass, class
inline constexpr uint16_t kHeaderType = 0x0e;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kSubsystemVendorId = 0x2c;
inline constexpr uint16_t kSubsystemId = 0x2e;
inline constexpr uint16_t kCapabilitiesPointer = 0x34;
inline constexpr uint16_t kInterruptLine = 0x3c;
inline constexpr uint16_t kInterruptPin = 0x3d;

inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandBusMaster = 1 << 2;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
inline constexpr uint16_t kStatusCapabilitiesList = 1 << 4;

inline constexpr uint32_t kBarMem64 = 0x4;  // memory BAR, type 10b: 64-bit
inline constexpr uint32_t kBarPrefetchable = 0x8;

inline constexpr uint8_t kCapIdMsix = 0x11;
inline constexpr uint8_t kCapIdVendor = 0x09;

inline constexpr uint16_t kLegacyConfigSize = 256;  // mechanism #1 reaches this much
inline constexpr uint16_t kConfigSize = 4096;       // ECAM reaches this much
inline constexpr uint8_t kNumBars = 6;
inline constexpr uint8_t kNumSlots = 32;
inline constexpr uint32_t kAllOnes = 0xffffffff;  // what an absent function reads as

}  // namespace microvm::pci
