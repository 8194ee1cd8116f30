// palu pipeline: the calibrate stage — Gram matrices of the k/v_proj input and Fisher information
// of k_proj / v_proj over sampled calibration windows, held in memory; an HDF5 stats file is
// written only when asked (--stats / palu-calibrate --out) and read only to reuse one.
//
// Input  a WeightSource opened once by the caller (and its fingerprint), calibration text or
//        token ids, or an existing stats file.
// Output CalibrationStats: per layer Σ x xᵀ (f64), per module Σ (∂L/∂W)² (f64), provenance.
// Stats file (formats/stats_store.h): root attributes model/data fingerprints, n_tokens, seed,
// settings JSON (source, sampler, samples, seqlen, offsets hash, Fisher shift, ...); datasets
// gram/layer_{l}, fisher/{k,v}/layer_{l}, fisher/n_samples, fisher/mean_loss. An existing file
// with the same fingerprints and settings is reused as is; one with other fingerprints or
// settings is refused (UsageError) unless `overwrite_stats`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "palu/calib/collect.h"
#include "palu/calib/sampling.h"
#include "palu/calib/text.h"
#include "palu/core/weight_source.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/formats/stats_store.h"
#include "palu/model/transformer.h"
#include "palu/pipeline/run.h"

namespace palu::pipeline {

/// Calibration inputs, one struct for palu-calibrate, palu-compress and palu-sweep: at most one
/// of text_path / tokens_path, and/or a stats file to reuse or keep.
struct CalibrationOptions {
    std::string text_path;  ///< text corpus
    calib::TextFormat text_format = calib::TextFormat::Auto;
    std::string tokens_path;  ///< raw little-endian int32 ids (.i32)
    int64_t n_samples = 32;   ///< windows
    int64_t seqlen = 512;     ///< tokens per window
    calib::SamplerKind sampler = calib::SamplerKind::Random;
    std::string offsets_path;  ///< window offsets (sampler Offsets)
    uint64_t seed = 3;         ///< sampling seed
    model::LabelShift fisher_shift = model::LabelShift::Single;  ///< Double: the reference's
    std::string stats_path;        ///< reused when it matches; written there after calibrating
    bool overwrite_stats = false;  ///< replace a stats_path made from other inputs
    bool has_source() const { return !text_path.empty() || !tokens_path.empty(); }
};

/// Calibration statistics in memory.
struct CalibrationStats {
    calib::GramStats gram;                     ///< per layer [d_model, d_model]
    std::optional<calib::FisherStats> fisher;  ///< absent when calibrated without Fisher
    formats::StatsFileInfo info;               ///< fingerprints, n_tokens, seed, settings JSON
    formats::CalibrationRecord record;         ///< what the palu block records
    double seconds = 0.0;                      ///< calibration (or loading) wall time
};

/// Checks the calibration inputs before any long work: one source at most, the file exists and
/// is not empty, statistics available when `need_stats` (a source, or an existing stats_path).
/// `stage` prefixes the messages; `need_what` names what needs the statistics.
void check_calibration_inputs(const CalibrationOptions& calib, bool need_stats, const char* stage,
                              const std::string& need_what);

/// The calibration windows `calib` describes (its text tokenized with `src`'s tokenizer, or its
/// token file), sampled as the stage samples them. Throws UsageError / IoError / FormatError.
calib::CalibWindows calibration_windows(const WeightSource& src, const CalibrationOptions& calib);

/// Whether the stage collects Fisher information.
enum class FisherNeed {
    None,           ///< Gram matrices only
    IfInStatsFile,  ///< only when an existing stats_path has it (so that the file matches)
    Required,
};

/// The stage: statistics for `src` (fingerprint `model_fp`). With a text/token source they are
/// collected (Fisher as `fisher` says), unless an existing stats_path matches the same inputs,
/// which is read instead; they are then saved to stats_path when one is given. Without a source,
/// stats_path is read (it must belong to the model). Throws UsageError (bad options, stats of
/// another model or settings, no Fisher when needed), IoError, FormatError.
CalibrationStats calibrate(const WeightSource& src, const std::string& model_fp,
                           const CalibrationOptions& calib, FisherNeed fisher,
                           const RunOptions& run = {});

/// Writes `stats` to `path` atomically.
void save_stats(const CalibrationStats& stats, const std::string& path);
/// Reads a stats file; it must belong to the model with fingerprint `model_fp` (empty: any).
/// `with_gram` false skips the Gram matrices (rank search needs only the Fisher sums).
CalibrationStats load_stats(const std::string& path, const std::string& model_fp,
                            const ModelConfig& config, bool with_gram = true);

/// palu-calibrate: opens the model, runs the stage with stats_path = out_path.
struct CalibrateParams {
    std::string model_path;
    CalibrationOptions calib;  ///< calib.stats_path is the output
    bool fisher = true;        ///< false: Gram only
    RunOptions run;
};

struct CalibrateResult {
    std::string out_path;
    bool reused = false;  ///< an existing matching file was kept
    int64_t n_samples = 0;
    int64_t n_tokens = 0;
    double fisher_mean_loss = 0.0;  ///< 0 without Fisher
    double seconds = 0.0;
    std::string model_fingerprint;
    std::string data_fingerprint;
};

CalibrateResult run_calibrate(const CalibrateParams& params);

}  // namespace palu::pipeline
