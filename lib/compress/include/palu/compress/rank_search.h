// palu compress: rank search, the budget → per-group rank allocation of Palu (reference §4).
//
// Input  the K/V projection shape (n_layers, n_kv_heads, d_head), the Fisher scalars of every
//        k_proj / v_proj (module level; per head group for `fisher`), a head-group size s and a
//        target (kept ratio ρ ∈ (0, 1], or KV-cache bytes per token at a latent bit width).
// Output RankPlan: rank per layer × {K, V} × group, achieved ratio.
//
// Methods, exactly as the reference allocates (palu/rank_search.py):
//  * uniform:        every group gets round_B(s·d_head·ρ).
//  * fisher_uniform: one item per module (K and V of every layer share ONE budget),
//                    r_m = min(D, ⌊T·f_m/Σf⌋) with T = 2·n_layers·D·ρ, D = n_kv·d_head; the
//                    leftover T − Σr_m is handed out +1 per module in ascending order of the
//                    fractional part (round-robin passes, capped modules skipped; a pass only
//                    stops early when the leftover hits exactly 0); then r_{m,g} = r_m // n_groups
//                    and every group is rounded.
//  * fisher:         the same floor + round-robin over (module, group) items with group-level
//                    Fisher, cap s·d_head, no split, then rounding.
// Rounding: round_B(r) = max(1, round_half_even(r/B))·B, capped at the group width (the cap is
// ours: the reference can exceed the width when it is not a multiple of B).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "palu/linalg/matrix.h"
#include "palu/quant/latent_quant.h"

namespace palu::compress {

enum class RankSearchMethod { Uniform, Fisher, FisherUniform };

/// "uniform", "fisher", "fisher_uniform" (the reference's --search_method spelling).
const char* rank_search_method_name(RankSearchMethod m);
std::optional<RankSearchMethod> parse_rank_search_method(std::string_view s);

/// Shape of the K/V projections of a model: each is [n_kv_heads·d_head, d_model].
struct KvShape {
    int64_t n_layers = 0;
    int64_t n_kv_heads = 0;
    int64_t d_head = 0;
    int64_t width() const { return n_kv_heads * d_head; }
};

/// Fisher scalars (reference §4.1: mean over the module's weights of the RMS gradient).
struct FisherScalars {
    std::vector<double> k;                      ///< [n_layers] k_proj, module level
    std::vector<double> v;                      ///< [n_layers] v_proj, module level
    std::vector<std::vector<double>> k_groups;  ///< [n_layers][n_groups] (method fisher only)
    std::vector<std::vector<double>> v_groups;  ///< [n_layers][n_groups] (method fisher only)
};

/// Fisher scalars of one k_proj / v_proj (reference §4.1, §4.3).
struct FisherReduction {
    double module_mean = 0.0;         ///< mean over all weights (fisher_uniform)
    std::vector<double> group_means;  ///< mean over each group's rows (fisher)
};

/// Reduces the elementwise RMS gradient sqrt(Σ_samples g²/n_samples) of one projection,
/// rms [n_out, d_model], to the module mean and the means over consecutive row blocks of
/// `group_rows` = s·d_head rows (the reference's `F.reshape(n_groups, −1, d).mean()`), summed in
/// f64. Throws ShapeError when group_rows does not divide n_out, NumericalError on non-finite or
/// negative entries.
FisherReduction reduce_rms_gradient(const RowMatrixXf& rms, int64_t group_rows,
                                    const std::string& name);

struct RankSearchParams {
    RankSearchMethod method = RankSearchMethod::FisherUniform;
    int64_t group_size = 4;  ///< KV heads per group s; must divide n_kv_heads
    /// Target: exactly one of ratio ∈ (0, 1] (fraction of K/V latent dims kept) or
    /// kv_bytes_per_token > 0 (converted to a ratio with `quant`, see search_ranks).
    double ratio = 0.0;
    double kv_bytes_per_token = 0.0;
    quant::LatentQuantSpec quant;  ///< latent format, for the bytes target and accounting
    int64_t rank_multiple = 0;     ///< B; 0 = default_rank_multiple(group width)
};

/// Ranks of every head group of every compressed K/V projection.
struct RankPlan {
    RankSearchMethod method = RankSearchMethod::FisherUniform;
    KvShape shape;
    int64_t group_size = 0;
    int64_t rank_multiple = 0;
    double target_ratio = 0.0;                  ///< kept ratio searched for
    std::vector<std::vector<int64_t>> k_ranks;  ///< [n_layers][n_groups]
    std::vector<std::vector<int64_t>> v_ranks;  ///< [n_layers][n_groups]

    int64_t n_groups() const { return shape.n_kv_heads / group_size; }
    int64_t group_width() const { return group_size * shape.d_head; }
    int64_t n_kept() const;  ///< Σ of all ranks
    int64_t n_full() const { return 2 * shape.n_layers * shape.width(); }
    double achieved_ratio() const { return static_cast<double>(n_kept()) / n_full(); }
};

/// Default rounding multiple B for a group width w: min(32, bit_floor(w/4)), at least 1. It is the
/// reference's 32 for every w ≥ 128 (all Llama-2/3, Mistral, Qwen2 group sizes) and keeps at least
/// four rank levels per group for small heads (stories260K: w = 32 → 8; SmolLM2 s=1: w = 64 → 16).
int64_t default_rank_multiple(int64_t group_width);

/// max(1, round_half_even(r / multiple))·multiple, capped at `cap`.
int64_t round_rank(double r, int64_t multiple, int64_t cap);

/// The reference's proportional floor + round-robin allocation of `target` dims over items with
/// Fisher scalars `fisher` (in the reference's module order), each capped at `cap`.
std::vector<int64_t> allocate_proportional(const std::vector<double>& fisher, int64_t cap,
                                           double target);

/// Kept ratio that meets `kv_bytes_per_token` for this shape and latent format (before rank
/// rounding). Throws UsageError when no ratio in (0, 1] meets it.
double ratio_for_kv_bytes(const KvShape& shape, int64_t group_size, double kv_bytes_per_token,
                          const quant::LatentQuantSpec& quant);

/// Searches ranks. `fisher` may be null for `uniform`. Throws UsageError on a bad target, group
/// size or method input; ShapeError when the Fisher arrays do not match the shape; NumericalError
/// on non-finite or negative Fisher scalars or an all-zero sum. Deterministic.
RankPlan search_ranks(const KvShape& shape, const FisherScalars* fisher,
                      const RankSearchParams& params);

/// KV-cache bytes per token of the latents of the plan (all layers, K and V), with `quant`.
int64_t kv_bytes_per_token(const RankPlan& plan, const quant::LatentQuantSpec& quant);
/// KV-cache bytes per token of the original model in f16: 2 · 2 · n_layers · n_kv·d_head.
int64_t original_kv_bytes_per_token(const KvShape& shape);

/// ranks.json: {"format":"palu.rank_plan","format_version":1, "method", shape, group size,
/// rounding multiple, target/achieved ratio, "layers":[{"k":[...],"v":[...]}...]}.
nlohmann::json rank_plan_to_json(const RankPlan& plan);
/// Parses and validates ranks.json; FormatError naming the offending key.
RankPlan rank_plan_from_json(const nlohmann::json& j);
/// {"model.layers.{l}.self_attn.k_proj": [r_0, ...], ...}: the reference's config.json
/// `head_wise_ranks`.
nlohmann::json head_wise_ranks_json(const RankPlan& plan);

}  // namespace palu::compress
