#include "devices/platform/serial_16550.h"

#include <unistd.h>

#include "base/state_reader.h"
#include "base/state_writer.h"

namespace microvm {
namespace {

// Register offsets and bits (16550 datasheet; names as in Linux's serial_reg.h).
constexpr uint8_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kIerRdi = 0x01, kIerThri = 0x02;
constexpr uint8_t kIirNoInt = 0x01, kIirThri = 0x02, kIirRdi = 0x04, kIirFifoEnabled = 0xc0;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
constexpr uint32_t kStateTag = state_tag("UART");
constexpr uint16_t kStateVersion = 1;

}  // namespace

void Serial16550::io_read(uint64_t offset, std::span<std::byte> data) {
  // The UART is a byte-wide device; wider accesses read the first register, zero-extended.
  for (auto& b : data) b = std::byte{0};
  if (offset > kScr || data.empty()) return;
  std::lock_guard lock(mutex_);
  data[0] = std::byte{read_register(offset)};
}

void Serial16550::io_write(uint64_t offset, std::span<const std::byte> data) {
  if (offset > kScr || data.empty()) return;
  bool raise;
  {
    std::lock_guard lock(mutex_);
    write_register(offset, static_cast<uint8_t>(data[0]));
    raise = interrupt_pending();
  }
  if (raise) irq_();
}

uint8_t Serial16550::interrupt_identification() const {
  uint8_t fifo = (fcr_ & kFcrEnable) ? kIirFifoEnabled : 0;
  if ((ier_ & kIerRdi) && !rx_.empty()) return fifo | kIirRdi;
  if ((ier_ & kIerThri) && thre_pending_) return fifo | kIirThri;
  return fifo | kIirNoInt;
}

uint8_t Serial16550::read_register(uint64_t offset) {
  switch (offset) {
    case kRbrThr: {
      if (lcr_ & kLcrDlab) return dll_;
      if (rx_.empty()) return 0;
      uint8_t c = rx_.front();
      rx_.pop_front();
      return c;
    }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIirFcr: {
      uint8_t iir = interrupt_identification();
      if ((iir & 0x0f) == kIirThri) thre_pending_ = false;  // reading IIR acknowledges THRE
      return iir;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return (rx_.empty() ? 0 : kLsrDr) | kLsrThre | kLsrTemt;
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback wires the modem outputs back to the inputs; Linux's probe checks this.
        return ((mcr_ & kMcrRts) ? kMsrCts : 0) | ((mcr_ & kMcrDtr) ? kMsrDsr : 0) | ((mcr_ & kMcrOut1) ? kMsrRi : 0) |
               ((mcr_ & kMcrOut2) ? kMsrDcd : 0);
      }
      return kMsrCts | kMsrDsr | kMsrDcd;  // a terminal is always attached
    case kScr:
      return scr_;
  }
  return 0;
}

void Serial16550::write_register(uint64_t offset, uint8_t value) {
  switch (offset) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
      } else if (mcr_ & kMcrLoop) {
        if (rx_.size() < kInputBufferSize) rx_.push_back(value);
        thre_pending_ = true;
      } else {
        transmit(value);
        thre_pending_ = true;  // transmitted at once: the holding register is empty again
      }
      break;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
      } else {
        // Enabling THRI while THR is empty raises the interrupt at once (8250 behaviour the
        // Linux driver relies on to start transmission).
        if ((value & kIerThri) && !(ier_ & kIerThri)) thre_pending_ = true;
        ier_ = value & 0x0f;
      }
      break;
    case kIirFcr:
      fcr_ = value;
      if (value & kFcrClearRx) rx_.clear();
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      break;
    case kScr:
      scr_ = value;
      break;
    default:
      break;  // LSR and MSR are read-only
  }
}

void Serial16550::transmit(uint8_t value) {
  if (out_) out_(value);
  if (marker_.empty()) return;
  const char c = static_cast<char>(value);
  if (c == marker_[marker_matched_]) {
    if (++marker_matched_ == marker_.size()) {
      marker_matched_ = 0;
      if (on_marker_) on_marker_();
    }
    return;
  }
  // Mismatch: continue from the longest marker prefix that ends at this byte. Restarting at
  // 0 or 1 is not enough: the marker holds ESC twice ("\e_...\e\\"), so a marker cut short
  // before its last byte ends where a real one may begin. The marker is short; this is cheap.
  const size_t matched = marker_matched_;
  marker_matched_ = 0;
  for (size_t j = matched; j > 0; --j) {
    if (marker_[j - 1] == c && marker_.compare(0, j - 1, marker_, matched - j + 1, j - 1) == 0) {
      marker_matched_ = j;
      break;
    }
  }
}

void Serial16550::enqueue_input(std::span<const uint8_t> bytes) {
  bool raise;
  {
    std::lock_guard lock(mutex_);
    for (uint8_t b : bytes)
      if (rx_.size() < kInputBufferSize) rx_.push_back(b);
    raise = interrupt_pending();
  }
  if (raise) irq_();
}

size_t Serial16550::input_space() const {
  std::lock_guard lock(mutex_);
  return kInputBufferSize - rx_.size();
}

std::vector<std::byte> Serial16550::save_state() const {
  std::lock_guard lock(mutex_);
  StateWriter w;
  w.header(kStateTag, kStateVersion);
  for (uint8_t r : {ier_, lcr_, mcr_, scr_, fcr_, dll_, dlm_}) w.u8(r);
  w.boolean(thre_pending_);
  std::vector<std::byte> rx;
  for (uint8_t b : rx_) rx.push_back(std::byte{b});
  w.bytes(rx);
  return w.take();
}

Result<void> Serial16550::load_state(std::span<const std::byte> blob) {
  StateReader r(blob, "UART state");
  TRY(r.header(kStateTag, kStateVersion));
  const uint8_t ier = TRY(r.u8()), lcr = TRY(r.u8()), mcr = TRY(r.u8()), scr = TRY(r.u8()), fcr = TRY(r.u8()),
                dll = TRY(r.u8()), dlm = TRY(r.u8());
  const bool thre = TRY(r.boolean());
  auto rx = TRY(r.bytes(kInputBufferSize));
  TRY(r.expect_end());
  // Values a guest write could not have produced (write_register masks these).
  if (ier & ~0x0f) return r.invalid("IER has reserved bits set");
  if (mcr & ~0x1f) return r.invalid("MCR has reserved bits set");
  std::lock_guard lock(mutex_);
  ier_ = ier;
  lcr_ = lcr;
  mcr_ = mcr;
  scr_ = scr;
  fcr_ = fcr;
  dll_ = dll;
  dlm_ = dlm;
  thre_pending_ = thre;
  rx_.clear();
  for (std::byte b : rx) rx_.push_back(static_cast<uint8_t>(b));
  return {};
}

}  // namespace microvm
