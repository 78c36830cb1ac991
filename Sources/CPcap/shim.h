/*
 * libpcap for seqwall replay: reading saved captures (pcap and pcapng) only. Swift imports
 * the API as it is; SeqwallReplay's CaptureFile is the one place that calls it.
 */
#ifndef SEQWALL_CPCAP_SHIM_H
#define SEQWALL_CPCAP_SHIM_H

#include <pcap/pcap.h>

#endif
