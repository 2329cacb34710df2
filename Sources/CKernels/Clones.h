// Whether kernels may exist as target_clones (picked at load time by an ifunc resolver). Not in a
// ThreadSanitizer or MemorySanitizer build: the resolver is instrumented like any function and runs
// while the program is relocated, before the sanitizer's runtime has started, and crashes; such
// builds keep the baseline code only (the AddressSanitizer build keeps both).
#pragma once

#if defined(__x86_64__) && !__has_feature(thread_sanitizer) && !__has_feature(memory_sanitizer)
#define ZT_CAN_CLONE 1
#else
#define ZT_CAN_CLONE 0
#endif
