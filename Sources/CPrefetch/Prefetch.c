// The prefetch is static inline in include/CPrefetch.h, inlined where Swift calls it; SwiftPM
// builds a C target only from a source file, hence this one.
#include "CPrefetch.h"
