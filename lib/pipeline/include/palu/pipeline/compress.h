// palu pipeline: `palu-compress`, the main job — a thin driver over the stages:
// calibrate (calibrate.h) → rank search (rank_search.h) → decompose [+ Hadamard] (decompose.h)
// → write (write.h; the checkpoint's owner is formats/palu_checkpoint.h) → optional eval of the
// original and the compressed model on the same windows (eval.h) → report.json.
// The model is opened and fingerprinted once; calibration statistics stay in memory and are
// written to HDF5 only with --stats; the compressed model is evaluated in memory, with its
// factors rounded to the stored dtype, so the figures are those of the written checkpoint.
//
// Output out_dir: the compressed checkpoint and out_dir/report.json (CompressResult::to_json:
// ranks per layer/K/V/group, achieved ratio, whitened errors, damping fallbacks, time and peak RSS
// per stage, KV bytes per token original vs compressed including scales and zeros, perplexities).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "palu/compress/rank_search.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/pipeline/calibrate.h"
#include "palu/pipeline/decompose.h"
#include "palu/pipeline/eval.h"
#include "palu/pipeline/rank_search.h"
#include "palu/pipeline/run.h"
#include "palu/quant/latent_quant.h"

namespace palu::pipeline {

struct CompressParams {
    std::string model_path;
    std::string out_dir;
    CalibrationOptions calib;
    RankSearchOptions rank;
    DecomposeOptions decompose;
    quant::LatentQuantSpec quant;     ///< latent format recorded in the checkpoint (16 = f16)
    formats::PaluWriteOptions write;  ///< factor dtype, overwrite
    std::optional<EvalOptions> eval;  ///< perplexity before/after when set
    RunOptions run;
};

/// Perplexity of the original and the compressed model on the same windows.
struct CompressEval {
    EvalPplResult original;
    EvalPplResult compressed;
    std::string source;
    nlohmann::json to_json() const;
};

struct CompressResult {
    std::string model_path, out_dir;
    formats::PaluBlock palu;  ///< as written to config.json
    compress::RankPlan plan;
    std::vector<LayerReport> layers;  ///< per-layer ranks and errors (DecomposeResult)
    std::optional<CompressEval> eval;
    StageTimes stages;
    double total_seconds = 0.0;
    int64_t peak_rss_bytes = 0;
    int n_threads = 0;
    nlohmann::json to_json() const;  ///< report.json
};

/// Runs every stage. Bad input (ratio outside (0, 1], group size not dividing n_kv, missing or
/// empty calibration text, stats of another model, unwritable or non-empty out_dir) fails before
/// any long work with UsageError / IoError / FormatError; nothing is left half-written.
CompressResult run_compress(const CompressParams& params);

}  // namespace palu::pipeline
