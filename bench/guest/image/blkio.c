/* blkio: a small fio stand-in for guest images that cannot carry fio (Debian's fio links about
 * 80 MB of libraries, which an emulated guest kernel takes many minutes to unpack).
 *
 *   blkio FILE randread|randwrite|read|write BLOCK_BYTES DEPTH SECONDS [SIZE_MIB] [DIRECT]
 *
 * DEPTH threads each keep one pread/pwrite in flight (what fio's psync engine does with
 * numjobs=DEPTH), for SECONDS of wall time (at least one request each), on FILE (a block device or a file, opened with
 * O_DIRECT unless DIRECT is 0; SIZE_MIB bounds the offsets, default the whole device/file).
 * Random offsets are BLOCK_BYTES-aligned (xorshift per thread), sequential ones are handed
 * out by a shared counter and wrap. Writes end with fsync when not O_DIRECT.
 *
 * Prints the nine fields the bench reads from fio's terse output (fields 5-9,47-50):
 *   error;read_kb;read_kib_s;read_iops;read_ms;write_kb;write_kib_s;write_iops;write_ms */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fd, is_write, is_random;
static uint64_t bs, blocks;
static double deadline;
static atomic_uint_fast64_t next_seq, total_ops, failed;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void* worker(void* arg) {
  uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)arg * 0x2545f4914f6cdd1dull;
  void* buf;
  if (posix_memalign(&buf, 4096, bs)) return NULL;
  memset(buf, 0x5a, bs);
  uint64_t ops = 0;
  /* At least one request per thread: where guest kernel code is emulated, starting the threads
   * alone can outlast a short run, which would otherwise report nothing. */
  do {
    uint64_t blk;
    if (is_random) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      blk = x % blocks;
    } else {
      blk = atomic_fetch_add(&next_seq, 1) % blocks;
    }
    off_t off = (off_t)(blk * bs);
    ssize_t n = is_write ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off);
    if (n != (ssize_t)bs) {
      atomic_fetch_add(&failed, 1);
      break;
    }
    ++ops;
  } while (now() < deadline);
  atomic_fetch_add(&total_ops, ops);
  free(buf);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 6 || argc > 8) {
    fprintf(stderr, "usage: blkio FILE randread|randwrite|read|write BLOCK_BYTES DEPTH SECONDS [SIZE_MIB] [DIRECT]\n");
    return 2;
  }
  const char* rw = argv[2];
  is_write = !strcmp(rw, "randwrite") || !strcmp(rw, "write");
  is_random = !strcmp(rw, "randread") || !strcmp(rw, "randwrite");
  if (!is_write && !is_random && strcmp(rw, "read")) return fprintf(stderr, "bad pattern %s\n", rw), 2;
  bs = strtoull(argv[3], NULL, 10);
  long depth = atol(argv[4]);
  double seconds = atof(argv[5]);
  uint64_t size_mib = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
  int direct = argc > 7 ? atoi(argv[7]) : 1;
  if (bs == 0 || bs % 512 || depth < 1 || depth > 256 || seconds <= 0) return fprintf(stderr, "bad arguments\n"), 2;
  fd = open(argv[1], (is_write ? O_RDWR | O_CREAT : O_RDONLY) | (direct ? O_DIRECT : 0), 0644);
  if (fd < 0) return perror(argv[1]), 1;
  uint64_t size = size_mib << 20;
  if (!size) {
    struct stat st;
    if (fstat(fd, &st)) return perror("fstat"), 1;
    if (S_ISBLK(st.st_mode)) {
      if (ioctl(fd, BLKGETSIZE64, &size)) return perror("BLKGETSIZE64"), 1;
    } else {
      size = (uint64_t)st.st_size;
    }
  }
  blocks = size / bs;
  if (!blocks) return fprintf(stderr, "%s: smaller than one block\n", argv[1]), 1;
  pthread_t t[256];
  double t0 = now();
  deadline = t0 + seconds;
  for (long i = 0; i < depth; ++i)
    if (pthread_create(&t[i], NULL, worker, (void*)(uintptr_t)(i + 1))) return perror("pthread_create"), 1;
  for (long i = 0; i < depth; ++i) pthread_join(t[i], NULL);
  if (is_write && !direct && fsync(fd)) return perror("fsync"), 1;
  double el = now() - t0;
  uint64_t ops = atomic_load(&total_ops);
  double kb = (double)(ops * bs) / 1024.0, kib_s = kb / el, iops = (double)ops / el, ms = el * 1000.0;
  int err = atomic_load(&failed) ? 5 : 0; /* EIO, as fio's error field would */
  if (is_write)
    printf("%d;0;0;0;0;%.0f;%.3f;%.3f;%.0f\n", err, kb, kib_s, iops, ms);
  else
    printf("%d;%.0f;%.3f;%.3f;%.0f;0;0;0;0\n", err, kb, kib_s, iops, ms);
  return err ? 1 : 0;
}
