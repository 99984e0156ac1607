/* fs_meta: a metadata-heavy loop for the guest_fs scenario, one process so only the file
 * system's cost is measured (a shell loop would spend its time in fork/exec).
 *
 *   fs_meta DIR COUNT
 *
 * Creates COUNT empty files in DIR (open O_CREAT|O_EXCL + close), stats each, then unlinks
 * each, and prints "create_per_s=... stat_per_s=... unlink_per_s=...". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 3) return fprintf(stderr, "usage: fs_meta DIR COUNT\n"), 2;
  long n = atol(argv[2]);
  if (n <= 0 || n > 10000000) return fprintf(stderr, "bad count\n"), 2;
  char path[4096];
  double t0 = now();
  for (long i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) return perror(path), 1;
    close(fd);
  }
  double t1 = now();
  struct stat st;
  for (long i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
    if (stat(path, &st)) return perror(path), 1;
  }
  double t2 = now();
  for (long i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/f%ld", argv[1], i);
    if (unlink(path)) return perror(path), 1;
  }
  double t3 = now();
  printf("create_per_s=%.1f stat_per_s=%.1f unlink_per_s=%.1f\n", (double)n / (t1 - t0), (double)n / (t2 - t1),
         (double)n / (t3 - t2));
  return 0;
}
