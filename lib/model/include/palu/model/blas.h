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

/// For tools (call first thing in main): when OPENBLAS_CORETYPE and PALU_NO_REEXEC are unset and
/// OpenBLAS picked a kernel family narrower than the CPU supports (it reports "Prescott" or
/// "Haswell" on this machine's AVX-512 CPU), sets OPENBLAS_CORETYPE=SkylakeX (avx512f+bw) or
/// Haswell (avx2+fma) and re-executes the process (execv of /proc/self/exe, same argv), so that
/// OpenBLAS loads those kernels. Returns normally when no re-exec is needed or it fails (then logs
/// a warning).
void blas_reexec_for_avx512(int argc, char** argv);

}  // namespace palu::model
