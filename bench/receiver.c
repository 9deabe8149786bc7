/*
 * S4's receiving side, in C so the measurement is bound by the server and the network stack rather
 * than by the receiver: N real TCP clients of the public SSE stream, driven by one epoll loop.
 *   receiver <port> <n>
 * stdin commands, one per line:  "arm <marker>"  then it prints "done <unix-time-ns>" once every
 * client has received bytes containing <marker>;  "exit".
 * It prints "ready" once every client has received its first bytes (the welcome event).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: receiver <port> <n>\n"); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]);
  int *fds = calloc(n, sizeof(int));
  char *opened = calloc(n, 1), *seen = calloc(n, 1);
  char request[256];
  snprintf(request, sizeof request, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n", port);
  int ep = epoll_create1(0);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write(fd, request, strlen(request)) < 0) { perror("write"); return 1; }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (unsigned)i };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fds[i] = fd;
  }
  char buf[65536], marker[256] = "", line[256];
  int nopen = 0, got = 0, armed = 0;
  struct epoll_event events[1024];
  /* stdin is in the same epoll set (tag n), so a command is read as soon as it arrives */
  fcntl(0, F_SETFL, O_NONBLOCK);
  struct epoll_event in = { .events = EPOLLIN, .data.u32 = (unsigned)n };
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
  size_t linelen = 0;
  for (;;) {
    int k = epoll_wait(ep, events, 1024, -1);
    for (int e = 0; e < k; e++) {
      int i = (int)events[e].data.u32;
      if (i == n) continue;
      ssize_t r;
      while ((r = read(fds[i], buf, sizeof buf - 1)) > 0) {
        buf[r] = 0;
        if (!opened[i]) { opened[i] = 1; if (++nopen == n) { printf("ready\n"); fflush(stdout); } }
        if (armed && !seen[i] && memmem(buf, (size_t)r, marker, strlen(marker)) != NULL) {
          seen[i] = 1;
          if (++got == n) { printf("done %lld\n", now_ns()); fflush(stdout); armed = 0; }
        }
      }
      if (r == 0) { epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL); }
    }
    ssize_t c = -1;
    while ((c = read(0, line + linelen, 1)) == 1) {
      if (line[linelen] != '\n') { if (linelen < sizeof line - 2) linelen++; continue; }
      line[linelen] = 0;
      linelen = 0;
      if (strncmp(line, "arm ", 4) == 0) {
        snprintf(marker, sizeof marker, "%s", line + 4);
        memset(seen, 0, n); got = 0; armed = 1;
        printf("armed\n"); fflush(stdout);
      } else if (strcmp(line, "exit") == 0) {
        for (int i = 0; i < n; i++) close(fds[i]);
        return 0;
      }
    }
    if (c == 0) return 0; /* parent went away */
    if (c < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return 1;
  }
}
