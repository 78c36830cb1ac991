#ifndef SEQWALL_C_PREFETCH_H
#define SEQWALL_C_PREFETCH_H

// A software prefetch for the batch warm-up of the address tables' lookups
// (ConnectionTracker+DecisionWarmup.swift, PrefixMatcher). A plain load that warms a line has to
// wait for it before it retires, so the loads of one warm-up level fill the reorder buffer and
// only the lines of the few lookups it holds are in flight at once; a prefetch retires without
// waiting (AMD's and Intel's optimization manuals, PREFETCHh), so a level can put the lines of
// every lookup of the batch in flight. Swift has no prefetch of its own; clang's builtin is
// PREFETCHT0 on x86-64 (read, into every cache level) and PRFM PLDL1KEEP on AArch64.
//
// No state, no allocation, no fault: a prefetch of an address that is not mapped is dropped.
// static inline, so that Swift inlines it where it calls it.

static inline void seqwall_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
