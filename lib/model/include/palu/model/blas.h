// palu model: BLAS backend settings (OpenBLAS) used by the CPU engine.
// All matrix products of lib/model go through cblas_sgemm. Debian's OpenBLAS 0.3.21 detects recent
// AMD/Intel CPUs with AVX-512 as "Haswell" (AVX2 kernels); with OPENBLAS_CORETYPE=SkylakeX it runs
// AVX-512 kernels (~1.8x faster sgemm here, docs/PERFORMANCE.md). OpenBLAS reads that variable only
// when the library is loaded, so the only way to switch from inside a process is to re-exec it.
#pragma once

#include <string>

namespace palu::model {

/// Sets the number of BLAS threads (<= 0: all cores).
void set_blas_threads(int n_threads);
int blas_threads();
/// OpenBLAS kernel family in use ("Haswell", "SkylakeX", ...).
std::string blas_core_name();

/// For tools (call first thing in main): when OPENBLAS_CORETYPE is unset, PALU_NO_REEXEC is unset
/// and the CPU supports avx512f, sets OPENBLAS_CORETYPE=SkylakeX and re-executes the process
/// (execv of /proc/self/exe with the same argv) so that OpenBLAS loads its AVX-512 kernels.
/// Returns normally when no re-exec is needed or it fails (then logs a warning).
void blas_reexec_for_avx512(int argc, char** argv);

}  // namespace palu::model
