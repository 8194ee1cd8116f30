// palu model: OpenBLAS thread count and kernel selection.
#include "palu/model/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "palu/core/log.h"
#include "palu/core/sysinfo.h"

namespace palu::model {

void set_blas_threads(int n_threads) {
    openblas_set_num_threads(n_threads > 0 ? n_threads : n_cpu_cores());
}

int blas_threads() {
    return openblas_get_num_threads();
}

std::string blas_core_name() {
    const char* name = openblas_get_corename();
    return name ? name : "unknown";
}

namespace {
// The flags line of /proc/cpuinfo, padded with spaces so " flag " matches whole words.
std::string cpu_flags() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("flags", 0) == 0) return line + " ";
    return {};
}
}  // namespace

void blas_reexec_for_avx512(int argc, char** argv) {
    (void)argc;
    if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("PALU_NO_REEXEC")) return;
    const std::string flags = cpu_flags();
    const std::string core = blas_core_name();
    // OpenBLAS 0.3.21 falls back to old kernels (Haswell, or even Prescott on this VM's CPU model)
    // for CPUs newer than it knows. Pick the widest family the CPU supports instead.
    const char* want = nullptr;
    if (flags.find(" avx512f ") != std::string::npos &&
        flags.find(" avx512bw ") != std::string::npos)
        want = "SkylakeX";
    else if (flags.find(" avx2 ") != std::string::npos && flags.find(" fma ") != std::string::npos)
        want = "Haswell";
    if (!want || core == want || core.find("Cooper") != std::string::npos ||
        core.find("Sapphire") != std::string::npos || core.find("Zen") != std::string::npos)
        return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    // Only reached when execv failed: carry on with the detected kernels.
    PALU_LOG_WARN("model", "re-exec with OPENBLAS_CORETYPE=%s failed (%s); using %s kernels", want,
                  std::strerror(errno), core.c_str());
}

}  // namespace palu::model
