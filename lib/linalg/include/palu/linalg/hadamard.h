// palu linalg: Walsh–Hadamard matrices and transforms for the latent rotation of Palu's
// low-rank-aware quantization (reference §5.2).
//
// Sizes: n = 2^k (Sylvester), or n = K·2^m with K the first entry of the reference's base list
// {244, 180, 172, 156, 140, 108, 92, 84, 76, 68, 60, 52, 44, 36, 28, 40, 20, 12} dividing n (the
// reference's selection rule, kept so that exactly the same ranks are "Hadamard sizes"). The base
// matrices are built here (not copied from QuIP#'s tables): Paley I (q ≡ 3 mod 4, order q+1),
// Paley II (q ≡ 1 mod 4, order 2(q+1)) over GF(q), q = p or p², and Sylvester doubling for 40.
// K = 92, 156, 172 have no Paley construction (they need Williamson-type matrices) and are not
// supported: make_latent_rotation falls back to a seeded random orthogonal matrix there, and for
// every size that has no Hadamard matrix under the rule. The full matrix is H = H_K ⊗ H_{2^m}
// (entries ±1, H·Hᵀ = n·I); the rotation used on latents is M = H/√n (orthogonal).
#pragma once

#include <cstdint>
#include <string>

#include "palu/linalg/matrix.h"

namespace palu::linalg {

/// Base order K of the Hadamard matrix of size n under the reference's rule: 1 when n is a power
/// of two, K when the first K of the list that divides n leaves a power of two, 0 when the
/// reference has no Hadamard of size n (n ≤ 0, n ≡ 2 mod 4 above 2, or the quotient is not 2^m).
int64_t hadamard_base_order(int64_t n);

/// True when hadamard_matrix(n) can build a matrix (base order ≠ 0 and K constructible here).
bool hadamard_supported(int64_t n);

/// The ±1 Hadamard matrix H_K ⊗ H_{2^m} of order n [n, n] (H·Hᵀ = n·I).
/// Throws UsageError when !hadamard_supported(n).
RowMatrixXd hadamard_matrix(int64_t n);

/// In-place unnormalized fast Walsh–Hadamard transform (Sylvester order) of x[0..n), n = 2^k.
void fwht(double* x, int64_t n);
void fwht(float* x, int64_t n);

/// Each row x of X [n_rows, n] ← x·H/√n using the fast transform (O(n log n + n·K) per row).
/// Throws UsageError when !hadamard_supported(n).
void apply_hadamard_rows(RowMatrixXd& x);

/// What kind of orthogonal matrix a latent rotation is (recorded in checkpoint metadata).
enum class RotationKind { Hadamard, RandomOrthogonal };
const char* rotation_kind_name(RotationKind k);

/// An orthogonal n × n matrix for the latent rotation of one group.
struct LatentRotation {
    RotationKind kind = RotationKind::Hadamard;
    int64_t n = 0;
    int64_t base_order = 0;  ///< K of H_K ⊗ H_{2^m} (Hadamard only)
    uint64_t seed = 0;       ///< seed of the random orthogonal matrix (RandomOrthogonal only)
    RowMatrixXd matrix;      ///< [n, n] orthogonal: M·Mᵀ = I
};

/// Normalized Hadamard H/√n when supported, otherwise a seeded random orthogonal matrix (QR of a
/// Gaussian matrix with R's diagonal made positive; same seed → same matrix on every platform).
LatentRotation make_latent_rotation(int64_t n, uint64_t seed);

/// Seeded random orthogonal matrix [n, n] (see make_latent_rotation).
RowMatrixXd random_orthogonal(int64_t n, uint64_t seed);

}  // namespace palu::linalg
