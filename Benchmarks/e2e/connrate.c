/*
 * connrate: many short TCP connections per second, for the e2e benchmark.
 *
 *   connrate server PORT THREADS              accept; read to EOF; close (IPv4 and IPv6)
 *   connrate client ADDR PORT SECONDS THREADS connect; send 64 bytes; shutdown; read to EOF;
 *                                             close; again, until SECONDS have passed
 *
 * The client prints "connections N failures F seconds S" and exits; it never runs longer than
 * SECONDS plus its 2-second socket timeouts. The server runs until it is killed (the harness
 * starts it in a lab namespace and ends it by pid).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_timeouts(int fd) {
    struct timeval tv = { .tv_sec = 2, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- server ---- */

static void *serve(void *argument) {
    int listener = *(int *)argument;
    char buffer[4096];
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) continue;
        set_timeouts(fd);
        while (read(fd, buffer, sizeof(buffer)) > 0) {}
        close(fd);
    }
    return NULL;
}

static int listen_on(int family, int port) {
    int fd = socket(family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("connrate: bind"); exit(1); }
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("connrate: bind"); exit(1); }
    }
    if (listen(fd, 4096) < 0) { perror("connrate: listen"); exit(1); }
    return fd;
}

static int run_server(int port, int threads) {
    static int listeners[2];
    listeners[0] = listen_on(AF_INET, port);
    listeners[1] = listen_on(AF_INET6, port);
    pthread_t thread;
    for (int i = 0; i < threads; i++)
        for (int f = 0; f < 2; f++) pthread_create(&thread, NULL, serve, &listeners[f]);
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
    return 0;
}

/* ---- client ---- */

struct client {
    struct sockaddr_storage address;
    socklen_t address_length;
    double deadline;
    unsigned long long connections;
    unsigned long long failures;
};

static void *connect_loop(void *argument) {
    struct client *c = argument;
    char payload[64];
    char buffer[256];
    memset(payload, 'x', sizeof(payload));
    while (now_seconds() < c->deadline) {
        int fd = socket(c->address.ss_family, SOCK_STREAM, 0);
        if (fd < 0) { c->failures++; continue; }
        set_timeouts(fd);
        int ok = connect(fd, (struct sockaddr *)&c->address, c->address_length) == 0
            && write(fd, payload, sizeof(payload)) == (ssize_t)sizeof(payload)
            && shutdown(fd, SHUT_WR) == 0;
        if (ok) {
            ssize_t n;
            while ((n = read(fd, buffer, sizeof(buffer))) > 0) {}
            ok = n == 0;
        }
        close(fd);
        if (ok) c->connections++; else c->failures++;
    }
    return NULL;
}

static int run_client(const char *address, int port, double seconds, int threads) {
    struct client prototype;
    memset(&prototype, 0, sizeof(prototype));
    if (strchr(address, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&prototype.address;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, address, &a->sin6_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
        prototype.address_length = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&prototype.address;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        if (inet_pton(AF_INET, address, &a->sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
        prototype.address_length = sizeof(*a);
    }
    double start = now_seconds();
    prototype.deadline = start + seconds;
    struct client clients[64];
    pthread_t ids[64];
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    for (int i = 0; i < threads; i++) {
        clients[i] = prototype;
        pthread_create(&ids[i], NULL, connect_loop, &clients[i]);
    }
    unsigned long long connections = 0, failures = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        connections += clients[i].connections;
        failures += clients[i].failures;
    }
    printf("connections %llu failures %llu seconds %.3f\n", connections, failures, now_seconds() - start);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "server") == 0) return run_server(atoi(argv[2]), atoi(argv[3]));
    if (argc == 6 && strcmp(argv[1], "client") == 0)
        return run_client(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: connrate server PORT THREADS | connrate client ADDR PORT SECONDS THREADS\n");
    return 2;
}
