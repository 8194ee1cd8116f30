// palu core: process and machine facts used by reports and benchmarks.
#pragma once

#include <cstdint>

namespace palu {

/// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
int64_t peak_rss_bytes();
/// Current resident set size in bytes (VmRSS), 0 if unknown.
int64_t current_rss_bytes();
/// Number of online CPU cores (>= 1).
int n_cpu_cores();

}  // namespace palu
