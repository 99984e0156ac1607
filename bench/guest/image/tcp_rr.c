/* tcp_rr: TCP request/response latency, the guest_net scenario's ping-pong.
 *
 *   tcp_rr server PORT                 echo every byte back, one connection at a time, forever
 *   tcp_rr client HOST PORT SECONDS    1-byte request, wait for the 1-byte response, repeat
 *
 * The client prints "transactions=N seconds=S mean_us=U" (TCP_NODELAY on both ends, so each
 * transaction is one segment each way). Built statically by the bench (cc -static), so it
 * runs in a bare initramfs and on the host alike. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int serve(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (s < 0) return perror("socket"), 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (bind(s, (struct sockaddr*)&a, sizeof a) || listen(s, 4)) return perror("bind/listen"), 1;
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[256];
    ssize_t n;
    while ((n = read(c, b, sizeof b)) > 0)
      if (write(c, b, (size_t)n) != n) break;
    close(c);
  }
}

static int client(const char* host, int port, double seconds) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (s < 0) return perror("socket"), 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return fprintf(stderr, "bad address %s\n", host), 1;
  if (connect(s, (struct sockaddr*)&a, sizeof a)) return perror("connect"), 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double t0 = now(), end = t0 + seconds, t = t0;
  long n = 0;
  char c = 'x';
  while (t < end) {
    if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) return perror("transaction"), 1;
    ++n;
    t = now();
  }
  double el = t - t0;
  printf("transactions=%ld seconds=%.3f mean_us=%.1f\n", n, el, n ? el / (double)n * 1e6 : 0.0);
  close(s);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "server")) return serve(atoi(argv[2]));
  if (argc == 5 && !strcmp(argv[1], "client")) return client(argv[2], atoi(argv[3]), atof(argv[4]));
  fprintf(stderr, "usage: tcp_rr server PORT | tcp_rr client HOST PORT SECONDS\n");
  return 2;
}
