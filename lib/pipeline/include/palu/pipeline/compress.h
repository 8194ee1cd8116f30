// palu pipeline: `palu-compress`, the main job (issue 4): calibrate → rank search → whitened group
// SVD → optional Hadamard fusion → compressed checkpoint (+ latent quantization setting) →
// optional perplexity before/after → report.json.
//
// Input  a model (HF dir, .safetensors, .gguf, llama2.c .bin), a target kept ratio, calibration
//        text/tokens or an existing stats file.
// Output out_dir: the compressed checkpoint (docs/checkpoint.md) and out_dir/report.json (ranks per
//        layer/K/V/group, achieved ratio, whitened errors, damping fallbacks, time and peak RSS per
//        stage, KV bytes per token original vs compressed including scales and zeros, perplexities).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "palu/compress/latent_quant.h"

namespace palu::pipeline {

struct CompressParams {
    std::string model_path;
    std::string out_dir;
    double ratio = 0.5;                     ///< kept fraction of K/V latent dims, (0, 1]
    int64_t group_size = 0;                 ///< KV heads per group; 0 = auto (4, or the largest divisor of n_kv ≤ 4)
    std::string rank_search = "fisher_uniform";  ///< uniform|fisher|fisher_uniform
    int64_t round_to = 0;                   ///< rank multiple; 0 = compress::default_rank_multiple

    // Calibration (exactly one of calib_path / calib_tokens / an existing stats_path; uniform +
    // --no-whiten needs none).
    std::string calib_path;                 ///< text corpus
    std::string calib_format = "auto";      ///< auto|wikitext|jsonl|plain
    std::string calib_tokens;               ///< raw int32 token file (.i32)
    int64_t calib_samples = 64;
    int64_t calib_seqlen = 1024;
    std::string calib_sampler = "random";   ///< random|contiguous|offsets
    std::string calib_offsets;              ///< offsets file (sampler offsets)
    uint64_t seed = 3;
    std::string fisher_shift = "single";    ///< single|double (the reference's)
    std::string stats_path;                 ///< reuse when it matches; written there when calibrating

    bool whiten = true;                     ///< false: plain SVD
    double damp = 0.0;                      ///< added to every Gram diagonal before Cholesky
    bool hadamard = false;                  ///< fuse a Walsh–Hadamard rotation into the factors
    compress::LatentQuantSpec quant;        ///< latent format recorded in the checkpoint (bits 16 = f16)
    std::string factor_dtype = "auto";      ///< auto|f32|f16|bf16

    // Evaluation (optional): perplexity of the original and the compressed model on the same windows.
    std::string eval_path;
    std::string eval_format = "auto";
    std::string eval_tokens;
    int64_t eval_seqlen = 2048;
    int64_t eval_max_windows = 0;           ///< 0 = all

    int n_threads = 0;
    bool overwrite = false;
    bool progress = true;
};

struct CompressResult {
    nlohmann::json report;                  ///< what report.json holds
};

/// Runs every stage. Bad input (ratio outside (0, 1], group size not dividing n_kv, missing or
/// empty calibration text, stats of another model, unwritable or non-empty out_dir) fails before
/// any long work with UsageError / IoError / FormatError; nothing is left half-written.
CompressResult run_compress(const CompressParams& params);

/// The default group size for n_kv KV heads: 4 when it divides n_kv, else the largest divisor ≤ 4.
int64_t default_group_size(int64_t n_kv_heads);

}  // namespace palu::pipeline
