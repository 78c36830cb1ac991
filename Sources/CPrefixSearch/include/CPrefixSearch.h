#ifndef SEQWALL_C_PREFIX_SEARCH_H
#define SEQWALL_C_PREFIX_SEARCH_H

// The halving search of an address table's IPv6 lookup (PrefixLookup, in SeqwallCore/Policy),
// in C so that each step is a conditional move rather than a branch. Which half an address falls
// in is a coin toss for a table of random prefixes, so as a branch about half the steps are
// mispredicted. Written in Swift as a select, the step still came out of the x86 backend as a
// branch (BENCHMARKS.md, Address tables); clang's __builtin_unpredictable marks the condition
// as unpredictable and the backend keeps the cmov. The step count depends only on the range's
// length, not on the address. (The IPv4 search stays a branch: as a cmov it made the matcher
// alone faster but no SYN decision, BENCHMARKS.md.)
//
// A pure function over read-only arrays: no state, no allocation, safe from any thread.
// static inline, so that Swift inlines it into the lookup like its own code.

#include <stddef.h>
#include <stdint.h>

// The index of the first of `keys[low..<high]` above `value` (`high` when none is): keys
// ascending (the IPv6 flips' high words), so every key before it is at or below `value`.
static inline ptrdiff_t seqwall_first_above_u64(const uint64_t *keys, ptrdiff_t low, ptrdiff_t high,
                                               uint64_t value) {
    ptrdiff_t count = high - low;
    if (count <= 0) return low;
    const uint64_t *base = keys + low;
    // Every key before `base` is at or below `value`, every key from `base + count` on is above
    // it: the answer lies in base[0...count].
    while (count > 1) {
        ptrdiff_t half = count >> 1;
        base = __builtin_unpredictable(base[half - 1] <= value) ? base + half : base;
        count -= half;
    }
    return (base - keys) + (*base <= value);
}

#endif
