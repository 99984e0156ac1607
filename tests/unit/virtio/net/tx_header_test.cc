#include "virtio/net/tx_header.h"

#include <gtest/gtest.h>

#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

constexpr uint64_t kAll =
    feature_bit(VIRTIO_NET_F_CSUM) | feature_bit(VIRTIO_NET_F_HOST_TSO4) | feature_bit(VIRTIO_NET_F_HOST_TSO6);

TEST(TxHeader, PlainFrameIsFine) {
  VirtioNetHdr h{};
  EXPECT_EQ(check_tx_header(h, 60, 0), nullptr);
  EXPECT_EQ(check_tx_header(h, 14, 0), nullptr);
}

TEST(TxHeader, LengthLimits) {
  VirtioNetHdr h{};
  EXPECT_NE(check_tx_header(h, 13, kAll), nullptr);
  EXPECT_EQ(check_tx_header(h, kMaxNetFrame - 12, kAll), nullptr);
  EXPECT_NE(check_tx_header(h, kMaxNetFrame - 11, kAll), nullptr);
}

TEST(TxHeader, ChecksumRequest) {
  VirtioNetHdr h{};
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.csum_start = 34;
  h.csum_offset = 16;
  EXPECT_NE(check_tx_header(h, 100, 0), nullptr) << "NEEDS_CSUM without VIRTIO_NET_F_CSUM";
  EXPECT_EQ(check_tx_header(h, 100, kAll), nullptr);
  EXPECT_EQ(check_tx_header(h, 52, kAll), nullptr);
  EXPECT_NE(check_tx_header(h, 51, kAll), nullptr) << "checksum field past the end";
  h.csum_start = 0xffff;
  h.csum_offset = 0xffff;
  EXPECT_NE(check_tx_header(h, 60000, kAll), nullptr);
}

TEST(TxHeader, UnknownFlags) {
  VirtioNetHdr h{};
  h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  EXPECT_NE(check_tx_header(h, 100, kAll), nullptr);
  h.flags = 0x80;
  EXPECT_NE(check_tx_header(h, 100, kAll), nullptr);
}

TEST(TxHeader, Gso) {
  VirtioNetHdr h{};
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = 1448;
  h.hdr_len = 66;
  h.csum_start = 34;
  h.csum_offset = 16;
  EXPECT_EQ(check_tx_header(h, 30000, kAll), nullptr);
  EXPECT_NE(check_tx_header(h, 30000, feature_bit(VIRTIO_NET_F_CSUM)), nullptr) << "TSO4 not negotiated";
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  EXPECT_EQ(check_tx_header(h, 30000, kAll), nullptr);
  h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr) << "UFO not offered";
  h.gso_type = 2;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr);
  h.gso_type = 0x7f;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr);
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr) << "ECN not negotiated";
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = 0;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr);
  h.gso_size = 1448;
  h.hdr_len = 40000;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr);
  h.hdr_len = 66;
  h.flags = 0;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr) << "GSO without NEEDS_CSUM";
  h.gso_type = VIRTIO_NET_HDR_GSO_NONE | VIRTIO_NET_HDR_GSO_ECN;
  EXPECT_NE(check_tx_header(h, 30000, kAll), nullptr);
}

}  // namespace
}  // namespace microvm
