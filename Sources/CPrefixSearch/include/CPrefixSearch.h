#ifndef SEQWALL_C_PREFIX_SEARCH_H
#define SEQWALL_C_PREFIX_SEARCH_H

// The halving searches of an address table's lookup (PrefixLookup, in SeqwallCore/Policy), in
// C so that each step is a conditional move rather than a branch. Which half an address falls
// in is a coin toss for a table of random prefixes, so as a branch about half the steps are
// mispredicted. Written in Swift as a select, the step still came out of the x86 backend as a
// branch (BENCHMARKS.md, Address tables); clang's __builtin_unpredictable marks the condition
// as unpredictable and the backend keeps the cmov. The step count depends only on the range's
// length, not on the address.
//
// Pure functions over read-only arrays: no state, no allocation, safe from any thread.
// static inline, so that Swift inlines them into the lookup like its own code.

#include <stddef.h>
#include <stdint.h>

// `name`: the index of the first of `keys[low..<high]` above `value` (`high` when none is), over
// keys of `type`, ascending: every key before it is at or below `value`. One body for the IPv4
// flips (32-bit) and the IPv6 flips' high words (64-bit), written once as a macro since C has
// no generics.
#define SEQWALL_FIRST_ABOVE(name, type)                                                          \
    static inline ptrdiff_t name(const type *keys, ptrdiff_t low, ptrdiff_t high, type value) {  \
        ptrdiff_t count = high - low;                                                            \
        if (count <= 0) return low;                                                              \
        const type *base = keys + low;                                                           \
        /* Every key before `base` is at or below `value`, every key from `base + count` on is   \
           above it: the answer lies in base[0...count]. */                                      \
        while (count > 1) {                                                                      \
            ptrdiff_t half = count >> 1;                                                         \
            base = __builtin_unpredictable(base[half - 1] <= value) ? base + half : base;        \
            count -= half;                                                                       \
        }                                                                                        \
        return (base - keys) + (*base <= value);                                                 \
    }

SEQWALL_FIRST_ABOVE(seqwall_first_above_u32, uint32_t)
SEQWALL_FIRST_ABOVE(seqwall_first_above_u64, uint64_t)

#endif
