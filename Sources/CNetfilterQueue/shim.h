/*
 * The C side of seqwall's NFQUEUE adapter: libmnl's socket calls, the kernel's netlink and
 * nfnetlink_queue headers (their constants; the messages are read and written in Swift, by
 * NetfilterQueueMessages), and small static inline wrappers for what Swift cannot call
 * directly.
 */
#ifndef SEQWALL_CNETFILTERQUEUE_SHIM_H
#define SEQWALL_CNETFILTERQUEUE_SHIM_H

#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/types.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/* struct mmsghdr and recvmmsg(2), which glibc declares only under _GNU_SOURCE, out of reach
 * of Swift's Glibc module: the kernel's layout (include/linux/socket.h), called directly. */
struct seqwall_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* Up to vlen datagrams in one system call; returns how many, or -1 with errno. */
static inline int seqwall_recvmmsg(int fd, struct seqwall_mmsghdr *messages, unsigned int vlen, int flags) {
    return (int)syscall(SYS_recvmmsg, fd, messages, vlen, flags, NULL);
}

/* Up to vlen datagrams sent in one system call (sendmmsg(2)); returns how many went, or -1
 * with errno when the first did not. */
static inline int seqwall_sendmmsg(int fd, struct seqwall_mmsghdr *messages, unsigned int vlen, int flags) {
    return (int)syscall(SYS_sendmmsg, fd, messages, vlen, flags);
}

/* Names the calling thread (at most 15 characters kept), as pthread_setname_np does; that one
 * is _GNU_SOURCE only, and prctl is variadic: neither reaches Swift. */
static inline int seqwall_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

#endif
