// palu compress: per-head-group low-rank decomposition of k_proj / v_proj (Palu M/G/J-LRD,
// reference §2.3, §3.4) and the Walsh–Hadamard fusion of the latent rotation (§5.1).
//
// Input  W [n_kv·d_head, d_model] row-major f32 (HF k_proj / v_proj weight), optional bias
//        [n_kv·d_head], ranks r_g per head group of s consecutive KV heads, and the whitening
//        factor S [d_model, d_model] (lower-triangular f64, Gram = Σ x xᵀ = S·Sᵀ).
// Output LowRankKV: VT [Σ r_g, d_model] (latent h = x·VTᵀ), U_g [s·d_head, r_g] per group
//        (k_g = h_g·U_gᵀ + b_g), reconstruction W ≈ concat_g U_g·VT_g.
//
// Whitened SVD (default): for W_g [s·d_head, d_model]:  W_g·S = U Σ Vᵀ (f64 thin SVD),
//   L_g = U_r·√Σ_r  → U_g [s·d_head, r],   R_g = √Σ_r·V_rᵀ·S⁻¹  → rows of VT [r, d_model].
// This minimizes ‖X W_gᵀ − X W'ᵀ‖_F = ‖(W_g − W')·S‖_F over rank-r W' (reference §3.4). R_g is
// obtained by a triangular solve X·S = √Σ_r·V_rᵀ instead of forming S⁻¹ (the reference calls
// torch.linalg.inv in f32): same result in exact arithmetic, better conditioned, half the flops.
// Plain SVD: the same split of the SVD of W_g itself (without the reference's full-rank assert).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "palu/linalg/hadamard.h"
#include "palu/linalg/matrix.h"

namespace palu::compress {

enum class DecomposeMethod { Whitened, Plain };
const char* decompose_method_name(DecomposeMethod m);

/// Truncation error of one group. "Whitened" errors are on the calibration activations:
/// ‖(W_g − L_g R_g)·S‖_F² = ‖X (W_g − L_g R_g)ᵀ‖_F²; "plain" errors are on the weights.
struct GroupError {
    double whitened_abs = -1.0;  ///< ‖(W_g − L_g R_g)·S‖_F²; −1 when no S was given
    double whitened_rel = -1.0;  ///< whitened_abs / ‖W_g·S‖_F²
    double plain_abs = 0.0;      ///< ‖W_g − L_g R_g‖_F²
    double plain_rel = 0.0;      ///< plain_abs / ‖W_g‖_F²
};

/// f64 factors of one group.
struct GroupFactors {
    RowMatrixXd left;   ///< L_g [s·d_head, r]
    RowMatrixXd right;  ///< R_g [r, d_model]
    GroupError error;
};

/// Decomposes one group W_g [m, d_model] at rank r (1 ≤ r ≤ min(m, d_model)).
/// `whitening` = S [d_model, d_model] lower triangular; required for Whitened, optional for Plain
/// (then used only to report the whitened error). Throws UsageError on a bad rank or a missing S,
/// ShapeError on mismatched sizes, NumericalError from the SVD / triangular solve.
GroupFactors decompose_group(const RowMatrixXd& w_g, int64_t rank, DecomposeMethod method,
                             const RowMatrixXd* whitening, const std::string& name);

/// Latent rotation fused into one group (recorded in checkpoint metadata).
struct GroupRotation {
    linalg::RotationKind kind = linalg::RotationKind::Hadamard;
    int64_t base_order = 0;
    uint64_t seed = 0;
};

/// Low-rank replacement of one k_proj or v_proj.
struct LowRankKV {
    int64_t d_model = 0;
    int64_t d_head = 0;
    int64_t group_size = 0;                ///< KV heads per group s
    std::vector<int64_t> ranks;            ///< [n_groups]
    RowMatrixXf vt;                        ///< [Σ r_g, d_model], group blocks in group order
    std::vector<RowMatrixXf> u;            ///< n_groups × [s·d_head, r_g]
    std::vector<std::vector<float>> bias;  ///< n_groups × [s·d_head], empty without bias
    std::vector<GroupError> errors;        ///< [n_groups]
    std::vector<GroupRotation> rotations;  ///< [n_groups] once fuse_hadamard ran, else empty

    int64_t n_groups() const { return static_cast<int64_t>(ranks.size()); }
    int64_t group_width() const { return group_size * d_head; }
    int64_t rank_offset(int64_t g) const;  ///< first VT row of group g
    /// Dense W' = concat_g U_g·VT_g [n_groups·s·d_head, d_model] (checks, dense export).
    RowMatrixXf reconstruct() const;
};

/// Decomposes W [n_kv·d_head, d_model] into groups of `group_size` consecutive KV heads with the
/// given ranks. `bias` is empty or [n_kv·d_head]. `name` (e.g. "layer 3 k_proj") prefixes errors.
/// Throws UsageError (group size, ranks, missing S), ShapeError, NumericalError.
LowRankKV decompose_projection(const RowMatrixXf& w, std::span<const float> bias,
                               const std::vector<int64_t>& ranks, int64_t d_head,
                               int64_t group_size, DecomposeMethod method,
                               const RowMatrixXd* whitening, const std::string& name);

/// R ← Mᵀ·R and L ← L·M for an orthogonal M [r, r]: L·R is unchanged, the latent x·Rᵀ becomes
/// (x·Rᵀ)·M. left [m, r], right [r, d].
void rotate_group_factors(RowMatrixXd& left, RowMatrixXd& right, const RowMatrixXd& m);

/// Fuses into every group the normalized Walsh–Hadamard matrix of size r_g, or the seeded
/// orthogonal fallback (seed + g) where no Hadamard matrix of that size is available. Computed in
/// f64, stored in f32. Throws UsageError if already fused.
void fuse_hadamard(LowRankKV& kv, uint64_t seed);

}  // namespace palu::compress
