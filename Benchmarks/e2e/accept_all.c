/*
 * accept_all: the least an NFQUEUE consumer can do. Binds the queues it is given with the
 * settings seqwall uses (copy range 256, GSO, fail-open, queue length 4096, 8 MiB receive
 * buffer), reads each packet message the way seqwall's adapter does (nfq_nlmsg_parse, packet
 * header, payload attribute), and answers NF_ACCEPT. Like seqwall's QueueWorker it takes up to
 * 64 datagrams per wake-up and sends all their verdicts in one sendto(). One thread per queue.
 *
 * This is the physical limit of the NFQUEUE path in the e2e benchmark: seqwall cannot beat it.
 *
 * With --recvmmsg it takes each wake-up's datagrams with one recvmmsg() instead (64 slots of
 * copy range + 1024 bytes), as seqwall's QueueWorker does since it batches receives: the same
 * consumer with seqwall's receive trick, to tell what the trick itself is worth.
 *
 *   accept_all [--copy-range N] [--queue-length N] [--no-fail-open] [--recvmmsg] --queue N...
 *
 * Prints "ready" once every queue is bound; on SIGTERM/SIGINT prints one line per queue,
 * "queue N packets P batches B", and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/types.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define MAX_QUEUES 16
#define BATCH_LIMIT 64                 /* QueueWorker.batchLimit */
#define RECEIVE_BUFFER (128 * 1024)    /* QueueWorker.receiveBufferSize */
#define SEND_BUFFER (64 * 1024)        /* QueueWorker.sendBufferSize */

struct settings {
    uint32_t copy_range;
    uint32_t queue_length;
    int fail_open;
    int receive_buffer_bytes;
    int recvmmsg;
};

struct worker {
    uint16_t queue;
    struct mnl_socket *socket;
    uint32_t port_id;
    char *receive_buffer;
    char *send_buffer;
    int use_recvmmsg;
    size_t slot_size;
    struct mmsghdr messages[BATCH_LIMIT];
    struct iovec vectors[BATCH_LIMIT];
    size_t send_length;
    unsigned long long packets;
    unsigned long long batches;
    pthread_t thread;
};

static volatile sig_atomic_t stopping = 0;

static void on_signal(int signo) { (void)signo; stopping = 1; }

static void fail(const char *what) {
    fprintf(stderr, "accept_all: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Sends one configuration message and waits for the kernel's acknowledgment. */
static void configure(struct worker *w, struct nlmsghdr *nlh, const char *what) {
    static unsigned int sequence = 1;
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = __atomic_add_fetch(&sequence, 1, __ATOMIC_RELAXED);
    if (mnl_socket_sendto(w->socket, nlh, nlh->nlmsg_len) < 0) fail(what);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(w->socket, w->receive_buffer, RECEIVE_BUFFER);
        if (n < 0) fail(what);
        int r = mnl_cb_run(w->receive_buffer, n, nlh->nlmsg_seq, w->port_id, NULL, NULL);
        if (r < 0) fail(what);
        if (r == MNL_CB_STOP) return;
    }
}

static void bind_queue(struct worker *w, const struct settings *s) {
    w->socket = mnl_socket_open(NETLINK_NETFILTER);
    if (w->socket == NULL) fail("mnl_socket_open");
    if (mnl_socket_bind(w->socket, 0, MNL_SOCKET_AUTOPID) < 0) fail("mnl_socket_bind");
    w->port_id = mnl_socket_get_portid(w->socket);
    int fd = mnl_socket_get_fd(w->socket);
    int size = s->receive_buffer_bytes;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));

    char buffer[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, w->queue);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
    configure(w, nlh, "binding the queue (is another process holding it?)");

    nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, w->queue);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)s->copy_range);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, s->queue_length);
    uint32_t flags = NFQA_CFG_F_GSO | (s->fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
    configure(w, nlh, "configuring the queue");
}

static void flush_verdicts(struct worker *w) {
    if (w->send_length == 0) return;
    if (mnl_socket_sendto(w->socket, w->send_buffer, w->send_length) < 0 && errno != EINTR)
        perror("accept_all: sending verdicts");
    w->send_length = 0;
    w->batches++;
}

/* One packet message: read it as seqwall's shim does, then queue an NF_ACCEPT verdict. */
static int on_message(const struct nlmsghdr *nlh, void *data) {
    struct worker *w = data;
    struct nlattr *attr[NFQA_MAX + 1];
    memset(attr, 0, sizeof(attr));
    if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL) return MNL_CB_OK;
    const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
    uint32_t id = ntohl(ph->packet_id);
    volatile const void *payload = attr[NFQA_PAYLOAD] ? mnl_attr_get_payload(attr[NFQA_PAYLOAD]) : NULL;
    (void)payload;

    if (w->send_length + 128 > SEND_BUFFER) flush_verdicts(w);
    struct nlmsghdr *verdict = nfq_nlmsg_put(w->send_buffer + w->send_length, NFQNL_MSG_VERDICT, ntohs(nfg->res_id));
    nfq_nlmsg_verdict_put(verdict, (int)id, NF_ACCEPT);
    w->send_length += MNL_ALIGN(verdict->nlmsg_len);
    w->packets++;
    return MNL_CB_OK;
}

/* One recvmmsg() for the waiting datagrams, each into its own slot of receive_buffer. */
static void receive_batch(struct worker *w, int fd) {
    int n;
    do {
        n = recvmmsg(fd, w->messages, BATCH_LIMIT, MSG_DONTWAIT, NULL);
    } while (n < 0 && (errno == EINTR || errno == ENOBUFS));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept_all: recvmmsg");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (w->messages[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
        mnl_cb_run(w->receive_buffer + (size_t)i * w->slot_size, w->messages[i].msg_len, 0, w->port_id,
                   on_message, w);
    }
}

static void *run(void *argument) {
    struct worker *w = argument;
    struct pollfd pfd = { .fd = mnl_socket_get_fd(w->socket), .events = POLLIN };
    while (!stopping) {
        int ready = poll(&pfd, 1, 200);
        if (ready <= 0) continue;
        if (w->use_recvmmsg) {
            receive_batch(w, pfd.fd);
            flush_verdicts(w);
            continue;
        }
        for (int i = 0; i < BATCH_LIMIT; i++) {
            ssize_t n = recv(pfd.fd, w->receive_buffer, RECEIVE_BUFFER, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR || errno == ENOBUFS) continue;
                perror("accept_all: recv");
                break;
            }
            mnl_cb_run(w->receive_buffer, n, 0, w->port_id, on_message, w);
        }
        flush_verdicts(w);
    }
    return NULL;
}

int main(int argc, char **argv) {
    struct settings s = { .copy_range = 256, .queue_length = 4096, .fail_open = 1,
                          .receive_buffer_bytes = 8 * 1024 * 1024 };
    struct worker workers[MAX_QUEUES];
    int count = 0;
    memset(workers, 0, sizeof(workers));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--queue") == 0 && i + 1 < argc && count < MAX_QUEUES) {
            workers[count++].queue = (uint16_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--copy-range") == 0 && i + 1 < argc) {
            s.copy_range = (uint32_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--queue-length") == 0 && i + 1 < argc) {
            s.queue_length = (uint32_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--no-fail-open") == 0) {
            s.fail_open = 0;
        } else if (strcmp(argv[i], "--recvmmsg") == 0) {
            s.recvmmsg = 1;
        } else {
            fprintf(stderr, "usage: accept_all [--copy-range N] [--queue-length N] [--no-fail-open] [--recvmmsg] --queue N...\n");
            return 2;
        }
    }
    if (count == 0) workers[count++].queue = 0;

    struct sigaction action = { .sa_handler = on_signal };
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    for (int i = 0; i < count; i++) {
        workers[i].use_recvmmsg = s.recvmmsg;
        workers[i].slot_size = (s.copy_range + 1024 + 63) & ~(size_t)63;
        size_t receive_size = RECEIVE_BUFFER;
        if (s.recvmmsg && receive_size < BATCH_LIMIT * workers[i].slot_size)
            receive_size = BATCH_LIMIT * workers[i].slot_size;
        workers[i].receive_buffer = malloc(receive_size);
        workers[i].send_buffer = aligned_alloc(16, SEND_BUFFER);
        if (!workers[i].receive_buffer || !workers[i].send_buffer) fail("malloc");
        for (int j = 0; j < BATCH_LIMIT; j++) {
            workers[i].vectors[j].iov_base = workers[i].receive_buffer + (size_t)j * workers[i].slot_size;
            workers[i].vectors[j].iov_len = workers[i].slot_size;
            memset(&workers[i].messages[j], 0, sizeof(workers[i].messages[j]));
            workers[i].messages[j].msg_hdr.msg_iov = &workers[i].vectors[j];
            workers[i].messages[j].msg_hdr.msg_iovlen = 1;
        }
        bind_queue(&workers[i], &s);
    }
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < count; i++) pthread_create(&workers[i].thread, NULL, run, &workers[i]);
    for (int i = 0; i < count; i++) pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < count; i++) {
        char buffer[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, workers[i].queue);
        nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
        (void)mnl_socket_sendto(workers[i].socket, nlh, nlh->nlmsg_len);
        mnl_socket_close(workers[i].socket);
        printf("queue %u packets %llu batches %llu\n", workers[i].queue, workers[i].packets, workers[i].batches);
    }
    return 0;
}
