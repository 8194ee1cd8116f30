// palu compress: one Llama-family attention layer rewritten as DeepSeek multi-head latent
// attention (MLA), training-free, from the k/v-input Gram matrix (docs/mla.md).
//
//   1. RoPE decoupling (RoRoPE, TransMLA): for each RoPE frequency (or group of `fold` adjacent
//      frequencies, FreqFold) the keys' 2-D components across all KV heads are seen as complex
//      numbers z ∈ C^(n_kv·fold); a unitary mixing of them commutes with RoPE, so the top
//      eigenvector u of E[z zᴴ] (from W_k·G·W_kᵀ) gives one shared rotary pair k_pe = uᴴz that
//      keeps RoPE exactly; the residual z − u·k_pe becomes a NoPE key (the approximation). The
//      query's rotary pair per head is conj(u_j)·q (exact for the kept part). `High` keeps the
//      highest rope_dim/2 frequencies (each its own PCA) and turns the others fully into NoPE.
//   2. A joint whitened SVD of [α·K_res; V] (α balances K against V) gives the latent
//      c = A·x (kv_lora_rank dims) and the up-projection B (kv_b_proj rows per query head).
//   3. q_proj per head = [W_q,h (NoPE, unchanged) ‖ rotary rows], times √((d + d_r)/d) so that
//      DeepSeek's softmax scale 1/√(qk_nope + qk_rope) gives Llama's logits.
// All math in f64. Exact parts stay exact: with one KV head (MQA) and rope_dim = d_head the
// decoupling is exact, and a full-rank latent is exact before the latent norm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "palu/compress/decompose.h"
#include "palu/linalg/matrix.h"

namespace palu::compress {

/// Which frequencies keep RoPE when rope_dim < d_head.
enum class RopeSelect {
    Fold,  ///< FreqFold: groups of d_head/rope_dim adjacent frequencies share one rotary pair
    High,  ///< the highest rope_dim/2 frequencies keep RoPE, the rest become NoPE
};
const char* rope_select_name(RopeSelect s);

struct MlaShape {
    int64_t d_model = 0, n_heads = 0, n_kv_heads = 0, d_head = 0;
};

/// Checks rope_dim against the head (even, ≤ d_head, and for Fold a divisor of d_head with
/// d_head/rope_dim dividing d_head/2). Returns an empty string when valid, else the reason.
std::string check_rope_dim(int64_t d_head, int64_t rope_dim, RopeSelect select);

/// RoPE base of the kept frequencies in DeepSeek's schedule θ'^(−2k/rope_dim): θ for Fold (pair k
/// keeps Llama frequency k·fold), θ^(rope_dim/d_head) for High (pair k keeps frequency k).
double mla_rope_theta(double theta, int64_t d_head, int64_t rope_dim, RopeSelect select);

struct RopeDecoupling {
    int64_t rope_dim = 0;
    RopeSelect select = RopeSelect::Fold;
    RowMatrixXd k_pe;   ///< [rope_dim, d_model]: kept pairs, interleaved rows (re, im) per pair
    RowMatrixXd k_res;  ///< [n_kv·d_head, d_model]: residual (NoPE) keys, Llama head layout
    /// Per (kv head j, Llama frequency i), index j·d_head/2 + i: the kept component's complex
    /// coefficient (ux, uy), and group[i] the rotary pair frequency i folds into (−1: none).
    std::vector<double> ux, uy;
    std::vector<int64_t> group;
    double key_energy = 0.0;   ///< E‖k‖² over the calibration tokens (trace W_k·G·W_kᵀ)
    double kept_energy = 0.0;  ///< of which in the rotary pairs (Σ top eigenvalues)
};

/// RoRoPE / FreqFold / High on k_proj `wk` [n_kv·d_head, d_model] (Llama rotate-half layout)
/// with the k-input Gram matrix `gram` [d_model, d_model]. With `wq` (q_proj), the PCA is
/// query-weighted: channel (j, i) counts with w = Σ_{h of kv head j} E|q_h,i|², i.e. the kept
/// component minimises E Σ w·|z − u·k_pe|² (reduced-rank: k_pe = (√w⊙e)ᴴz, u = e/√w, e the
/// top eigenvector of W^½·E[z zᴴ]·W^½), the score error the NoPE residual makes; without `wq`
/// it is TransMLA's key PCA. Throws UsageError on a bad rope_dim.
RopeDecoupling decouple_rope(const RowMatrixXd& wk, const RowMatrixXd& gram, const MlaShape& s,
                             int64_t rope_dim, RopeSelect select, const RowMatrixXd* wq = nullptr);

/// MLA q_proj [n_heads·(d_head + rope_dim), d_model]: per head the original rows (NoPE part),
/// then the rotary rows (interleaved pairs), all multiplied by `scale`.
RowMatrixXd mla_q_proj(const RowMatrixXd& wq, const RopeDecoupling& rope, const MlaShape& s,
                       double scale);

/// The joint latent: features F = [K_res; V] ≈ up·down·x.
struct JointLatent {
    RowMatrixXd down;    ///< [rank, d_model]
    RowMatrixXd up;      ///< [2·n_kv·d_head, rank]: K_res rows, then V rows
    double alpha = 1.0;  ///< K rows were weighted by alpha in the decomposition
    GroupError error;    ///< of the balanced decomposition (whitened)
};

/// Output-side metrics of the joint latent, per KV head j (block-diagonal): K errors Δk_j count
/// as Δkᵀ·M_k,j·Δk with M_k,j = Σ_{h of j} E[q_h q_hᵀ] (the score error of the NoPE part), V
/// errors as Δvᵀ·M_v,j·Δv with M_v,j = Σ_{h of j} W_o,hᵀ·W_o,h (what reaches the residual
/// stream). Each stored as its upper Cholesky factor Lᵀ (M = L·Lᵀ), damped by 1e-6·tr/d.
struct OutputMetric {
    std::vector<RowMatrixXd> k_upper, v_upper;  ///< n_kv × [d_head, d_head]
};
OutputMetric output_metric(const RowMatrixXd& wq, const RowMatrixXd& wo, const RowMatrixXd& gram,
                           const MlaShape& s);

/// Whitened SVD of [α·k_res; wv] with `chol` S (G = S·Sᵀ), optionally in the output metric
/// (`metric`: SVD of Lᵀ·F·S, the up-projection mapped back by L⁻ᵀ). alpha ≤ 0: α equalises the
/// K and V energy (in the metric used; TransMLA's BKV). rank ≤ min(2·n_kv·d_head, d_model).
JointLatent joint_latent(const RowMatrixXd& k_res, const RowMatrixXd& wv, const RowMatrixXd& chol,
                         int64_t rank, double alpha, const std::string& name,
                         const OutputMetric* metric = nullptr, const MlaShape* shape = nullptr);

/// kv_b_proj [n_heads·2·d_head, rank] from an up-projection [2·n_kv·d_head, rank]: per query
/// head its KV head's K rows then V rows.
RowMatrixXd mla_kv_b(const RowMatrixXd& up, const MlaShape& s);

/// The joint latent's features F = [k_res; wv] [2·n_kv·d_head, d_model].
RowMatrixXd kv_features(const RowMatrixXd& k_res, const RowMatrixXd& wv);

/// Least-squares refit of the up-projection for normalised latents ĉ: up' = F·E[x ĉᵀ]·(E[ĉ ĉᵀ]
/// + ridge·I)⁻¹, with F = [k_res; wv], from the sums xc = Σ x ĉᵀ [d_model, rank] and cc = Σ ĉ ĉᵀ
/// [rank, rank]. ridge = 1e-8·trace(cc)/rank keeps it defined when a latent dim is unused.
RowMatrixXd refit_up(const RowMatrixXd& k_res, const RowMatrixXd& wv, const RowMatrixXd& xc,
                     const RowMatrixXd& cc);

}  // namespace palu::compress
