// palu pipeline: the `calibrate` and `rank-search` stages (issue 4, stages 1 and 2).
//
// calibrate:   model + text corpus (tokenized with the model's tokenizer) or token file ->
//              sampled windows (calib/sampling.h) -> Gram and Fisher sums (calib/collect.h) ->
//              HDF5 stats file (formats/stats_store.h):
//                gram/layer_N       [d, d]       Σ x xᵀ of the k/v_proj input, f64
//                fisher/k/layer_N   [d_kv, d]    Σ_windows (∂L/∂W_k)², f64
//                fisher/v/layer_N   [d_kv, d]    Σ_windows (∂L/∂W_v)², f64
//                fisher/n_samples   scalar       windows in the Fisher sums
//              root attributes: model fingerprint, data fingerprint (SHA-256 of the text/token
//              file), n_tokens, seed, settings JSON (source, sampler, samples, seqlen, offsets
//              file hash, Fisher shift, ...). An existing output with the same fingerprints and
//              settings is reused as is; one with other fingerprints or settings is refused
//              (UsageError) unless `overwrite`.
// rank-search: stats + model -> Fisher scalars (mean over each module of sqrt(ΣG²/n), reference
//              §4.1) -> compress::search_ranks -> ranks.json.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "palu/compress/rank_search.h"

namespace palu::formats {
class StatsStore;
}

namespace palu::pipeline {

struct CalibrateParams {
    std::string model_path;
    std::string text_path;              // corpus (exclusive with tokens_path)
    std::string text_format = "auto";   // auto|wikitext|jsonl|plain
    std::string tokens_path;            // raw little-endian int32 ids (.i32)
    int64_t n_samples = 128;
    int64_t seqlen = 2048;
    std::string sampler = "random";     // random|contiguous|offsets
    std::string offsets_path;           // sampler offsets
    uint64_t seed = 3;
    std::string fisher_shift = "single";  // single|double
    bool fisher = true;                 // false: Gram only
    std::string out_path;
    bool overwrite = false;             // replace an existing output made with other inputs
    int n_threads = 0;                  // 0 = all cores
    bool progress = true;
};

struct CalibrateResult {
    std::string out_path;
    bool reused = false;                // an existing matching file was kept
    int64_t n_samples = 0;
    int64_t n_tokens = 0;
    double fisher_mean_loss = 0.0;      // 0 when reused or without Fisher
    double seconds = 0.0;
    std::string model_fingerprint;
    std::string data_fingerprint;
};

/// Throws UsageError (bad/missing options, too little data, mismatching existing output),
/// IoError, FormatError, ShapeError. Writes the output atomically.
CalibrateResult run_calibrate(const CalibrateParams& params);

struct RankSearchParams {
    std::string stats_path;
    std::string model_path;
    double ratio = 0.5;                 // kept fraction of K/V latent dims, (0, 1]
    double kv_bytes = 0.0;              // > 0: target KV bytes per token instead of ratio
    int latent_bits = 16;               // latent format for the bytes target (16 = f16)
    int64_t group_size = 4;             // KV heads per group
    std::string method = "fisher_uniform";  // uniform|fisher|fisher_uniform
    int64_t round_to = 0;               // rank multiple B; 0 = compress::default_rank_multiple
    std::string out_path;               // ranks.json; empty = not written
};

struct RankSearchResult {
    compress::RankPlan plan;
    nlohmann::json json;                // rank_plan_to_json(plan)
};

/// Reads the Fisher sums of a stats file and reduces them (reference §4.1): per module the mean
/// over its weights of sqrt(Σg²/n), and per group of `group_size` heads for method fisher.
compress::FisherScalars fisher_scalars_from_stats(const formats::StatsStore& stats,
                                                  const compress::KvShape& shape,
                                                  int64_t group_size);

/// Throws UsageError (bad ratio/method/group size, stats of another model, no Fisher in the
/// stats), FormatError, IoError.
RankSearchResult run_rank_search(const RankSearchParams& params);

}  // namespace palu::pipeline
