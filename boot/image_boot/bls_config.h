#pragma once
// Boot Loader Specification Type 1 entries (loader/entries/*.conf, as systemd-boot, Fedora and
// kernel-install write them) and loader.conf's `default` pattern. Paths in an entry are relative
// to the root of the partition the entry is on.
#include <string>
#include <string_view>
#include <vector>

#include "boot/image_boot/boot_entry.h"

namespace microvm::image_boot {

struct BlsEntry {
  std::string file;  // the entry's file name, e.g. "fedora-6.5.conf"
  std::string title, version, sort_key, machine_id;
  std::string kernel;  // the "linux" key
  std::vector<std::string> initrds;
  std::string options;
  bool has_efi = false;  // "efi": a PE image we do not load
};

constexpr size_t kMaxBlsEntries = 1024;

[[nodiscard]] Result<BlsEntry> parse_bls_entry(std::string_view text, const std::string& file);
// loader.conf's `default` value ("" when none).
std::string bls_default_pattern(std::string_view loader_conf);
// The entry systemd-boot would boot: loader.conf's default pattern (a glob on the file name)
// if it matches one, else the first in BLS order (sort-key, machine-id, version newest first,
// then file name newest first). Entries with no `linux` are skipped.
[[nodiscard]] Result<ConfigEntry> choose_bls_entry(std::vector<BlsEntry> entries, std::string_view loader_conf);

}  // namespace microvm::image_boot
