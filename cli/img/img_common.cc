#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "cli/img/img_internal.h"
#include "devices/block/disk_format.h"
#include "devices/block/file_io.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_format.h"

namespace microvm::img {

void print_error(const std::string& msg) { std::fprintf(stderr, "microvm img: %s\n", msg.c_str()); }

int usage_error(const std::string& cmd, const std::string& msg) {
  print_error(msg);
  std::fprintf(stderr, "Try 'microvm img %s --help'.\n", cmd.c_str());
  return kExitUsage;
}

int failure(const std::string& msg) {
  print_error(msg);
  return kExitFailure;
}

Result<void> check_format_options(const Args& a, const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    if (a.has(k)) TRY(parse_disk_format(a.get(k)));
  }
  return {};
}

Result<Args> scan_args(int argc, char** argv, const std::vector<std::string>& with_value,
                       const std::vector<std::string>& flags, bool allow_negative_positional) {
  Args a;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (only_positional || s.size() < 2 || s[0] != '-') {
      a.positional.push_back(s);
      continue;
    }
    if (s == "--") {
      only_positional = true;
      continue;
    }
    if (allow_negative_positional && std::isdigit(static_cast<unsigned char>(s[1]))) {
      a.positional.push_back(s);
      continue;
    }
    std::string key = s, value;
    if (auto eq = s.find('='); s.rfind("--", 0) == 0 && eq != std::string::npos) {
      key = s.substr(0, eq);
      value = s.substr(eq + 1);
    }
    if (std::find(with_value.begin(), with_value.end(), key) != with_value.end()) {
      if (value.empty()) {
        if (i + 1 >= argc) return fail(EINVAL, "option " + key + " needs a value");
        value = argv[++i];
      }
      if (key == "-o" && a.has("-o")) value = a.opts["-o"] + "," + value;
      a.opts[key] = value;
    } else if (std::find(flags.begin(), flags.end(), key) != flags.end()) {
      a.opts[key] = "";
    } else {
      return fail(EINVAL, "unknown option '" + s + "'");
    }
  }
  return a;
}

Result<DiskFormat> probe_format(const std::string& path) {
  auto fd = TRY(open_regular_or_block(path, O_RDONLY));
  uint8_t m[4] = {};
  ssize_t n = ::pread(fd.get(), m, 4, 0);
  return n == 4 && qcow2::be32(m) == qcow2::kMagic ? DiskFormat::kQcow2 : DiskFormat::kRaw;
}

Result<DiskFormat> format_arg(const Args& a, const char* key, const std::string& path) {
  if (a.has(key)) return parse_disk_format(a.get(key));
  return probe_format(path);
}

Result<std::map<std::string, std::string>> parse_o(const std::string& s) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= s.size() && !s.empty()) {
    size_t comma = s.find(',', start);
    std::string kv = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!kv.empty()) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) return fail(EINVAL, "invalid -o option '" + kv + "' (expected key=value)");
      out[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void Progress::update(uint64_t done, uint64_t total) {
  if (!enabled_ || total == 0) return;
  int pct = static_cast<int>(done * 100 / total) * 100;  // whole percents, as qemu-img
  if (pct == last_) return;
  last_ = pct;
  std::printf("    (%d.%02d/100%%)\r", pct / 100, pct % 100);
  std::fflush(stdout);
}

void Progress::finish() {
  if (!enabled_) return;
  std::printf("    (100.00/100%%)\n");
  std::fflush(stdout);
}

}  // namespace microvm::img
