#include "devices/block/qcow2/qcow2_backend.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <climits>
#include <cstring>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm {

Result<std::unique_ptr<Qcow2Backend>> Qcow2Backend::open(const DiskOptions& opts) {
  auto img = TRY(qcow2::open_chain(opts));
  auto engine = TRY(make_io_engine(opts.engine, opts.logger, opts.queue_depth, opts.sandboxed));
  Fd direct;
  if (opts.cache == CacheMode::kNone) {
    // Metadata keeps the buffered descriptor (its buffers and header updates are not sector
    // aligned); guest data to allocated clusters uses a second, O_DIRECT descriptor of the same
    // file. The kernel writes back and invalidates cached pages around direct I/O, so the two
    // views stay coherent.
    direct.reset(::open(opts.path.c_str(), (opts.read_only ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC));
    struct stat a {
    }, b{};
    if (direct &&
        (::fstat(direct.get(), &a) != 0 || ::fstat(img->fd(), &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino))
      return fail(EBUSY, opts.path + ": the file changed while it was being opened");
    if (!direct && opts.logger)
      opts.logger->log(LogLevel::kWarn, "%s: O_DIRECT refused (%s); cache=none falls back to the page cache",
                       opts.path.c_str(), std::strerror(errno));
  }
  return std::make_unique<Qcow2Backend>(std::move(engine), std::move(img), std::move(direct));
}

Qcow2Backend::Qcow2Backend(std::unique_ptr<IoEngine> engine, std::unique_ptr<qcow2::Image> img, Fd direct)
    : engine_(std::move(engine)), img_(std::move(img)), direct_(std::move(direct)) {
  img_->set_data_path(this);
}

int Qcow2Backend::data_fd(uint64_t host_offset, std::span<const iovec> iov) const {
  if (!direct_) return img_->fd();
  if (host_offset % 512) return img_->fd();
  for (const auto& v : iov) {
    if (reinterpret_cast<uintptr_t>(v.iov_base) % 512 || v.iov_len % 512) return img_->fd();
  }
  return direct_.get();
}

Qcow2Backend::~Qcow2Backend() {
  engine_->drain();
  img_->set_data_path(nullptr);
  img_.reset();  // flushes metadata synchronously
}

uint64_t Qcow2Backend::begin(uint64_t tag, size_t bytes) {
  uint64_t id = next_id_++;
  requests_[id] = Request{tag, 0, 0, static_cast<int32_t>(std::min<size_t>(bytes, INT32_MAX))};
  current_ = id;
  return id;
}

void Qcow2Backend::finish(uint64_t id, int rc) {
  if (int prc = submit_piece(); prc < 0 && rc >= 0) rc = prc;
  current_ = 0;
  Request& r = requests_[id];
  if (rc < 0 && r.error == 0) r.error = rc;
  // A request with pieces on the engine completes with its last piece (its error, if any, is
  // recorded above). Only a request that queued nothing completes as an engine token of its
  // own, so every completion still comes out of reap() in one place: a token per request would
  // cost an eventfd write and a wake-up of the event loop before the data had even landed.
  if (r.pending > 0) return;
  ++r.pending;
  engine_->complete_now(id, 0);
}

int Qcow2Backend::read(uint64_t host_offset, std::span<const iovec> iov) { return transfer(false, host_offset, iov); }

int Qcow2Backend::write(uint64_t host_offset, std::span<const iovec> iov) { return transfer(true, host_offset, iov); }

// Pieces that continue the previous one of the same request in the file (consecutive host
// clusters: a sequential transfer in a converted or freshly allocated image) are joined and
// reach the engine as one operation, instead of one per cluster.
int Qcow2Backend::transfer(bool is_write, uint64_t host_offset, std::span<const iovec> iov) {
  int fd = data_fd(host_offset, iov);
  if (piece_.active && piece_.is_write == is_write && piece_.fd == fd && piece_.offset + piece_.len == host_offset &&
      piece_.iov.size() + iov.size() <= IOV_MAX) {
    piece_.iov.insert(piece_.iov.end(), iov.begin(), iov.end());
    piece_.len += iov_total(iov);
    return 0;
  }
  if (int rc = submit_piece()) return rc;
  piece_.active = true;
  piece_.is_write = is_write;
  piece_.fd = fd;
  piece_.offset = host_offset;
  piece_.len = iov_total(iov);
  piece_.iov.assign(iov.begin(), iov.end());
  return 0;
}

int Qcow2Backend::submit_piece() {
  if (!piece_.active) return 0;
  piece_.active = false;
  const Piece& p = piece_;
  auto r =
      p.is_write ? engine_->write(p.fd, p.offset, p.iov, current_) : engine_->read(p.fd, p.offset, p.iov, current_);
  if (!r && r.error().code == kSubmitBusy) {
    // The engine filled up in the middle of a request (one piece per run of clusters): the
    // pieces already queued cannot be taken back, so this one runs here and now instead of failing.
    return p.is_write ? pwritev_full(p.fd, p.iov, p.offset) : preadv_full(p.fd, p.iov, p.offset);
  }
  if (!r) return r.error().code ? -r.error().code : -EIO;
  Request& req = requests_[current_];
  ++req.pending;
  req.queued_bytes += p.len;
  return 0;
}

// A read or write starts only while the engine has room for its first piece, so a full engine
// holds requests back in the device (back-pressure) instead of running them synchronously.
bool Qcow2Backend::engine_full() const { return !engine_->has_room() && !requests_.empty(); }

void Qcow2Backend::quiesce() {
  // The image waits for every queued transfer: the one still being joined goes first.
  if (int rc = submit_piece(); rc < 0 && current_) {
    Request& r = requests_[current_];
    if (r.error == 0) r.error = rc;
  }
  engine_->drain();
}

Result<void> Qcow2Backend::submit_read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  if (engine_full()) return fail(kSubmitBusy, "qcow2: I/O engine full");
  uint64_t id = begin(tag, iov_total(iov));
  finish(id, img_->readv(offset, iov));
  return {};
}

Result<void> Qcow2Backend::submit_write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  if (engine_full()) return fail(kSubmitBusy, "qcow2: I/O engine full");
  uint64_t id = begin(tag, iov_total(iov));
  finish(id, img_->writev(offset, iov));
  return {};
}

Result<void> Qcow2Backend::submit_flush(uint64_t tag) {
  uint64_t id = begin(tag, 0);
  // Writes already completed are in the file; the image's flush orders data and metadata.
  finish(id, img_->flush());
  return {};
}

Result<void> Qcow2Backend::submit_discard(uint64_t offset, uint64_t len, uint64_t tag) {
  uint64_t id = begin(tag, 0);
  finish(id, img_->discard(offset, len));
  return {};
}

Result<void> Qcow2Backend::submit_write_zeroes(uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  uint64_t id = begin(tag, 0);
  finish(id, img_->write_zeroes(offset, len, may_unmap));
  return {};
}

size_t Qcow2Backend::reap(std::span<BlockCompletion> out) {
  size_t n = 0;
  scratch_.resize(std::max<size_t>(out.size(), 16));
  while (n < out.size()) {
    size_t got = engine_->reap(std::span(scratch_).first(out.size() - n));
    if (got == 0) break;
    for (size_t i = 0; i < got; ++i) {
      auto it = requests_.find(scratch_[i].tag);
      if (it == requests_.end()) continue;  // cannot happen: every engine tag is a live request
      Request& r = it->second;
      if (scratch_[i].result < 0 && r.error == 0) r.error = scratch_[i].result;
      if (scratch_[i].result > 0) r.done_bytes += static_cast<uint64_t>(scratch_[i].result);
      if (--r.pending == 0) {
        if (r.error == 0 && r.done_bytes != r.queued_bytes) r.error = -EIO;
        out[n++] = {r.tag, r.error < 0 ? r.error : r.bytes};
        requests_.erase(it);
      }
    }
  }
  return n;
}

}  // namespace microvm
