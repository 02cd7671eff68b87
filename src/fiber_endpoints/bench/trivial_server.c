/* A trivial HTTP/1.1 keep-alive server: one thread, epoll, answers every request with `{}`.
 *
 * It exists only to measure the load generators' own ceiling: whatever rate a generator reaches
 * against it is the most that generator can tell about any server on this machine.
 * Usage: trivial-server PORT   (listens on 127.0.0.1 only; SIGTERM to stop)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define BUF 65536
#define MAXFD 65536

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

struct conn { char *buf; size_t len; size_t skip; };
static struct conn conns[MAXFD];

static long content_length(const char *head, size_t n) {
    /* case-insensitive search for "content-length:" inside the header block */
    const char *key = "content-length:";
    size_t k = strlen(key);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k) {
            char c = head[i + j];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != key[j]) break;
            j++;
        }
        if (j == k) return strtol(head + i + k, NULL, 10);
    }
    return 0;
}

static void close_conn(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd].buf);
    conns[fd].buf = NULL;
    conns[fd].len = conns[fd].skip = 0;
}

/* Consume whole requests from the buffer; answer each. Returns -1 on a write error. */
static int serve(int fd) {
    struct conn *c = &conns[fd];
    for (;;) {
        if (c->skip) {
            size_t take = c->skip < c->len ? c->skip : c->len;
            memmove(c->buf, c->buf + take, c->len - take);
            c->len -= take;
            c->skip -= take;
            if (c->skip) return 0;
        }
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return 0;
        size_t head = (size_t)(end - c->buf) + 4;
        long body = content_length(c->buf, head);
        c->skip = head + (size_t)(body > 0 ? body : 0);
        if (write(fd, RESPONSE, sizeof(RESPONSE) - 1) < 0) return -1;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 1024)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, events[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    fprintf(stderr, "trivial-server on 127.0.0.1:%s\n", argv[1]);
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[c].buf = malloc(BUF);
                    conns[c].len = conns[c].skip = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            struct conn *c = &conns[fd];
            ssize_t r = read(fd, c->buf + c->len, BUF - c->len);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                close_conn(ep, fd);
                continue;
            }
            c->len += (size_t)r;
            if (serve(fd) < 0 || c->len == BUF) close_conn(ep, fd);
        }
    }
}
