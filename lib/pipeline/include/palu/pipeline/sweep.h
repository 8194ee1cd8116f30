// palu pipeline: `palu-sweep`, the real-model tables of issue 4. One calibration, then for every
// rank-search method × head-group size × kept ratio: rank search → whitened group SVD (kept in
// memory, CompressedOverlay) → perplexity with every requested latent format (f32 / f16 latents,
// b-bit quantized, b-bit on the Hadamard-fused factors) on the same evaluation windows.
//
// Input  a model, calibration text/tokens or a stats file, evaluation text/tokens, the grid.
// Output one SweepRow per (method, group size, ratio, latent format) plus the original model's
//        row: perplexity, KV-cache bytes per token (formula compress::kv_bytes_per_token and the
//        engine's measured KvCache::bytes_per_token, asserted equal), compression time (rank
//        search + decomposition [+ Hadamard fusion]; calibration reported once). JSON lines and a
//        markdown table, both rewritten as rows arrive so a cut-off run keeps what it measured.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "palu/pipeline/compress.h"

namespace palu::pipeline {

/// One latent format of the grid: bits 32 (f32, exact), 16 (f16), 8/4/3/2 (quantized, reference
/// defaults: asymmetric, one scale/zero per latent group and token); `hadamard` evaluates the
/// Hadamard-fused factors (quantized formats only). Label as on the command line: "16", "3h".
struct LatentSetting {
    int bits = 16;
    bool hadamard = false;
    std::string label() const;
};

struct SweepParams {
    std::string model_path;
    CalibrationOptions calib;
    double damp = 0.0;  ///< added to every Gram diagonal (compress --damp)
    EvalOptions eval;   ///< evaluation text or tokens, seqlen, max windows

    std::vector<compress::RankSearchMethod> methods = {compress::RankSearchMethod::Uniform,
                                                       compress::RankSearchMethod::FisherUniform};
    std::vector<int64_t> group_sizes;  ///< empty = default_group_size(n_kv)
    std::vector<double> ratios = {1.0, 0.7, 0.5, 0.3};
    std::vector<LatentSetting> latents = {{16, false}, {4, false}, {3, false}, {3, true}};
    int64_t round_to = 0;  ///< rank multiple; 0 = compress::default_rank_multiple
    uint64_t hadamard_seed = 3;

    std::string out_table;  ///< markdown table; empty = not written
    std::string out_json;   ///< JSON lines; empty = not written
    RunOptions run;
};

struct SweepRow {
    bool original = false;  ///< the uncompressed model's row
    std::string method;     ///< "original" for that row
    int64_t group_size = 0;
    double target_ratio = 1.0;
    double achieved_ratio = 1.0;
    LatentSetting latent;
    int64_t kv_bytes_formula = 0;   ///< compress::kv_bytes_per_token (original: f16 dense)
    int64_t kv_bytes_measured = 0;  ///< the engine's KvCache::bytes_per_token()
    int64_t kv_bytes_original = 0;  ///< original f16 KV cache per token
    double ppl = 0.0;
    double nll = 0.0;
    double compression_s = 0.0;  ///< rank search + decomposition (+ Hadamard fusion)
    double eval_s = 0.0;
    /// Set when an earlier method of the grid allocated exactly the same ranks (e.g. every
    /// method at ratio 1.0): ppl and bytes are that method's (same factors), not re-measured;
    /// compression_s is this method's rank search only.
    std::string same_plan_as;
};

struct SweepResult {
    std::vector<SweepRow> rows;  ///< original first, then the grid in loop order
    double ppl_original = 0.0;
    double calibration_s = 0.0;  ///< stage 1 + Cholesky factors + Fisher scalars
    int64_t n_windows = 0;
    int64_t seqlen = 0;
    int64_t n_eval_tokens = 0;  ///< tokens in the evaluation stream
    std::string markdown;
};

/// Runs the sweep. Bad input (empty or invalid grid lists, a group size not dividing n_kv, a
/// compressed model, missing calibration/evaluation input) fails with UsageError / IoError before
/// any long work. Throws as run_calibrate / run_eval_ppl otherwise.
SweepResult run_sweep(const SweepParams& params);

nlohmann::json to_json(const SweepRow& row);

/// The markdown table of `result` (header lines with the evaluation setup, then one row each).
std::string sweep_markdown(const SweepResult& result, const SweepParams& params);

/// Comma-separated grid lists of the CLI (`option` names the flag in messages). Each throws
/// UsageError "sweep: --ratios: ..." naming the bad item: an empty list or item, a ratio outside
/// (0, 1], a group size < 1, an unknown method, a latent format other than 32, 16, 8, 4, 3, 2
/// (optionally with 'h' for the quantized ones), or a duplicate.
std::vector<double> parse_ratio_list(const std::string& list, const std::string& option);
std::vector<int64_t> parse_group_size_list(const std::string& list, const std::string& option);
std::vector<compress::RankSearchMethod> parse_method_list(const std::string& list,
                                                          const std::string& option);
std::vector<LatentSetting> parse_latent_list(const std::string& list, const std::string& option);

}  // namespace palu::pipeline
