#include "bench/blk_device/workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/fd.h"

namespace microvm::blkbench {

std::vector<Workload> default_workloads(bool include_qd1) {
  std::vector<Workload> w = {
      {"randread_4k_qd32", false, Pattern::kRandom, 4096, 32},
      {"randwrite_4k_qd32", true, Pattern::kRandom, 4096, 32},
  };
  if (include_qd1) {
    w.push_back({"randread_4k_qd1", false, Pattern::kRandom, 4096, 1});
    w.push_back({"randwrite_4k_qd1", true, Pattern::kRandom, 4096, 1});
  }
  w.push_back({"seqread_1m_qd4", false, Pattern::kSequential, 1u << 20, 4});
  w.push_back({"seqwrite_1m_qd4", true, Pattern::kSequential, 1u << 20, 4});
  return w;
}

Result<void> prepare_file(const std::string& path, uint64_t size_bytes, bool* reused) {
  constexpr uint64_t kChunk = 1 << 20;
  if (size_bytes == 0 || size_bytes % kChunk)
    return fail(EINVAL, "test file size must be a positive multiple of 1 MiB");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == size_bytes &&
      static_cast<uint64_t>(st.st_blocks) * 512 >= size_bytes) {
    if (reused) *reused = true;  // already the right size and fully allocated
    return {};
  }
  if (reused) *reused = false;
  int raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
  if (raw < 0 && errno == EINVAL) raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (raw < 0) return fail_errno("create " + path);
  Fd fd(raw);
  // O_DIRECT wants an aligned buffer; the bytes are a cheap non-zero pattern.
  void* mem = nullptr;
  if (::posix_memalign(&mem, 4096, kChunk) != 0) return fail(ENOMEM, "test file buffer");
  std::unique_ptr<void, decltype(&std::free)> buf(mem, &std::free);
  auto* words = static_cast<uint64_t*>(mem);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < kChunk / 8; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    words[i] = x;
  }
  for (uint64_t off = 0; off < size_bytes; off += kChunk) {
    words[0] = off;  // every block distinct
    ssize_t n = ::pwrite(fd.get(), mem, kChunk, static_cast<off_t>(off));
    if (n != static_cast<ssize_t>(kChunk))
      return n < 0 ? fail_errno("write " + path) : fail(EIO, "short write to " + path);
  }
  if (::fsync(fd.get()) != 0) return fail_errno("fsync " + path);
  return {};
}

std::string filesystem_of(const std::string& path) {
  // The longest mount point that prefixes the real path wins.
  char* real = ::realpath(path.c_str(), nullptr);
  std::string p = real ? real : path;
  std::free(real);
  std::ifstream in("/proc/self/mountinfo");
  std::string line, best_mp, best_fs = "unknown";
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mp, tok;
    ls >> id >> parent >> devno >> root >> mp;
    while (ls >> tok && tok != "-") {
    }
    std::string fstype;
    ls >> fstype;
    bool prefix = p.compare(0, mp.size(), mp) == 0 && (mp == "/" || p.size() == mp.size() || p[mp.size()] == '/');
    if (prefix && mp.size() >= best_mp.size()) best_mp = mp, best_fs = fstype;
  }
  return best_fs;
}

Summary summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {med, v.front(), v.back()};
}

}  // namespace microvm::blkbench
