#include "boot/image_boot/boot_search.h"

#include <string.h>

#include <algorithm>
#include <optional>

#include "boot/image_boot/bls_config.h"
#include "boot/image_boot/config_text.h"
#include "boot/image_boot/ext_volume.h"
#include "boot/image_boot/extlinux_config.h"
#include "boot/image_boot/fat_volume.h"
#include "boot/image_boot/grub_config.h"
#include "boot/image_boot/uki.h"

namespace microvm::image_boot {
namespace {

struct Volume {
  unsigned partition = 0;
  std::string part_uuid;
  bool esp = false;
  std::unique_ptr<SliceReader> reader;
  std::unique_ptr<FileTree> fs;
};

std::string where(const Volume& v) {
  std::string s = v.partition ? "partition " + std::to_string(v.partition) : std::string("the whole disk");
  return s + " (" + v.fs->fs_type() + ")";
}

std::string lower_copy(std::string s) { return lower(s); }

// Reads a config file on `v`: nullopt when it is not there.
Result<std::optional<std::string>> read_optional(Volume& v, const std::string& path) {
  auto present = is_file(*v.fs, path);
  if (!present) return std::unexpected(present.error().context(where(v)));
  if (!*present) return std::optional<std::string>{};
  auto text = read_text(*v.fs, path, kMaxConfigBytes);
  if (!text) return std::unexpected(text.error().context(where(v)));
  return std::optional<std::string>(std::move(*text));
}

class Search {
 public:
  Search(std::vector<Volume>& vols, const FindOptions& opts) : vols_(vols), opts_(opts) {}

  // The volume a FileRef's device names, relative to the config's own volume.
  Result<Volume*> device(Volume& self, const FileRef& f) {
    const std::string& d = f.device;
    if (d.empty()) return &self;
    auto pick = [&](auto pred, const std::string& what) -> Result<Volume*> {
      for (auto& v : vols_)
        if (pred(v)) return &v;
      return fail(ENOENT, "no file system in the image has " + what + " (needed for " + f.path + ")");
    };
    if (d.starts_with("part")) {
      unsigned n = static_cast<unsigned>(std::stoul(d.substr(4)));
      return pick([&](Volume& v) { return v.partition == n; }, "partition number " + std::to_string(n));
    }
    if (d.starts_with("uuid="))
      return pick([&](Volume& v) { return lower_copy(v.fs->fs_uuid()) == lower_copy(d.substr(5)); },
                  "UUID " + d.substr(5));
    if (d.starts_with("label="))
      return pick([&](Volume& v) { return v.fs->label() == d.substr(6); }, "label " + d.substr(6));
    if (d.starts_with("file=")) {
      for (auto& v : vols_) {
        auto r = is_file(*v.fs, d.substr(5));
        if (r && *r) return &v;
      }
      return fail(ENOENT, "no file system in the image holds " + d.substr(5));
    }
    return fail(EINVAL, "GRUB device (" + d.substr(d.find(':') + 1) + ") is not one microvm can map to the image");
  }

  // A file a configuration names, found (not read yet).
  struct Located {
    FoundFile file;
    Volume* vol = nullptr;
    Node node;
  };

  Result<Located> locate(Volume& self, const FileRef& f, uint64_t limit, bool try_boot_prefix = false) {
    Volume* v = TRY(device(self, f));
    std::string path = f.path;
    if (path.empty() || path.front() != '/') path = "/" + path;
    auto node = resolve_path(*v->fs, path);
    if (!node && node.error().code == ENOENT && try_boot_prefix) {
      path = "/boot" + path;
      node = resolve_path(*v->fs, path);
    }
    if (!node) return std::unexpected(node.error().context(where(*v)));
    if (node->kind != Node::Kind::kFile) return fail(EISDIR, where(*v) + ": '" + path + "' is not a regular file");
    if (node->size > limit)
      return fail(EFBIG, where(*v) + ": '" + path + "' is " + std::to_string(node->size) +
                             " bytes, more than the limit of " + std::to_string(limit));
    return Located{FoundFile{v->partition, v->fs->fs_type(), v->fs->fs_uuid(), path, node->size}, v, *node};
  }

  Result<void> append_bytes(const Located& l, std::vector<std::byte>& into) {
    auto bytes = l.vol->fs->read(l.node);
    if (!bytes) return std::unexpected(bytes.error().context(where(*l.vol) + ": " + l.file.path));
    if (bytes->size() != l.node.size) return fail(EIO, where(*l.vol) + ": '" + l.file.path + "': short read");
    if (into.empty())
      into = std::move(*bytes);  // the kernel, or the first initrd: no copy
    else
      into.insert(into.end(), bytes->begin(), bytes->end());
    return {};
  }

  // Appends a file's runs to `into` (at into->size); false when its file system cannot map it.
  // Every run is checked against the file and the partition: the file system's own bounds
  // come from the (untrusted) superblock.
  Result<bool> append_runs(const Located& l, DiskMap& into) {
    auto runs = l.vol->fs->map(l.node);
    if (!runs) return std::unexpected(runs.error().context(where(*l.vol) + ": " + l.file.path));
    if (!*runs) return false;
    const uint64_t part_size = l.vol->reader->size();
    uint64_t next = 0;
    for (const auto& r : **runs) {
      if (r.file_offset < next || r.file_offset > l.node.size || r.length > l.node.size - r.file_offset ||
          r.image_offset > part_size || r.length > part_size - r.image_offset)
        return fail(EIO, where(*l.vol) + ": '" + l.file.path + "': a block run lies outside the file or partition");
      next = r.file_offset + r.length;
      if (r.length)
        into.runs.push_back(FileRun{into.size + r.file_offset, l.vol->reader->start() + r.image_offset, r.length});
    }
    into.size += l.node.size;
    return true;
  }

  // With opts.load: the kernel's and the initrds' contents, mapped (opts.map) where every file
  // of the group can be, else read.
  Result<void> load(BootPlan& p, const Located& kernel, const std::vector<Located>& initrds) {
    if (opts_.map) {
      DiskMap k;
      if (TRY(append_runs(kernel, k))) p.kernel_map = std::move(k);
      DiskMap i;
      bool all = true;
      for (const auto& l : initrds) all = all && TRY(append_runs(l, i));
      if (all && !initrds.empty()) p.initrd_map = std::move(i);
    }
    if (!p.kernel_map) TRY(append_bytes(kernel, p.kernel_bytes));
    if (!p.initrd_map)
      for (const auto& l : initrds) TRY(append_bytes(l, p.initrd_bytes));
    return {};
  }

  Result<BootPlan> finish(Volume& self, std::string rule, const std::string& config_path, ConfigEntry e,
                          bool try_boot_prefix = false) {
    BootPlan p;
    p.rule = std::move(rule);
    p.config = FoundFile{self.partition, self.fs->fs_type(), self.fs->fs_uuid(), config_path, 0};
    p.title = e.title;
    Located kernel = TRY(locate(self, e.kernel, opts_.max_kernel_bytes, try_boot_prefix));
    p.kernel = kernel.file;
    uint64_t initrd_total = 0;
    std::vector<Located> initrds;
    for (const auto& i : e.initrds) {
      initrds.push_back(TRY(locate(self, i, opts_.max_initrd_bytes - initrd_total, try_boot_prefix)));
      initrd_total += initrds.back().file.size;
      p.initrds.push_back(initrds.back().file);
    }
    if (opts_.load) TRY(load(p, kernel, initrds));
    p.options = e.options;
    if (p.initrds.empty()) rewrite_root(p);
    return p;
  }

  // Without an initramfs nothing resolves root=UUID= or LABEL= (only the initramfs's blkid
  // does); the kernel itself understands PARTUUID=. So name the partition holding that file system.
  void rewrite_root(BootPlan& p) {
    std::vector<std::string> words;
    size_t i = 0;
    const std::string& o = p.options;
    while (i < o.size()) {
      size_t e = o.find(' ', i);
      if (e == std::string::npos) e = o.size();
      if (e > i) words.push_back(o.substr(i, e - i));
      i = e + 1;
    }
    for (auto& w : words) {
      bool by_uuid = w.starts_with("root=UUID="), by_label = w.starts_with("root=LABEL=");
      if (!by_uuid && !by_label) continue;
      std::string key = w.substr(by_uuid ? 10 : 11);
      Volume* found = nullptr;
      for (auto& v : vols_)
        if (by_uuid ? lower_copy(v.fs->fs_uuid()) == lower_copy(key) : v.fs->label() == key) found = &v;
      if (!found) {
        p.notes.push_back(
            w + " names no file system in this image and there is no initrd: the kernel will not find its root");
        continue;
      }
      std::string repl = found->partition ? "root=PARTUUID=" + found->part_uuid : std::string("root=/dev/vda");
      p.notes.push_back(w + " rewritten to " + repl + ": there is no initrd, and the kernel alone cannot resolve " +
                        (by_uuid ? "UUID=" : "LABEL="));
      w = repl;
    }
    std::string joined;
    for (const auto& w : words) joined += (joined.empty() ? "" : " ") + w;
    p.options = joined;
  }

  ReadConfigFile reader_for(Volume& v) {
    return
        [&v](const std::string& path) { return read_optional(v, path.empty() || path[0] != '/' ? "/" + path : path); };
  }
  ReadDeviceFile device_reader_for(Volume& self) {
    return [this, &self](const FileRef& f) -> Result<std::optional<std::string>> {
      Volume* v = TRY(device(self, f));
      return read_optional(*v, f.path.empty() || f.path[0] != '/' ? "/" + f.path : f.path);
    };
  }

  // Type 2 entries: the newest /EFI/Linux/*.efi (by version in the file name, as systemd-boot
  // sorts them) on any volume. Its .linux, .initrd and .cmdline sections are the whole entry.
  Result<std::optional<BootPlan>> uki() {
    for (auto& v : vols_) {
      const std::string dir = "/EFI/Linux";
      auto node = resolve_path(*v.fs, dir);
      if (!node || node->kind != Node::Kind::kDir) continue;
      auto names = list_dir(*v.fs, dir);
      if (!names) return std::unexpected(names.error().context(where(v)));
      std::vector<std::string> efis;
      for (const auto& n : *names)
        if (lower_copy(n).ends_with(".efi") && TRY(is_file(*v.fs, dir + "/" + n))) efis.push_back(n);
      if (efis.empty()) continue;
      std::sort(efis.begin(), efis.end(),
                [](const std::string& a, const std::string& b) { return ::strverscmp(a.c_str(), b.c_str()) > 0; });
      return std::optional<BootPlan>(TRY(load_uki(v, dir + "/" + efis.front())));
    }
    return std::optional<BootPlan>{};
  }

  Result<BootPlan> load_uki(Volume& v, const std::string& path) {
    // The whole file is read: the sections are most of it, and the search must say their sizes.
    auto bytes = read_file(*v.fs, path, opts_.max_kernel_bytes + opts_.max_initrd_bytes + (1 << 20));
    if (!bytes) return std::unexpected(bytes.error().context(where(v)));
    auto parts = find_uki_parts(*bytes, bytes->size());
    if (!parts) return std::unexpected(parts.error().context(where(v) + ": " + path));
    auto section = [&](const PeSection& s) { return std::span<const std::byte>(*bytes).subspan(s.offset, s.size); };
    BootPlan p;
    p.rule = "uki";
    p.config = FoundFile{v.partition, v.fs->fs_type(), v.fs->fs_uuid(), path, bytes->size(), ""};
    std::string name = parts->osrel.size
                           ? os_release_name(std::string_view(
                                 reinterpret_cast<const char*>(section(parts->osrel).data()), parts->osrel.size))
                           : "";
    p.title = name.empty() ? path.substr(path.rfind('/') + 1) : name;
    if (parts->linux_.size > opts_.max_kernel_bytes)
      return fail(EFBIG, where(v) + ": " + path + ": .linux section is " + std::to_string(parts->linux_.size) +
                             " bytes, more than the limit of " + std::to_string(opts_.max_kernel_bytes));
    if (parts->initrd.size > opts_.max_initrd_bytes)
      return fail(EFBIG, where(v) + ": " + path + ": .initrd section is " + std::to_string(parts->initrd.size) +
                             " bytes, more than the limit of " + std::to_string(opts_.max_initrd_bytes));
    p.kernel = FoundFile{v.partition, v.fs->fs_type(), v.fs->fs_uuid(), path, parts->linux_.size, ".linux"};
    if (parts->initrd.size)
      p.initrds.push_back(
          FoundFile{v.partition, v.fs->fs_type(), v.fs->fs_uuid(), path, parts->initrd.size, ".initrd"});
    if (parts->cmdline.size)
      p.options = uki_cmdline(section(parts->cmdline));
    else
      p.notes.push_back(path + " has no .cmdline section: the command line is only what --cmdline/--append give");
    if (opts_.load) {
      auto k = section(parts->linux_);
      p.kernel_bytes.assign(k.begin(), k.end());
      auto i = section(parts->initrd);
      p.initrd_bytes.assign(i.begin(), i.end());
    }
    if (p.initrds.empty()) rewrite_root(p);
    return p;
  }

  // GRUB on an EFI system partition: /EFI/<vendor>/grub.cfg, often a stub that searches for the
  // root file system and hands over to its grub.cfg (`configfile`), which is followed.
  Result<std::optional<BootPlan>> esp_grub() {
    for (auto& v : vols_) {
      if (v.fs->fs_type() != "vfat") continue;
      auto node = resolve_path(*v.fs, "/EFI");
      if (!node || node->kind != Node::Kind::kDir) continue;
      auto names = list_dir(*v.fs, "/EFI");
      if (!names) return std::unexpected(names.error().context(where(v)));
      // BOOT (the removable-media path) last: a vendor's directory is what its NVRAM entry names.
      std::stable_partition(names->begin(), names->end(), [](const std::string& n) { return lower_copy(n) != "boot"; });
      for (const auto& n : *names) {
        std::string path = "/EFI/" + n + "/grub.cfg";
        auto text = TRY(read_optional(v, path));
        if (!text) continue;
        auto entry = parse_grub_config(*text, path, reader_for(v), device_reader_for(v));
        if (!entry) return std::unexpected(entry.error().context(where(v)));
        return std::optional<BootPlan>(TRY(finish(v, "grub", path, *entry)));
      }
    }
    return std::optional<BootPlan>{};
  }

  Result<std::optional<BootPlan>> bls() {
    for (auto& v : vols_) {
      for (std::string base : {"", "/boot"}) {
        std::string dir = base + "/loader/entries";
        auto node = resolve_path(*v.fs, dir);
        if (!node || node->kind != Node::Kind::kDir) continue;
        auto names = list_dir(*v.fs, dir);
        if (!names) return std::unexpected(names.error().context(where(v)));
        std::vector<BlsEntry> entries;
        for (const auto& n : *names) {
          if (!n.ends_with(".conf")) continue;
          if (entries.size() >= kMaxBlsEntries) return fail(E2BIG, where(v) + ": more than 1024 entries in " + dir);
          auto text = TRY(read_optional(v, dir + "/" + n));
          if (!text) continue;
          entries.push_back(TRY(parse_bls_entry(*text, n)));
        }
        if (entries.empty()) continue;
        auto loader_conf = TRY(read_optional(v, base + "/loader/loader.conf"));
        auto entry = choose_bls_entry(std::move(entries), loader_conf.value_or(""));
        if (!entry) return std::unexpected(entry.error().context(where(v) + ": " + dir));
        // Paths are relative to the partition the entries are on; with /boot inside the root
        // file system they may still be written as if /boot were its own partition.
        return std::optional<BootPlan>(TRY(finish(v, "bls", dir + "/" + entry->source, *entry, !base.empty())));
      }
    }
    return std::optional<BootPlan>{};
  }

  template <class Parse>
  Result<std::optional<BootPlan>> config_rule(const char* rule, std::initializer_list<const char*> paths, Parse parse) {
    for (auto& v : vols_) {
      for (const char* path : paths) {
        auto text = TRY(read_optional(v, path));
        if (!text) continue;
        auto entry = parse(*text, std::string(path), reader_for(v), device_reader_for(v));
        if (!entry) return std::unexpected(entry.error().context(where(v)));
        return std::optional<BootPlan>(TRY(finish(v, rule, path, *entry)));
      }
    }
    return std::optional<BootPlan>{};
  }

  // The file a symlink names (one level, as Debian makes them), so the plan shows the
  // versioned file; the path itself when it is not a link.
  Result<std::string> link_target(Volume& v, const std::string& path) {
    Node n = TRY(resolve_path(*v.fs, path, false));
    if (n.kind != Node::Kind::kSymlink) return path;
    std::string target = TRY(v.fs->read_link(n));
    if (target.empty()) return path;
    return target.front() == '/' ? target : join_path(path, target);
  }

  Result<std::optional<BootPlan>> debian_symlinks() {
    for (auto& v : vols_) {
      for (std::string base : {"", "/boot"}) {
        auto has_kernel = is_file(*v.fs, base + "/vmlinuz");
        if (!has_kernel) return std::unexpected(has_kernel.error().context(where(v)));
        if (!*has_kernel) continue;
        ConfigEntry e;
        e.title = "Debian's " + base + "/vmlinuz";
        auto kernel_node_path = base + "/vmlinuz";
        e.kernel.path = TRY(link_target(v, kernel_node_path));
        auto has_initrd = TRY(is_file(*v.fs, base + "/initrd.img"));
        if (has_initrd) e.initrds.push_back(FileRef{"", TRY(link_target(v, base + "/initrd.img"))});
        e.options = "root=UUID=" + v.fs->fs_uuid() + " ro";
        return std::optional<BootPlan>(TRY(finish(v, "debian-symlinks", kernel_node_path, e)));
      }
    }
    return std::optional<BootPlan>{};
  }

 private:
  std::vector<Volume>& vols_;
  const FindOptions& opts_;
};

}  // namespace

Result<BootPlan> find_boot(ImageReader& disk, const FindOptions& options) {
  auto table = TRY(read_partition_table(disk));
  std::vector<Volume> vols;
  std::vector<std::string> skipped;
  auto add = [&](unsigned number, uint64_t offset, uint64_t size, std::string part_uuid, bool esp) -> Result<void> {
    Volume v{number, std::move(part_uuid), esp, std::make_unique<SliceReader>(disk, offset, size), nullptr};
    Result<std::unique_ptr<FileTree>> fs = fail(EINVAL, "");
    if (ExtVolume::probe(*v.reader))
      fs = ExtVolume::open(*v.reader);
    else if (FatVolume::probe(*v.reader))
      fs = FatVolume::open(*v.reader);
    else {
      skipped.push_back(number ? "partition " + std::to_string(number) : "the whole disk");
      return {};
    }
    if (!fs) {
      skipped.push_back((number ? "partition " + std::to_string(number) : std::string("the whole disk")) + ": " +
                        fs.error().what);
      return {};
    }
    v.fs = std::move(*fs);
    vols.push_back(std::move(v));
    return {};
  };
  if (table.kind == TableKind::kNone) TRY(add(0, 0, disk.size(), "", false));
  for (const auto& p : table.partitions) TRY(add(p.number, p.offset, p.size, p.part_uuid, p.esp));
  if (vols.empty()) {
    std::string why =
        std::string("partition table: ") + table_kind_name(table.kind) + "; no ext2/3/4 or FAT file system found";
    if (!skipped.empty()) {
      why += " (looked at";
      for (const auto& s : skipped) why += " " + s + ";";
      why.back() = ')';
    }
    return fail(ENOENT, why + ". microvm reads ext2/3/4 and FAT only: give --kernel");
  }

  Search s(vols, options);
  std::optional<BootPlan> plan = TRY(s.bls());
  if (!plan) plan = TRY(s.uki());
  if (!plan)
    plan =
        TRY(s.config_rule("grub", {"/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg"},
                          parse_grub_config));
  if (!plan) plan = TRY(s.esp_grub());
  if (!plan)
    plan =
        TRY(s.config_rule("extlinux",
                          {"/boot/extlinux/extlinux.conf", "/extlinux/extlinux.conf", "/boot/extlinux.conf",
                           "/extlinux.conf", "/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg", "/syslinux.cfg"},
                          [](std::string_view text, const std::string& path, const ReadConfigFile& read,
                             const ReadDeviceFile&) { return parse_extlinux_config(text, path, read); }));
  if (!plan) plan = TRY(s.debian_symlinks());
  if (!plan)
    return fail(ENOENT,
                "no boot entry found: no loader/entries/*.conf, EFI/Linux/*.efi, grub.cfg, extlinux.conf or "
                "/vmlinuz on " +
                    std::to_string(vols.size()) + " ext2/3/4 or FAT file system(s); give --kernel");
  plan->table = table.kind;
  return std::move(*plan);
}

std::string compose_cmdline(const std::string& entry_options, const std::string& replace, const std::string& append) {
  std::string line;
  if (!replace.empty()) {
    line = replace;
  } else {
    line = entry_options;
    bool has_console = line.starts_with("console=") || line.find(" console=") != std::string::npos;
    if (!has_console) line += (line.empty() ? "" : " ") + std::string("console=ttyS0");
  }
  if (!append.empty()) line += (line.empty() ? "" : " ") + append;
  return line;
}

std::string describe_plan(const BootPlan& p, const std::string& cmdline) {
  auto file = [](const FoundFile& f) {
    std::string s = f.partition ? "partition " + std::to_string(f.partition) : std::string("whole disk");
    s += " (" + f.fs_type + " UUID=" + f.fs_uuid + ") " + f.path;
    if (!f.section.empty()) s += " section " + f.section;
    if (f.size) s += " (" + std::to_string(f.size) + " bytes)";
    return s;
  };
  std::string out;
  out += "partition table: " + std::string(table_kind_name(p.table)) + "\n";
  out += "rule:            " + p.rule + " (" + file(p.config) + ")\n";
  out += "entry:           " + p.title + "\n";
  out += "kernel:          " + file(p.kernel) + "\n";
  if (p.initrds.empty()) out += "initrd:          none\n";
  for (const auto& i : p.initrds) out += "initrd:          " + file(i) + "\n";
  out += "entry options:   " + p.options + "\n";
  out += "cmdline:         " + cmdline + "\n";
  for (const auto& n : p.notes) out += "note:            " + n + "\n";
  return out;
}

}  // namespace microvm::image_boot
