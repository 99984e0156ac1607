// A guest-side vsock tool for tests, linked statically so it runs in the busybox initramfs.
//
//   vsock_echo listen PORT N      accept N connections on PORT, echo each until its EOF
//                                 (all served at once through poll), print "echo served=N"
//   vsock_echo connect PORT SIZE  connect to the host (CID 2) on PORT, send SIZE pattern
//                                 bytes while reading the echo back, print "g2h ok=1" if
//                                 every byte came back intact, and the time it took (the
//                                 in-guest throughput figure: each byte crosses the device twice)
//   vsock_echo hold PORT          connect to the host on PORT, print "hold connected", then
//                                 block in read() until the connection ends; print how it
//                                 ended (a snapshot restore's TRANSPORT_RESET gives ECONNRESET)
// Every run ends after 2400 s at most (alarm), so a stuck peer fails a test instead of hanging it
// (generous: under load the emulated guest kernel echoes 16 MiB in ~15 minutes).
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMaxConns = 256, kBuf = 65536 };

static unsigned char pattern_byte(unsigned long i) { return (unsigned char)(i * 131 + (i >> 9) + 17); }

static int listen_mode(unsigned port, int want) {
  int l = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (l < 0) return perror("socket"), 1;
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 128) != 0) return perror("bind/listen"), 1;
  printf("echo listening port=%u\n", port);
  fflush(stdout);
  struct pollfd fds[kMaxConns + 1];
  int n = 0, accepted = 0, served = 0;
  static unsigned char buf[kBuf];
  while (served < want) {
    fds[0].fd = accepted < want ? l : -1;
    fds[0].events = POLLIN;
    if (poll(fds, (nfds_t)n + 1, -1) < 0) return perror("poll"), 1;
    if (fds[0].revents & POLLIN) {
      int c = accept(l, NULL, NULL);
      if (c >= 0 && n < kMaxConns) {
        fds[++n] = (struct pollfd){.fd = c, .events = POLLIN};
        ++accepted;
      } else if (c >= 0) {
        close(c);
      }
    }
    for (int i = 1; i <= n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        // Blocking write: the host reads while it writes, so this drains.
        for (ssize_t off = 0; off < got;) {
          ssize_t w = write(fds[i].fd, buf + off, (size_t)(got - off));
          if (w <= 0) {
            got = -1;
            break;
          }
          off += w;
        }
        if (got > 0) continue;
      }
      close(fds[i].fd);
      fds[i] = fds[n--];
      --i;
      ++served;
    }
  }
  printf("echo served=%d\n", served);
  return 0;
}

static int connect_mode(unsigned port, unsigned long size) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s < 0) return perror("socket"), 1;
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) return perror("connect"), 1;
  fcntl(s, F_SETFL, O_NONBLOCK);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  static unsigned char out[kBuf], in[kBuf];
  unsigned long sent = 0, got = 0, bad = 0;
  while (got < size) {
    struct pollfd p = {.fd = s, .events = POLLIN | (sent < size ? POLLOUT : 0)};
    if (poll(&p, 1, -1) < 0) return perror("poll"), 1;
    if ((p.revents & POLLOUT) && sent < size) {
      size_t chunk = size - sent < kBuf ? size - sent : kBuf;
      for (size_t i = 0; i < chunk; ++i) out[i] = pattern_byte(sent + i);
      ssize_t w = write(s, out, chunk);
      if (w > 0)
        sent += (unsigned long)w;
      else if (w < 0 && errno != EAGAIN)
        return perror("write"), 1;
    }
    if (p.revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(s, in, sizeof in);
      if (r == 0) break;
      if (r < 0 && errno != EAGAIN) return perror("read"), 1;
      for (ssize_t i = 0; i < r; ++i) bad += in[i] != pattern_byte(got + (unsigned long)i);
      if (r > 0) got += (unsigned long)r;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  close(s);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
  printf("g2h sent=%lu got=%lu ok=%d\n", sent, got, got == size && bad == 0);
  printf("g2h echo ms=%ld KiB/s=%ld\n", ms, ms > 0 ? (long)(got / 1024 * 1000 / (unsigned long)ms) : -1L);
  return got == size && bad == 0 ? 0 : 1;
}

static int hold_mode(unsigned port) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s < 0) return perror("socket"), 1;
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) return perror("connect"), 1;
  printf("hold connected port=%u\n", port);
  fflush(stdout);
  char c;
  ssize_t r = read(s, &c, 1);
  int err = r < 0 ? errno : 0;
  printf("hold read=%zd errno=%d\n", r, err);
  close(s);
  return 0;
}

int main(int argc, char** argv) {
  alarm(2400);
  if (argc == 4 && strcmp(argv[1], "listen") == 0) return listen_mode((unsigned)atoi(argv[2]), atoi(argv[3]));
  if (argc == 4 && strcmp(argv[1], "connect") == 0)
    return connect_mode((unsigned)atoi(argv[2]), strtoul(argv[3], NULL, 10));
  if (argc == 3 && strcmp(argv[1], "hold") == 0) return hold_mode((unsigned)atoi(argv[2]));
  fprintf(stderr, "usage: vsock_echo listen PORT N | connect PORT SIZE | hold PORT\n");
  return 2;
}
