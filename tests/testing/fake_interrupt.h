#pragma once
// An Interrupt that counts what the device raised.
#include <cstdint>
#include <map>

#include "virtio/virtio_device.h"

namespace microvm::testing {

class FakeInterrupt : public Interrupt {
 public:
  void notify_queue(uint16_t queue_index) override { ++queue_[queue_index]; }
  void notify_config() override { ++config_; }

  uint32_t queue_count(uint16_t queue_index) const {
    auto it = queue_.find(queue_index);
    return it == queue_.end() ? 0 : it->second;
  }
  uint32_t config_count() const { return config_; }
  void clear() {
    queue_.clear();
    config_ = 0;
  }

 private:
  std::map<uint16_t, uint32_t> queue_;
  uint32_t config_ = 0;
};

}  // namespace microvm::testing
