#pragma once
// Shared pieces of the img subcommands: a small argument scanner, exit codes, format probing
// for read-only inspection, safe output files, and the progress bar.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "devices/block/disk_format.h"
#include "devices/block/disk_options.h"
#include "devices/block/qcow2/qcow2_create.h"

namespace microvm {
class SyncDisk;
}

namespace microvm::img {

struct Args {
  std::map<std::string, std::string> opts;  // "-f" -> "qcow2", "--json" -> ""
  std::vector<std::string> positional;
  bool has(const std::string& k) const { return opts.count(k) != 0; }
  std::string get(const std::string& k, const std::string& dflt = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? dflt : it->second;
  }
};

// `with_value` lists the options that take an argument; anything else starting with '-' is a flag.
// Unknown options are errors (listed in `known`). Negative sizes ("-1G") after "--" or as the
// last positional of resize are handled by the caller through `allow_negative_positional`.
[[nodiscard]] Result<Args> scan_args(int argc, char** argv, const std::vector<std::string>& with_value,
                                     const std::vector<std::string>& flags, bool allow_negative_positional = false);

// Exit codes of every subcommand (check adds qemu-img's 2 corruptions, 3 leaks, 63 no checks).
constexpr int kExitFailure = 1;  // the command ran and failed (I/O error, image in use, ...)
constexpr int kExitUsage = 2;    // bad arguments: nothing was opened

// Bad arguments: prints `msg` and a pointer to `microvm img CMD --help`; returns kExitUsage.
int usage_error(const std::string& cmd, const std::string& msg);
// A runtime failure: prints `msg`; returns kExitFailure.
int failure(const std::string& msg);
// Checks that the values of the format options present in `a` (e.g. -f, -O, -F) are format
// names, so a typo is a usage error before anything is opened.
[[nodiscard]] Result<void> check_format_options(const Args& a, const std::vector<std::string>& keys);

// Reads the first bytes: "qcow2" if the qcow2 magic is there, else "raw". Only for read-only use.
[[nodiscard]] Result<DiskFormat> probe_format(const std::string& path);
[[nodiscard]] Result<DiskFormat> format_arg(const Args& a, const char* key, const std::string& path);

// "-o cluster_size=64k,compat=0.10,..." into a map.
[[nodiscard]] Result<std::map<std::string, std::string>> parse_o(const std::string& s);

// A file by identity (device, inode), not by name: symlinks and hard links compare equal.
using FileId = std::pair<dev_t, ino_t>;

// Every file an opened image reads from: the image itself and its whole backing chain.
[[nodiscard]] Result<std::set<FileId>> chain_files(const SyncDisk& disk);

// The output of create/convert. The new image is written under a temporary name in OUT's
// directory and renamed over OUT by commit(), so a command that fails leaves OUT as it was
// (and creates nothing). An existing OUT is locked exclusively first, as microvm run would lock
// it, and kept locked until the rename: an image in use is refused, naming its holder.
// A symlink OUT replaces its target; other hard links to an existing OUT keep the old contents.
class OutputFile {
 public:
  // Refuses OUT when it is one of `inputs` (through any name), when it exists and is not a
  // regular file, and when another process uses it.
  [[nodiscard]] static Result<std::unique_ptr<OutputFile>> create(const std::string& out,
                                                                  const std::set<FileId>& inputs);
  ~OutputFile();  // removes the temporary file unless committed (so do SIGINT, SIGTERM, SIGHUP)
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  const std::string& temp_path() const { return temp_; }
  int fd() const { return fd_.get(); }  // the temporary file, locked exclusively
  // Syncs the file, renames it over OUT and syncs the directory.
  [[nodiscard]] Result<void> commit();

 private:
  OutputFile() = default;
  std::string target_, temp_;
  Fd fd_, old_;  // old_: the existing OUT, holding its lock until the rename
  bool committed_ = false;
  bool cleanup_armed_ = false;  // SIGINT/SIGTERM/SIGHUP remove the temporary file
};

class Progress {
 public:
  Progress(bool enabled) : enabled_(enabled) {}
  void update(uint64_t done, uint64_t total);
  void finish();

 private:
  bool enabled_;
  int last_ = -1;
};

int cmd_create(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_check(int argc, char** argv);
int cmd_resize(int argc, char** argv);
int cmd_convert(int argc, char** argv);
// Subcommands added for qemu-img parity (one file each).
int cmd_info_chain(int argc, char** argv);
int cmd_map(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_check_repair(int argc, char** argv);
int cmd_commit(int argc, char** argv);
int cmd_rebase(int argc, char** argv);
int cmd_measure(int argc, char** argv);
int cmd_amend(int argc, char** argv);
int cmd_dd(int argc, char** argv);
int cmd_snapshot(int argc, char** argv);

void print_error(const std::string& msg);

// `-o preallocation=off|falloc|full` for a raw output (create, convert), and sizing a new raw
// file that way: falloc reserves the blocks, full writes zeroes (img_create.cc).
[[nodiscard]] Result<qcow2::Preallocation> raw_create_options(const std::string& o);
[[nodiscard]] Result<void> preallocate_raw(int fd, uint64_t size, qcow2::Preallocation p);

}  // namespace microvm::img
