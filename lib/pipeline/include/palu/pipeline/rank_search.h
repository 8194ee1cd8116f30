// palu pipeline: the rank-search stage — a KV budget (kept ratio or bytes per token) and the
// Fisher information of the calibration statistics → a RankPlan (rank per layer × {K,V} × head
// group). Fisher scalars follow the reference (§4.1): per module the mean over its weights of
// sqrt(Σg²/n), and per group of `group_size` heads for method fisher.
#pragma once

#include <cstdint>
#include <string>

#include "palu/calib/collect.h"
#include "palu/compress/rank_search.h"
#include "palu/core/model_config.h"
#include "palu/quant/latent_quant.h"

namespace palu::pipeline {

struct CalibrationStats;

struct RankSearchOptions {
    compress::RankSearchMethod method = compress::RankSearchMethod::FisherUniform;
    double ratio = 0.5;      ///< kept fraction of the K/V latent dims, (0, 1]
    double kv_bytes = 0.0;   ///< > 0: target KV-cache bytes per token instead of `ratio`
    int64_t group_size = 0;  ///< KV heads per group; 0 = default_group_size
    int64_t round_to = 0;    ///< rank multiple; 0 = compress::default_rank_multiple
    bool needs_fisher() const { return method != compress::RankSearchMethod::Uniform; }
};

/// The default group size for n_kv KV heads: 4 when it divides n_kv, else the largest divisor ≤ 4.
int64_t default_group_size(int64_t n_kv_heads);

/// `requested` (0 = the default) checked against the model: UsageError when it does not divide
/// the KV heads. `stage` and `model` name the run in the message.
int64_t resolve_group_size(const ModelConfig& config, int64_t requested, const char* stage,
                           const std::string& model);

/// Checks ratio / kv_bytes / round_to before any long work (UsageError naming the flag).
void check_rank_search_options(const RankSearchOptions& options, const char* stage);

/// Reduces Fisher sums to the scalars of compress::search_ranks.
compress::FisherScalars fisher_scalars(const calib::FisherStats& fisher,
                                       const compress::KvShape& shape, int64_t group_size);

/// The stage: ranks for `config` with `group_size` heads per group; `stats` (with Fisher) is
/// needed unless the method is uniform. `quant` is the latent format a bytes target counts in.
compress::RankPlan search_rank_plan(const ModelConfig& config, const CalibrationStats* stats,
                                    const RankSearchOptions& options, int64_t group_size,
                                    const quant::LatentQuantSpec& quant);

/// palu-rank-search: ranks.json from a model and a stats file.
struct RankSearchParams {
    std::string model_path;
    std::string stats_path;  ///< needed unless the method is uniform
    RankSearchOptions rank;
    int latent_bits = 16;  ///< latent format a --kv-bytes target counts in (16 = f16)
    std::string out_path;  ///< ranks.json; empty = not written
};

struct RankSearchResult {
    compress::RankPlan plan;
    nlohmann::json to_json() const;  ///< compress::rank_plan_to_json
};

RankSearchResult run_rank_search(const RankSearchParams& params);

}  // namespace palu::pipeline
