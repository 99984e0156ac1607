// `microvm ctl events` decodes the server's chunked stream: split anywhere, framing errors
// refused, sizes bounded.
#include <gtest/gtest.h>

#include <string>

#include "cli/api_client.h"

namespace microvm {
namespace {

TEST(ChunkedDecoder, DecodesChunksSplitAtEveryByte) {
  const std::string wire = "5\r\nhello\r\n7;ext=1\r\n, world\r\n1\r\n\n\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t split = 0; split <= wire.size(); ++split) {
    ChunkedDecoder d;
    std::string out;
    ASSERT_TRUE(d.feed(std::string_view(wire).substr(0, split), out)) << split;
    ASSERT_TRUE(d.feed(std::string_view(wire).substr(split), out)) << split;
    EXPECT_EQ(out, "hello, world\n") << split;
    EXPECT_TRUE(d.done()) << split;
  }
}

TEST(ChunkedDecoder, StopsAtTheEndAndRefusesBadFraming) {
  ChunkedDecoder partial;
  std::string out;
  ASSERT_TRUE(partial.feed("A\r\n0123", out));
  EXPECT_EQ(out, "0123");
  EXPECT_FALSE(partial.done());

  for (const char* bad : {"zz\r\n", "3\r\nabcdef\r\n", "\r\n", "1000000000000000\r\n", "x;1\r\n"}) {
    ChunkedDecoder d;
    std::string o;
    EXPECT_FALSE(d.feed(bad, o)) << bad;
  }
  ChunkedDecoder long_line;
  std::string o;
  EXPECT_FALSE(long_line.feed(std::string(1000, '1'), o));
}

}  // namespace
}  // namespace microvm
