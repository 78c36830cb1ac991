/*
 * The C side of seqwall's NFQUEUE adapter: libmnl and libnetfilter_queue, plus small static
 * inline wrappers for what Swift cannot call directly (macros, attribute tables, packed
 * structs). Each wrapper does one netlink job and touches no memory but the caller's buffers,
 * so the packet path allocates nothing.
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

/* Names the calling thread (at most 15 characters kept), as pthread_setname_np does; that one
 * is _GNU_SOURCE only, and prctl is variadic: neither reaches Swift. */
static inline int seqwall_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

/* One queued packet, as read from an NFQNL_MSG_PACKET message. */
struct seqwall_nfq_packet {
    uint32_t packet_id;
    uint16_t hw_protocol;   /* ETH_P_IP, ETH_P_IPV6, host order */
    uint8_t hook;           /* NF_INET_LOCAL_IN, NF_INET_FORWARD, ... */
    uint16_t queue;
    uint32_t indev;         /* interface index or 0 */
    uint32_t outdev;
    uint32_t mark;
    const uint8_t *payload; /* the copied bytes, inside the receive buffer */
    uint32_t payload_length;
    uint32_t wire_length;   /* NFQA_CAP_LEN when the copy was cut short, else payload_length */
};

static inline uint16_t seqwall_nfq_packet_message_type(void) {
    return (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
}

/* Reads a packet message. Returns 0, or -1 when it is not a well-formed packet message. */
static inline int seqwall_nfq_read_packet(const struct nlmsghdr *nlh, struct seqwall_nfq_packet *out) {
    struct nlattr *attr[NFQA_MAX + 1];
    memset(attr, 0, sizeof(attr));
    if (nlh->nlmsg_type != seqwall_nfq_packet_message_type()) return -1;
    if (nfq_nlmsg_parse(nlh, attr) < 0) return -1;
    if (attr[NFQA_PACKET_HDR] == NULL ||
        mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(struct nfqnl_msg_packet_hdr)) return -1;

    const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
    out->packet_id = ntohl(ph->packet_id);
    out->hw_protocol = ntohs(ph->hw_protocol);
    out->hook = ph->hook;
    out->queue = ntohs(nfg->res_id);
    out->indev = attr[NFQA_IFINDEX_INDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV])) : 0;
    out->outdev = attr[NFQA_IFINDEX_OUTDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV])) : 0;
    out->mark = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
    if (attr[NFQA_PAYLOAD]) {
        out->payload = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
        out->payload_length = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    } else {
        out->payload = NULL;
        out->payload_length = 0;
    }
    out->wire_length = attr[NFQA_CAP_LEN] ? ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) : out->payload_length;
    return 0;
}

/* The queue and packet id of a packet message the receive cut short (MSG_TRUNC), so that its
 * packet still gets a verdict. nfqnl_build_packet_message (net/netfilter/nfnetlink_queue.c)
 * puts NFQA_PACKET_HDR first, right after the nfgenmsg, so the id survives any cut that leaves
 * the first attribute whole. Returns 0, or -1 when even that much is missing. */
static inline int seqwall_nfq_read_truncated_packet_id(const void *buf, size_t length,
                                                       uint16_t *queue, uint32_t *packet_id) {
    const size_t attribute_offset = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
    if (length < attribute_offset + NLA_HDRLEN + sizeof(struct nfqnl_msg_packet_hdr)) return -1;
    const struct nlmsghdr *nlh = buf;
    if (nlh->nlmsg_type != seqwall_nfq_packet_message_type()) return -1;
    const struct nlattr *attr = (const struct nlattr *)((const char *)buf + attribute_offset);
    if ((attr->nla_type & NLA_TYPE_MASK) != NFQA_PACKET_HDR ||
        attr->nla_len < NLA_HDRLEN + sizeof(struct nfqnl_msg_packet_hdr)) return -1;
    const struct nfqnl_msg_packet_hdr *ph = (const void *)((const char *)attr + NLA_HDRLEN);
    const struct nfgenmsg *nfg = (const void *)((const char *)buf + NLMSG_HDRLEN);
    *queue = ntohs(nfg->res_id);
    *packet_id = ntohl(ph->packet_id);
    return 0;
}

/* Writes a verdict message at buf (4-byte aligned, at least 64 bytes free); returns its length.
 * It never carries NFQA_MARK: the packet keeps the mark it was queued with, which belongs to
 * the operator (policy routing, kube-proxy and others match on it). */
static inline uint32_t seqwall_nfq_put_verdict(void *buf, uint16_t queue, uint32_t packet_id,
                                               uint32_t verdict) {
    struct nlmsghdr *nlh = nfq_nlmsg_put((char *)buf, NFQNL_MSG_VERDICT, queue);
    nfq_nlmsg_verdict_put(nlh, (int)packet_id, (int)verdict);
    return nlh->nlmsg_len;
}

/* NFQNL_CFG_CMD_BIND / _UNBIND for a queue, asking for an acknowledgment. */
static inline uint32_t seqwall_nfq_put_command(void *buf, uint16_t queue, uint8_t command, uint32_t seq) {
    struct nlmsghdr *nlh = nfq_nlmsg_put((char *)buf, NFQNL_MSG_CONFIG, queue);
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, command);
    return nlh->nlmsg_len;
}

/* Copy mode and range, queue length, and all flags in one NFQA_CFG_FLAGS attribute. */
static inline uint32_t seqwall_nfq_put_parameters(void *buf, uint16_t queue, uint32_t copy_range,
                                                  uint32_t queue_length, uint32_t flags,
                                                  uint32_t flags_mask, uint32_t seq) {
    struct nlmsghdr *nlh = nfq_nlmsg_put((char *)buf, NFQNL_MSG_CONFIG, queue);
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)copy_range);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, queue_length);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags_mask));
    return nlh->nlmsg_len;
}

static inline uint32_t seqwall_nfq_flag_gso(void) { return NFQA_CFG_F_GSO; }
static inline uint32_t seqwall_nfq_flag_fail_open(void) { return NFQA_CFG_F_FAIL_OPEN; }

static inline uint32_t seqwall_nlmsg_length(const struct nlmsghdr *nlh) { return nlh->nlmsg_len; }

#endif
