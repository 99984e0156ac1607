#include "tests/unit/block/block_test_util.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>

namespace microvm::testing_block {

TempDir::TempDir() {
  const char* base = std::getenv("MICROVM_TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/var/tmp") + "/microvm-block-XXXXXX";
  char* p = ::mkdtemp(tmpl.data());
  if (!p) {
    tmpl = "/tmp/microvm-block-XXXXXX";
    p = ::mkdtemp(tmpl.data());
  }
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  if (!path_.empty()) run("rm -rf '" + path_ + "'");
}

int run(const std::string& cmd, std::string* out) {
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return -1;
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  int st = ::pclose(f);
  if (out) *out = s;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int qemu_img(const std::string& args, std::string* out) {
  static const bool present = run("command -v qemu-img >/dev/null 2>&1") == 0;
  if (!present) {
    ADD_FAILURE() << "qemu-img is missing: install qemu-utils (scripts/install-deps.sh)";
    return -1;
  }
  return run("qemu-img " + args + " 2>&1", out);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::vector<uint8_t> pattern(size_t len, uint32_t seed) {
  std::vector<uint8_t> v(len);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

int32_t wait_for(BlockBackend& b, uint64_t tag) {
  static std::map<BlockBackend*, std::map<uint64_t, int32_t>> early;  // test-only bookkeeping
  auto& mine = early[&b];
  for (int spins = 0; spins < 100000; ++spins) {
    if (auto it = mine.find(tag); it != mine.end()) {
      int32_t r = it->second;
      mine.erase(it);
      return r;
    }
    b.flush_submissions();
    pollfd p{b.completion_fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    BlockCompletion c[16];
    size_t n = b.reap(c);
    for (size_t i = 0; i < n; ++i) mine[c[i].tag] = c[i].result;
  }
  ADD_FAILURE() << "completion for tag " << tag << " never arrived";
  return -9999;
}

namespace {
uint64_t next_tag = 1000;
}

int32_t do_read(BlockBackend& b, uint64_t off, void* buf, size_t len) {
  iovec v{buf, len};
  uint64_t tag = next_tag++;
  auto r = b.submit_read(off, {&v, 1}, tag);
  if (!r) return -10000;
  return wait_for(b, tag);
}

int32_t do_write(BlockBackend& b, uint64_t off, const void* buf, size_t len) {
  iovec v{const_cast<void*>(buf), len};
  uint64_t tag = next_tag++;
  auto r = b.submit_write(off, {&v, 1}, tag);
  if (!r) return -10000;
  return wait_for(b, tag);
}

int32_t do_flush(BlockBackend& b) {
  uint64_t tag = next_tag++;
  if (!b.submit_flush(tag)) return -10000;
  return wait_for(b, tag);
}

int32_t do_discard(BlockBackend& b, uint64_t off, uint64_t len) {
  uint64_t tag = next_tag++;
  if (!b.submit_discard(off, len, tag)) return -10000;
  return wait_for(b, tag);
}

int32_t do_write_zeroes(BlockBackend& b, uint64_t off, uint64_t len, bool may_unmap) {
  uint64_t tag = next_tag++;
  if (!b.submit_write_zeroes(off, len, may_unmap, tag)) return -10000;
  return wait_for(b, tag);
}

}  // namespace microvm::testing_block
