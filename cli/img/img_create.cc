#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "cli/img/img_internal.h"
#include "cli/img/sizes.h"
#include "devices/block/disk_format.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_create.h"

namespace microvm::img {

namespace {

Result<uint32_t> log2_exact(uint64_t v, const char* what) {
  if (v == 0 || (v & (v - 1))) return fail(EINVAL, std::string(what) + " must be a power of two");
  uint32_t b = 0;
  while ((1ull << b) < v) ++b;
  return b;
}

}  // namespace

// Shared with convert: -o options for a new qcow2 image.
Result<qcow2::CreateOptions> qcow2_create_options(const std::string& o) {
  qcow2::CreateOptions co;
  auto kv = TRY(parse_o(o));
  for (auto& [k, v] : kv) {
    if (k == "cluster_size") {
      uint64_t cs = TRY(parse_size(v));
      co.cluster_bits = TRY(log2_exact(cs, "cluster_size"));
      if (co.cluster_bits < 9 || co.cluster_bits > 21) return fail(EINVAL, "cluster_size must be between 512 and 2M");
    } else if (k == "compat") {
      if (v == "0.10" || v == "v2")
        co.version = 2;
      else if (v == "1.1" || v == "v3")
        co.version = 3;
      else
        return fail(EINVAL, "compat must be 0.10 or 1.1");
    } else if (k == "refcount_bits") {
      uint64_t bits = TRY(parse_size(v));
      co.refcount_order = TRY(log2_exact(bits, "refcount_bits"));
      if (co.refcount_order > 6) return fail(EINVAL, "refcount_bits must be at most 64");
    } else if (k == "lazy_refcounts") {
      if (v == "on")
        co.lazy_refcounts = true;
      else if (v == "off")
        co.lazy_refcounts = false;
      else
        return fail(EINVAL, "lazy_refcounts must be on or off");
    } else if (k == "compression_type") {
      if (v == "zlib")
        co.compression_type = qcow2::CompressionType::kZlib;
      else if (v == "zstd")
        co.compression_type = qcow2::CompressionType::kZstd;
      else
        return fail(EINVAL, "compression_type must be zlib or zstd");
    } else if (k == "preallocation") {
      if (v == "off")
        co.preallocation = qcow2::Preallocation::kOff;
      else if (v == "metadata")
        co.preallocation = qcow2::Preallocation::kMetadata;
      else if (v == "falloc")
        co.preallocation = qcow2::Preallocation::kFalloc;
      else if (v == "full")
        co.preallocation = qcow2::Preallocation::kFull;
      else
        return fail(EINVAL, "preallocation must be off, metadata, falloc or full");
    } else if (k == "backing_file") {
      co.backing_file = v;
    } else if (k == "backing_fmt") {
      co.backing_format = v;
    } else {
      return fail(EINVAL, "unsupported qcow2 option '" + k +
                              "' (cluster_size, compat, refcount_bits, lazy_refcounts, compression_type, "
                              "preallocation, backing_file, backing_fmt)");
    }
  }
  if (co.preallocation != qcow2::Preallocation::kOff && !co.backing_file.empty())
    return fail(EINVAL, "preallocation and a backing file cannot be used together");
  if (co.version == 2 && co.refcount_order != 4) return fail(EINVAL, "compat=0.10 requires refcount_bits=16");
  if (co.version == 2 && co.lazy_refcounts) return fail(EINVAL, "lazy_refcounts=on requires compat=1.1");
  if (co.version == 2 && co.compression_type != qcow2::CompressionType::kZlib)
    return fail(EINVAL, "compression_type=zstd requires compat=1.1");
  return co;
}

Result<qcow2::Preallocation> raw_create_options(const std::string& o) {
  auto p = qcow2::Preallocation::kOff;
  for (auto& [k, v] : TRY(parse_o(o))) {
    if (k != "preallocation") return fail(EINVAL, "unsupported raw option '" + k + "' (preallocation)");
    if (v == "off")
      p = qcow2::Preallocation::kOff;
    else if (v == "falloc")
      p = qcow2::Preallocation::kFalloc;
    else if (v == "full")
      p = qcow2::Preallocation::kFull;
    else
      return fail(EINVAL, "preallocation for raw images must be off, falloc or full");
  }
  return p;
}

Result<void> preallocate_raw(int fd, uint64_t size, qcow2::Preallocation p) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return fail_errno("truncate");
  if (p == qcow2::Preallocation::kFalloc && size) {
    if (int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size))) return fail(rc, "fallocate");
  } else if (p == qcow2::Preallocation::kFull) {
    std::vector<uint8_t> zero(std::min<uint64_t>(size, 4 << 20), 0);
    for (uint64_t done = 0; done < size;) {
      uint64_t n = std::min<uint64_t>(zero.size(), size - done);
      if (int rc = pwrite_full(fd, zero.data(), n, done)) return fail(-rc, "write zeroes");
      done += n;
    }
  }
  return {};
}

int cmd_create(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-b", "-F", "-o"}, {"-q"});
  if (!a) return usage_error("create", a.error().what);
  if (!a->has("-f")) return usage_error("create", "-f raw|qcow2 is required");
  if (auto ok = check_format_options(*a, {"-f", "-F"}); !ok) return usage_error("create", ok.error().what);
  auto fmt = parse_disk_format(a->get("-f"));
  if (a->positional.empty() || a->positional.size() > 2) return usage_error("create", "expected FILE [SIZE]");
  const std::string& path = a->positional[0];
  std::optional<uint64_t> size;
  if (a->positional.size() == 2) {
    auto s = parse_size(a->positional[1]);
    if (!s) return usage_error("create", s.error().what);
    if (*s % 512) return usage_error("create", "size must be a multiple of 512");
    size = *s;
  }
  if (*fmt == DiskFormat::kRaw) {
    if (a->has("-b") || a->has("-F")) return usage_error("create", "raw images take no -b or -F options");
    auto prealloc = raw_create_options(a->get("-o"));
    if (!prealloc) return usage_error("create", prealloc.error().what);
    if (!size) return usage_error("create", "SIZE is required");
    auto out = OutputFile::create(path, {});
    if (!out) return failure("create: " + out.error().what);
    if (auto r = preallocate_raw((*out)->fd(), *size, *prealloc); !r)
      return failure("create " + path + ": " + r.error().what);
    if (auto r = (*out)->commit(); !r) return failure("create: " + r.error().what);
    if (!a->has("-q"))
      std::printf("Formatting '%s', fmt=raw size=%llu\n", path.c_str(), static_cast<unsigned long long>(*size));
    return 0;
  }
  auto co = qcow2_create_options(a->get("-o"));
  if (!co) return usage_error("create", co.error().what);
  if (a->has("-b")) co->backing_file = a->get("-b");
  if (a->has("-F")) co->backing_format = a->get("-F");
  if (!co->backing_file.empty() && co->preallocation != qcow2::Preallocation::kOff)
    return usage_error("create", "preallocation and a backing file cannot be used together");
  if (co->backing_file.empty() && !size) return usage_error("create", "SIZE is required");
  std::set<FileId> backing_files;
  if (!co->backing_file.empty()) {
    if (co->backing_format.empty()) return usage_error("create", "give the backing file's format with -F raw|qcow2");
    auto bf = parse_disk_format(co->backing_format);
    if (!bf) return usage_error("create", bf.error().what);
    // Relative backing names are relative to the new image, as in QEMU.
    std::string resolved = co->backing_file;
    if (resolved[0] != '/') {
      auto slash = path.rfind('/');
      if (slash != std::string::npos) resolved = path.substr(0, slash) + "/" + resolved;
    }
    DiskOptions chain;
    chain.allow_image_backing = true;  // the user named this file; its own chain is only sized
    chain.lock = false;
    auto b = qcow2::open_sync_disk(resolved, *bf, chain);
    if (!b) return failure("create: backing file: " + b.error().what);
    if (!size) size = (*b)->size();
    // The new image must not replace a file its own backing chain reads.
    auto files = chain_files(**b);
    if (!files) return failure("create: backing file: " + files.error().what);
    backing_files = std::move(*files);
  }
  co->size = *size;
  auto out = OutputFile::create(path, backing_files);
  if (!out) return failure("create: " + out.error().what);
  if (auto r = qcow2::create_image((*out)->temp_path(), *co); !r) return failure(r.error().what);
  if (auto r = (*out)->commit(); !r) return failure("create: " + r.error().what);
  if (!a->has("-q"))
    std::printf("Formatting '%s', fmt=qcow2 cluster_size=%llu compression_type=zlib size=%llu%s%s%s%s\n", path.c_str(),
                1ull << co->cluster_bits, static_cast<unsigned long long>(*size),
                co->backing_file.empty() ? "" : " backing_file=", co->backing_file.c_str(),
                co->backing_format.empty() ? "" : " backing_fmt=", co->backing_format.c_str());
  return 0;
}

}  // namespace microvm::img
