#include "boot/image_boot/ext_volume.h"

extern "C" {  // com_err.h has no C++ guards
#include <et/com_err.h>
}
#include <ext2fs/ext2fs.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <mutex>

#include "base/large_buffer.h"
#include "boot/image_boot/byte_order.h"

namespace microvm::image_boot {
namespace {

constexpr uint64_t kSuperblockOffset = 1024;

// --- io_manager over an ImageReader -------------------------------------------------------
// libext2fs opens channels by name; ours is the reader's address in hex, made and parsed only
// here. Writes are refused: the image is never modified.
struct Channel {
  ImageReader* reader = nullptr;
};

errcode_t io_open(const char* name, int flags, io_channel* out);

errcode_t io_close(io_channel ch) {
  if (--ch->refcount > 0) return 0;
  delete static_cast<Channel*>(ch->private_data);
  ext2fs_free_mem(&ch->name);
  ext2fs_free_mem(&ch);
  return 0;
}

errcode_t io_set_blksize(io_channel ch, int blksize) {
  if (blksize <= 0 || blksize > 65536) return EXT2_ET_INVALID_ARGUMENT;
  ch->block_size = blksize;
  return 0;
}

errcode_t io_read64(io_channel ch, unsigned long long block, int count, void* data) {
  auto* c = static_cast<Channel*>(ch->private_data);
  // count < 0 means "-count bytes" (libext2fs's convention).
  uint64_t bytes = count < 0 ? uint64_t(-int64_t(count)) : uint64_t(count) * uint64_t(ch->block_size);
  if (block > UINT64_MAX / uint64_t(ch->block_size)) return EXT2_ET_LLSEEK_FAILED;
  uint64_t offset = block * uint64_t(ch->block_size);
  auto r = c->reader->read_at(offset, std::span(static_cast<std::byte*>(data), bytes));
  if (!r) return EXT2_ET_SHORT_READ;
  return 0;
}

errcode_t io_read(io_channel ch, unsigned long block, int count, void* data) {
  return io_read64(ch, block, count, data);
}
errcode_t io_write(io_channel, unsigned long, int, const void*) { return EXT2_ET_RO_FILSYS; }
errcode_t io_write64(io_channel, unsigned long long, int, const void*) { return EXT2_ET_RO_FILSYS; }
errcode_t io_write_byte(io_channel, unsigned long, int, const void*) { return EXT2_ET_RO_FILSYS; }
errcode_t io_flush(io_channel) { return 0; }
errcode_t io_set_option(io_channel, const char*, const char*) { return EXT2_ET_INVALID_ARGUMENT; }

struct_io_manager g_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "microvm image reader",
    .open = io_open,
    .close = io_close,
    .set_blksize = io_set_blksize,
    .read_blk = io_read,
    .write_blk = io_write,
    .flush = io_flush,
    .write_byte = io_write_byte,
    .set_option = io_set_option,
    .get_stats = nullptr,
    .read_blk64 = io_read64,
    .write_blk64 = io_write64,
    .discard = nullptr,
    .cache_readahead = nullptr,
    .zeroout = nullptr,
    .reserved = {},
};

errcode_t io_open(const char* name, int flags, io_channel* out) {
  if (flags & IO_FLAG_RW) return EXT2_ET_RO_FILSYS;
  uintptr_t addr = 0;
  if (!name || std::sscanf(name, "%" SCNxPTR, &addr) != 1 || addr == 0) return EXT2_ET_BAD_DEVICE_NAME;
  io_channel ch = nullptr;
  errcode_t err = ext2fs_get_memzero(sizeof(*ch), &ch);
  if (err) return err;
  ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  ch->manager = &g_manager;
  err = ext2fs_get_mem(std::strlen(name) + 1, &ch->name);
  if (err) {
    ext2fs_free_mem(&ch);
    return err;
  }
  std::strcpy(ch->name, name);
  ch->block_size = 1024;
  ch->refcount = 1;
  ch->private_data = new Channel{reinterpret_cast<ImageReader*>(addr)};
  *out = ch;
  return 0;
}

std::string ext_error(errcode_t e) { return error_message(e); }

std::string uuid_string(const uint8_t* u) {
  char s[37];
  std::snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return s;
}

}  // namespace

struct ExtVolume::Impl {
  ImageReader* reader = nullptr;
  ext2_filsys fs = nullptr;
  ~Impl() {
    if (fs) ext2fs_close_free(&fs);
  }
};

ExtVolume::ExtVolume(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExtVolume::~ExtVolume() = default;

bool ExtVolume::probe(ImageReader& part) {
  std::array<std::byte, 2> magic;
  if (part.size() < kSuperblockOffset + 1024) return false;
  if (!part.read_at(kSuperblockOffset + 56, magic)) return false;
  return le16(magic, 0) == EXT2_SUPER_MAGIC;
}

Result<std::unique_ptr<ExtVolume>> ExtVolume::open(ImageReader& part) {
  static std::once_flag errors_once;
  std::call_once(errors_once, [] { initialize_ext2_error_table(); });
  char name[32];
  std::snprintf(name, sizeof name, "%" PRIxPTR, reinterpret_cast<uintptr_t>(&part));
  auto impl = std::make_unique<Impl>();
  impl->reader = &part;
  // Read-only; a journal that needs replaying does not matter for reading /boot, and MMP
  // (multi-mount protection) would make us write.
  errcode_t err = ext2fs_open2(name, nullptr, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, &g_manager, &impl->fs);
  if (err) return fail(EINVAL, "ext2/3/4: " + ext_error(err));
  auto* sb = impl->fs->super;
  std::unique_ptr<ExtVolume> v(new ExtVolume(std::move(impl)));
  v->uuid_ = uuid_string(sb->s_uuid);
  size_t n = strnlen(reinterpret_cast<const char*>(sb->s_volume_name), sizeof sb->s_volume_name);
  v->label_.assign(reinterpret_cast<const char*>(sb->s_volume_name), n);
  if (ext2fs_has_feature_extents(sb) || ext2fs_has_feature_64bit(sb) || ext2fs_has_feature_flex_bg(sb))
    v->type_ = "ext4";
  else if (ext2fs_has_feature_journal(sb))
    v->type_ = "ext3";
  else
    v->type_ = "ext2";
  return v;
}

Result<Node> ExtVolume::node(uint64_t ino) {
  struct ext2_inode inode {};
  errcode_t err = ext2fs_read_inode(impl_->fs, static_cast<ext2_ino_t>(ino), &inode);
  if (err) return fail(EIO, "inode " + std::to_string(ino) + ": " + ext_error(err));
  Node n;
  n.id = ino;
  n.size = EXT2_I_SIZE(&inode);
  if (LINUX_S_ISREG(inode.i_mode))
    n.kind = Node::Kind::kFile;
  else if (LINUX_S_ISDIR(inode.i_mode))
    n.kind = Node::Kind::kDir;
  else if (LINUX_S_ISLNK(inode.i_mode))
    n.kind = Node::Kind::kSymlink;
  else
    n.kind = Node::Kind::kOther;
  return n;
}

Node ExtVolume::root() { return Node{Node::Kind::kDir, EXT2_ROOT_INO, 0}; }

Result<std::optional<Node>> ExtVolume::lookup(const Node& dir, std::string_view name) {
  if (name.empty() || name.size() > EXT2_NAME_LEN) return std::optional<Node>{};
  ext2_ino_t ino = 0;
  errcode_t err = ext2fs_lookup(impl_->fs, static_cast<ext2_ino_t>(dir.id), name.data(), static_cast<int>(name.size()),
                                nullptr, &ino);
  if (err == EXT2_ET_FILE_NOT_FOUND) return std::optional<Node>{};
  if (err) return fail(EIO, "looking up '" + std::string(name) + "': " + ext_error(err));
  return std::optional<Node>(TRY(node(ino)));
}

Result<std::string> ExtVolume::read_link(const Node& link) {
  if (link.size > kMaxSymlinkBytes) return fail(ENAMETOOLONG, "symbolic link target longer than 4096 bytes");
  struct ext2_inode inode {};
  errcode_t err = ext2fs_read_inode(impl_->fs, static_cast<ext2_ino_t>(link.id), &inode);
  if (err) return fail(EIO, "symbolic link: " + ext_error(err));
  if (ext2fs_is_fast_symlink(&inode)) {
    // The target lives in the inode's block map area (at most 60 bytes).
    size_t n = std::min<uint64_t>(link.size, sizeof inode.i_block);
    return std::string(reinterpret_cast<const char*>(inode.i_block), n);
  }
  auto bytes = TRY(read(link));
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<std::vector<std::byte>> ExtVolume::read(const Node& file) {
  auto runs = TRY(map(file));
  if (!runs) return read_blocks(file);
  // One read per extent straight from the image, rather than libext2fs's block-at-a-time file
  // reads, which cost ~1 s for a kernel in a qcow2 image.
  auto out = make_large_buffer(file.size);  // holes and unwritten extents read as zeroes
  for (const auto& r : *runs) {
    auto ok = impl_->reader->read_at(r.image_offset, std::span(out.data() + r.file_offset, r.length));
    if (!ok) return std::unexpected(ok.error().context("inode " + std::to_string(file.id)));
  }
  return out;
}

Result<std::optional<std::vector<FileRun>>> ExtVolume::map(const Node& file) {
  struct ext2_inode inode {};
  errcode_t err = ext2fs_read_inode(impl_->fs, static_cast<ext2_ino_t>(file.id), &inode);
  if (err) return fail(EIO, "inode " + std::to_string(file.id) + ": " + ext_error(err));
  if (!(inode.i_flags & EXT4_EXTENTS_FL) || (inode.i_flags & EXT4_INLINE_DATA_FL))
    return std::optional<std::vector<FileRun>>{};
  return std::optional<std::vector<FileRun>>(TRY(map_extents(file, &inode)));
}

// The leaf extents, clipped to the file's size and checked against the file system's size;
// runs come out in ascending, non-overlapping file order or the tree is refused.
Result<std::vector<FileRun>> ExtVolume::map_extents(const Node& file, void* inode_ptr) {
  auto* inode = static_cast<struct ext2_inode*>(inode_ptr);
  ext2_filsys fs = impl_->fs;
  const uint64_t bs = fs->blocksize;
  const uint64_t fs_blocks = ext2fs_blocks_count(fs->super);
  const uint64_t file_blocks = (file.size + bs - 1) / bs;
  ext2_extent_handle_t h = nullptr;
  errcode_t err = ext2fs_extent_open2(fs, static_cast<ext2_ino_t>(file.id), inode, &h);
  if (err) return fail(EIO, "extents of inode " + std::to_string(file.id) + ": " + ext_error(err));
  std::vector<FileRun> runs;
  struct ext2fs_extent e {};
  int op = EXT2_EXTENT_ROOT;
  uint64_t steps = 0;
  Result<void> result;
  for (;;) {
    err = ext2fs_extent_get(h, op, &e);
    op = EXT2_EXTENT_NEXT_LEAF;
    if (err == EXT2_ET_EXTENT_NO_NEXT) break;
    if (err) {
      result = fail(EIO, "extents of inode " + std::to_string(file.id) + ": " + ext_error(err));
      break;
    }
    if (++steps > file_blocks + 64) {  // each leaf maps at least one block: more means a loop
      result = fail(EIO, "inode " + std::to_string(file.id) + ": extent tree does not end");
      break;
    }
    if (!(e.e_flags & EXT2_EXTENT_FLAGS_LEAF) || (e.e_flags & EXT2_EXTENT_FLAGS_UNINIT)) continue;
    if (e.e_lblk >= file_blocks || e.e_len == 0) continue;
    uint64_t len = std::min<uint64_t>(e.e_len, file_blocks - e.e_lblk);
    if (e.e_pblk >= fs_blocks || len > fs_blocks - e.e_pblk) {
      result = fail(EIO, "inode " + std::to_string(file.id) + ": extent outside the file system");
      break;
    }
    uint64_t at = e.e_lblk * bs;
    if (!runs.empty() && at < runs.back().file_offset + runs.back().length) {
      result = fail(EIO, "inode " + std::to_string(file.id) + ": extents overlap or are out of order");
      break;
    }
    runs.push_back(FileRun{at, e.e_pblk * bs, std::min<uint64_t>(len * bs, file.size - at)});
  }
  ext2fs_extent_free(h);
  if (!result) return std::unexpected(result.error());
  return runs;
}

Result<std::vector<std::byte>> ExtVolume::read_blocks(const Node& file) {
  ext2_file_t f = nullptr;
  errcode_t err = ext2fs_file_open(impl_->fs, static_cast<ext2_ino_t>(file.id), 0, &f);
  if (err) return fail(EIO, "open inode " + std::to_string(file.id) + ": " + ext_error(err));
  auto out = make_large_buffer(file.size);
  uint64_t done = 0;
  while (done < out.size()) {
    unsigned int chunk = static_cast<unsigned int>(std::min<uint64_t>(out.size() - done, 1u << 24));
    unsigned int got = 0;
    err = ext2fs_file_read(f, out.data() + done, chunk, &got);
    if (err || got == 0) break;
    done += got;
  }
  ext2fs_file_close(f);
  if (err) return fail(EIO, "read inode " + std::to_string(file.id) + ": " + ext_error(err));
  if (done != out.size()) return fail(EIO, "inode " + std::to_string(file.id) + ": file shorter than its size");
  return out;
}

namespace {
struct ListState {
  std::vector<std::string>* names;
  bool too_many = false;
};
int collect(ext2_ino_t, int, struct ext2_dir_entry* entry, int, int, char*, void* priv) {
  auto* st = static_cast<ListState*>(priv);
  if (st->names->size() >= kMaxDirEntries) {
    st->too_many = true;
    return DIRENT_ABORT;
  }
  int len = ext2fs_dirent_name_len(entry);
  st->names->emplace_back(entry->name, static_cast<size_t>(len));
  return 0;
}
}  // namespace

Result<std::vector<std::string>> ExtVolume::list(const Node& dir) {
  std::vector<std::string> names;
  ListState st{&names};
  errcode_t err = ext2fs_dir_iterate2(impl_->fs, static_cast<ext2_ino_t>(dir.id), 0, nullptr, collect, &st);
  if (err) return fail(EIO, "directory: " + ext_error(err));
  if (st.too_many) return fail(E2BIG, "directory with more than " + std::to_string(kMaxDirEntries) + " entries");
  return names;
}

}  // namespace microvm::image_boot
