// palu pipeline: the decompose stage — every layer's k_proj / v_proj → low-rank factors with the
// plan's ranks: a Cholesky-whitened SVD per head group (plain SVD on request), then the optional
// Walsh–Hadamard fusion. Pure math on the weights and the in-memory Gram matrices.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "palu/calib/collect.h"
#include "palu/compress/decompose.h"
#include "palu/compress/rank_search.h"
#include "palu/core/weight_source.h"

namespace palu::pipeline {

/// The factors of one layer's k_proj and v_proj.
struct CompressedLayer {
    compress::LowRankKV k;
    compress::LowRankKV v;
};

struct DecomposeOptions {
    compress::DecomposeMethod method = compress::DecomposeMethod::Whitened;
    double damp = 0.0;           ///< added to every Gram diagonal before Cholesky
    bool hadamard = false;       ///< fuse a Walsh–Hadamard rotation into each group's factors
    uint64_t hadamard_seed = 3;  ///< sign seed of the non-power-of-two Hadamard fallback
};

/// Cholesky factors S_l (Gram_l + shift·I = S_l·S_lᵀ) of the k/v-input Gram matrices, computed
/// per layer on first use with `damp` added and the reference's eigen-shift fallback
/// (−λ_min + 1e−3) when not positive definite; every fallback is logged and counted. `keep`
/// keeps the factors for reuse (sweeps) instead of only the last one. `gram` must outlive it.
class Whitening {
   public:
    Whitening(const calib::GramStats& gram, double damp, bool keep);
    const RowMatrixXd& factor(int64_t layer);
    int64_t n_fallbacks() const { return n_fallbacks_; }
    double max_shift() const { return max_shift_; }
    bool fallback(int64_t layer) const { return fallback_.at(static_cast<size_t>(layer)) > 0; }
    double shift(int64_t layer) const { return shift_.at(static_cast<size_t>(layer)); }
    double damp() const { return damp_; }

   private:
    const calib::GramStats* gram_;
    double damp_;
    bool keep_;
    std::vector<RowMatrixXd> factors_;
    std::vector<int> computed_, fallback_;
    std::vector<double> shift_;
    int64_t n_fallbacks_ = 0;
    double max_shift_ = 0.0;
    int64_t last_ = -1;  // layer held in the single slot when !keep_
};

/// Per-layer outcome: ranks and whitened / plain relative errors per group, Gram fallback.
struct LayerReport {
    int64_t layer = 0;
    struct Proj {
        std::vector<int64_t> ranks;
        std::vector<compress::GroupError> errors;
    } k, v;
    bool gram_fallback = false;
    double gram_shift = 0.0;
    bool whitened_info = false;  ///< gram_* are known (a Whitening was given)
};

/// report.json "layers": per layer ranks, per-group errors, Gram fallback.
nlohmann::json layer_reports_json(const std::vector<LayerReport>& reports);

struct DecomposeResult {
    std::vector<CompressedLayer> layers;
    std::vector<LayerReport> reports;
    compress::DecomposeMethod method = compress::DecomposeMethod::Whitened;
    int64_t gram_fallbacks = 0;
    double max_gram_shift = 0.0;
    nlohmann::json layers_json() const { return layer_reports_json(reports); }
};

/// The stage over every layer of `src`. Whitened needs `whitening`; plain uses it, when given,
/// only to report whitened errors. Throws UsageError / ShapeError.
DecomposeResult decompose_model(const WeightSource& src, const compress::RankPlan& plan,
                                Whitening* whitening, const DecomposeOptions& options,
                                bool progress);

}  // namespace palu::pipeline
