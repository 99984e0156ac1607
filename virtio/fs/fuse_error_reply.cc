#include "virtio/fs/fuse_error_reply.h"

namespace microvm {

uint32_t write_fuse_error_reply(const DescriptorChain& chain, int32_t negative_errno) {
  if (!chain.valid()) return 0;
  Reader reader = chain.reader();
  // Copied out of guest memory before use; only `unique` is read, and any value is fine.
  auto in = reader.read_obj<FuseInHeader>();
  FuseOutHeader out{sizeof(FuseOutHeader), negative_errno, in ? in->unique : 0};
  Writer writer = chain.writer();
  if (writer.remaining() < sizeof out) return 0;
  if (!writer.write_obj(out)) return 0;
  return sizeof out;
}

}  // namespace microvm
