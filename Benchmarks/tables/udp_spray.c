/* Sends COUNT UDP datagrams of 16 bytes to pseudo-random IPv4 destinations (seeded
 * SplitMix64, the same sequence every run) with sendmmsg, 64 at a time, and prints the CPU
 * time (user + system) the sending took, in nanoseconds per datagram. Run inside a network
 * namespace whose default route is a device that drops them: the datagrams go through the
 * output hook (where the set under test is looked up) and no further.
 *
 *   udp_spray COUNT [SEED]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t state;

static uint64_t next(void) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: udp_spray COUNT [SEED]\n");
        return 2;
    }
    long count = atol(argv[1]);
    state = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5E7;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    enum { BATCH = 64 };
    struct sockaddr_in addresses[BATCH];
    struct iovec vectors[BATCH];
    struct mmsghdr messages[BATCH];
    char payload[16] = "set lookup cost";
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < BATCH; i++) {
        vectors[i].iov_base = payload;
        vectors[i].iov_len = sizeof payload;
        addresses[i].sin_family = AF_INET;
        addresses[i].sin_port = htons(9);
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    double start = cpu_seconds();
    long sent = 0;
    while (sent < count) {
        int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
        for (int i = 0; i < n; i++) {
            uint32_t address = (uint32_t)next();
            /* Not 0/8, 127/8 or multicast and above: addresses a host may send to. */
            address = (address % 0xDC000000u) + 0x01000000u;
            if ((address >> 24) == 127) address ^= 0x01000000u;
            addresses[i].sin_addr.s_addr = htonl(address);
        }
        int done = sendmmsg(fd, messages, n, 0);
        if (done <= 0) { perror("sendmmsg"); return 1; }
        sent += done;
    }
    double elapsed = cpu_seconds() - start;
    printf("%.1f\n", elapsed / count * 1e9);
    return 0;
}
