// The searches are static inline in include/CPrefixSearch.h, inlined where Swift calls them;
// SwiftPM builds a C target only from a source file, hence this one.
#include "CPrefixSearch.h"
