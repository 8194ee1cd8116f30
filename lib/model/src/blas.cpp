// palu model: OpenBLAS thread count and kernel selection.
#include "palu/model/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "palu/core/log.h"
#include "palu/core/sysinfo.h"

namespace palu::model {

void set_blas_threads(int n_threads) {
    openblas_set_num_threads(n_threads > 0 ? n_threads : n_cpu_cores());
}

int blas_threads() { return openblas_get_num_threads(); }

std::string blas_core_name() {
    const char* name = openblas_get_corename();
    return name ? name : "unknown";
}

namespace {
bool cpu_has_avx512f() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("flags", 0) == 0) return line.find(" avx512f") != std::string::npos;
    return false;
}
}  // namespace

void blas_reexec_for_avx512(int argc, char** argv) {
    (void)argc;
    if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("PALU_NO_REEXEC")) return;
    if (!cpu_has_avx512f()) return;
    const std::string core = blas_core_name();
    if (core.find("Skylake") != std::string::npos || core.find("Cooper") != std::string::npos ||
        core.find("Sapphire") != std::string::npos)
        return;  // OpenBLAS already picked AVX-512 kernels
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv);
    // Only reached when execv failed: carry on with the detected kernels.
    PALU_LOG_WARN("model", "re-exec with OPENBLAS_CORETYPE=SkylakeX failed (%s); using %s kernels",
                  std::strerror(errno), core.c_str());
}

}  // namespace palu::model
