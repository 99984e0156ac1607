#include "virtio/vsock/request.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace microvm {
namespace {

VsockHeader hdr(uint16_t op, uint32_t len = 0) {
  VsockHeader h{};
  h.src_cid = 3;
  h.dst_cid = VMADDR_CID_HOST;
  h.src_port = 1000;
  h.dst_port = 2000;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.len = len;
  return h;
}

TEST(VsockRequest, AcceptsWellFormedPackets) {
  VsockLimits l;
  for (uint16_t op : {VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_SHUTDOWN,
                      VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_CREDIT_REQUEST})
    EXPECT_EQ(parse_packet(hdr(op), 0, l).verdict, PacketVerdict::kAccept) << op;
  EXPECT_EQ(parse_packet(hdr(VIRTIO_VSOCK_OP_RW, 100), 100, l).verdict, PacketVerdict::kAccept);
  EXPECT_EQ(parse_packet(hdr(VIRTIO_VSOCK_OP_RW, 0), 0, l).verdict, PacketVerdict::kAccept);
}

TEST(VsockRequest, DropsMisaddressedPackets) {
  VsockLimits l;
  VsockHeader h = hdr(VIRTIO_VSOCK_OP_REQUEST);
  h.src_cid = 4;  // another guest's CID
  EXPECT_EQ(parse_packet(h, 0, l).verdict, PacketVerdict::kDrop);
  h = hdr(VIRTIO_VSOCK_OP_REQUEST);
  h.dst_cid = 3;  // not the host
  EXPECT_EQ(parse_packet(h, 0, l).verdict, PacketVerdict::kDrop);
  h = hdr(VIRTIO_VSOCK_OP_RST, 4);  // an RST is never answered, even when malformed
  EXPECT_EQ(parse_packet(h, 4, l).verdict, PacketVerdict::kDrop);
  h = hdr(VIRTIO_VSOCK_OP_RST);
  h.type = 77;
  EXPECT_EQ(parse_packet(h, 0, l).verdict, PacketVerdict::kAccept);
}

TEST(VsockRequest, ResetsMalformedPackets) {
  VsockLimits l;
  l.max_payload = 4096;
  VsockHeader h = hdr(VIRTIO_VSOCK_OP_REQUEST);
  h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
  EXPECT_EQ(parse_packet(h, 0, l).verdict, PacketVerdict::kReset);
  EXPECT_EQ(parse_packet(hdr(0), 0, l).verdict, PacketVerdict::kReset);
  EXPECT_EQ(parse_packet(hdr(8), 0, l).verdict, PacketVerdict::kReset);
  EXPECT_EQ(parse_packet(hdr(VIRTIO_VSOCK_OP_REQUEST, 1), 1, l).verdict, PacketVerdict::kReset);
  EXPECT_EQ(parse_packet(hdr(VIRTIO_VSOCK_OP_RW, 4097), 5000, l).verdict, PacketVerdict::kReset);
  EXPECT_EQ(parse_packet(hdr(VIRTIO_VSOCK_OP_RW, 100), 99, l).verdict, PacketVerdict::kReset);
  EXPECT_EQ(parse_packet(hdr(VIRTIO_VSOCK_OP_RW, 0xffffffff), 100, l).verdict, PacketVerdict::kReset);
  h = hdr(VIRTIO_VSOCK_OP_SHUTDOWN);
  h.flags = 4;
  EXPECT_EQ(parse_packet(h, 0, l).verdict, PacketVerdict::kReset);
  h.flags = VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND;
  EXPECT_EQ(parse_packet(h, 0, l).verdict, PacketVerdict::kAccept);
  EXPECT_NE(parse_packet(hdr(0), 0, l).why, nullptr);
}

TEST(VsockRequest, ParsesRawBytes) {
  VsockLimits l;
  std::vector<std::byte> b(sizeof(VsockHeader) + 10);
  VsockHeader h = hdr(VIRTIO_VSOCK_OP_RW, 10);
  std::memcpy(b.data(), &h, sizeof h);
  ParsedPacket p = parse_packet_bytes(b, l);
  EXPECT_EQ(p.verdict, PacketVerdict::kAccept);
  EXPECT_EQ(p.hdr.len, 10u);
  EXPECT_EQ(parse_packet_bytes(std::span(b).first(43), l).verdict, PacketVerdict::kDrop);
}

TEST(VsockRequest, ParsesConnectLines) {
  EXPECT_EQ(parse_connect_line("CONNECT 52\n"), 52u);
  EXPECT_EQ(parse_connect_line("CONNECT 52\r\n"), 52u);
  EXPECT_EQ(parse_connect_line("CONNECT 4294967295\n"), 4294967295u);
  EXPECT_EQ(parse_connect_line("CONNECT 4294967296\n"), std::nullopt);
  EXPECT_EQ(parse_connect_line("CONNECT 52"), std::nullopt);
  EXPECT_EQ(parse_connect_line("CONNECT \n"), std::nullopt);
  EXPECT_EQ(parse_connect_line("CONNECT -1\n"), std::nullopt);
  EXPECT_EQ(parse_connect_line("CONNECT 5 2\n"), std::nullopt);
  EXPECT_EQ(parse_connect_line("connect 52\n"), std::nullopt);
  EXPECT_EQ(parse_connect_line("CONNECT 00000000052\n"), std::nullopt);  // 11 digits
}

}  // namespace
}  // namespace microvm
