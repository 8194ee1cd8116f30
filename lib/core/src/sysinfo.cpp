// palu core: peak RSS and core count from /proc and sysconf.
#include "palu/core/sysinfo.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace palu {

namespace {
int64_t read_status_kb(const char* key) {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    int64_t kb = 0;
    size_t klen = std::strlen(key);
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, key, klen) == 0) {
            long long v = 0;
            if (std::sscanf(line + klen, " %lld", &v) == 1) kb = v;
            break;
        }
    }
    std::fclose(f);
    return kb;
}
}  // namespace

int64_t peak_rss_bytes() {
    return read_status_kb("VmHWM:") * 1024;
}
int64_t current_rss_bytes() {
    return read_status_kb("VmRSS:") * 1024;
}
int n_cpu_cores() {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace palu
