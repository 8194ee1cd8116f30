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
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "palu/compress/decompose.h"
#include "palu/quant/latent_quant.h"
#include "palu/compress/rank_search.h"
#include "palu/core/weight_source.h"
#include "palu/pipeline/checkpoint.h"

namespace palu::formats {
class StatsStore;
}

namespace palu::pipeline {

/// Calibration inputs (stage 1), shared by palu-compress and palu-sweep: exactly one of
/// calib_path / calib_tokens, or an existing stats_path (uniform + plain SVD needs none).
struct CalibrationOptions {
    std::string calib_path;                 ///< text corpus
    std::string calib_format = "auto";      ///< auto|wikitext|jsonl|plain
    std::string calib_tokens;               ///< raw int32 token file (.i32)
    int64_t calib_samples = 32;
    int64_t calib_seqlen = 512;
    std::string calib_sampler = "random";   ///< random|contiguous|offsets
    std::string calib_offsets;              ///< offsets file (sampler offsets)
    uint64_t seed = 3;                      ///< sampling seed (also the Hadamard fallback seed)
    std::string fisher_shift = "single";    ///< single|double (the reference's)
    std::string stats_path;                 ///< reuse when it matches; written there when calibrating
};

struct CompressParams {
    std::string model_path;
    std::string out_dir;
    double ratio = 0.5;                     ///< kept fraction of K/V latent dims, (0, 1]
    /// Target as KV-cache bytes per token instead (> 0 replaces `ratio`): all layers, K and V,
    /// in the latent format of `quant` including scales and zeros.
    double kv_bytes = 0.0;
    int64_t group_size = 0;                 ///< KV heads per group; 0 = auto (4, or the largest divisor of n_kv ≤ 4)
    std::string rank_search = "fisher_uniform";  ///< uniform|fisher|fisher_uniform
    int64_t round_to = 0;                   ///< rank multiple; 0 = compress::default_rank_multiple

    CalibrationOptions calib;

    bool whiten = true;                     ///< false: plain SVD
    double damp = 0.0;                      ///< added to every Gram diagonal before Cholesky
    bool hadamard = false;                  ///< fuse a Walsh–Hadamard rotation into the factors
    quant::LatentQuantSpec quant;           ///< latent format recorded in the checkpoint (bits 16 = f16)
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

/// Statistics for rank search and whitening, opened from the file stage 1 produced or reused.
/// A temporary stats file (no stats_path given) is removed when this object is destroyed.
struct CalibrationStats {
    std::unique_ptr<formats::StatsStore> stats;  ///< null when no statistics are needed
    nlohmann::json info;                         ///< report.json "calibration" (null when none)
    bool reused = false;                         ///< an existing stats file was used as is
    int64_t n_tokens = 0;                        ///< calibration tokens
    double seconds = 0.0;                        ///< stage 1 wall time
    std::string temp_path;                       ///< removed on destruction when not empty

    CalibrationStats();
    CalibrationStats(CalibrationStats&& other) noexcept;
    CalibrationStats& operator=(CalibrationStats&&) = delete;
    ~CalibrationStats();
};

/// Checks the calibration inputs before any long work: one source at most, the file exists and
/// is not empty, statistics available when `need_stats`, a known Fisher shift. `stage` prefixes
/// the messages; `need_what` names what needs the statistics. Throws UsageError / IoError.
void check_calibration_inputs(const CalibrationOptions& calib, bool need_stats,
                              const std::string& stage, const std::string& need_what);

/// Stage 1: runs run_calibrate on the calibration source into calib.stats_path (reused when it
/// matches; a temporary file in `temp_dir` when empty) or opens an existing calib.stats_path, and
/// checks it belongs to the model with fingerprint `model_fp` and has Fisher sums when
/// `need_fisher`. Returns an empty object when !need_stats. Throws as run_calibrate, and
/// UsageError for stats without Fisher.
CalibrationStats obtain_calibration_stats(const std::string& model_path,
                                          const std::string& model_fp,
                                          const CalibrationOptions& calib, bool need_fisher,
                                          bool need_stats, const std::string& temp_dir,
                                          int n_threads, bool progress);

/// Runs every stage. Bad input (ratio outside (0, 1], group size not dividing n_kv, missing or
/// empty calibration text, stats of another model, unwritable or non-empty out_dir) fails before
/// any long work with UsageError / IoError / FormatError; nothing is left half-written.
CompressResult run_compress(const CompressParams& params);

/// Cholesky factors S_l (Gram_l + shift·I = S_l·S_lᵀ) of the k/v-input Gram matrices of a stats
/// file, computed per layer on first use with `damp` added and the reference's eigen-shift fallback
/// (−λ_min + 1e−3) when not positive definite; every fallback is logged and counted. `keep` keeps
/// the factors for reuse (sweeps) instead of only the last one.
class Whitening {
   public:
    Whitening(const formats::StatsStore& stats, const ModelConfig& config, double damp, bool keep);
    const RowMatrixXd& factor(int64_t layer);
    int64_t n_fallbacks() const { return n_fallbacks_; }
    double max_shift() const { return max_shift_; }
    bool fallback(int64_t layer) const { return fallback_.at(static_cast<size_t>(layer)) > 0; }
    double shift(int64_t layer) const { return shift_.at(static_cast<size_t>(layer)); }

   private:
    const formats::StatsStore* stats_;
    ModelConfig config_;
    double damp_;
    bool keep_;
    std::vector<RowMatrixXd> factors_;
    std::vector<int> computed_, fallback_;
    std::vector<double> shift_;
    int64_t n_fallbacks_ = 0;
    double max_shift_ = 0.0;
    int64_t last_ = -1;  // layer held in the single slot when !keep_
};

struct DecomposeOptions {
    compress::DecomposeMethod method = compress::DecomposeMethod::Whitened;
    bool hadamard = false;
    uint64_t seed = 3;
    bool progress = true;
};

/// Stages 3 and 4 over every layer: k_proj/v_proj of `src` → LowRankKV factors with the plan's
/// ranks (whitened needs `whitening`; plain uses it, when given, only to report whitened errors),
/// then the Hadamard fusion. `layer_reports` (optional) gets one object per layer: ranks,
/// per-group errors, Gram fallback and shift.
std::vector<CompressedLayer> decompose_model(const WeightSource& src, const compress::RankPlan& plan,
                                             Whitening* whitening, const DecomposeOptions& options,
                                             nlohmann::json* layer_reports = nullptr);

/// `base` seen as its compressed checkpoint: k/v_proj weights and biases replaced by
/// `{k,v}_proj.VT.weight` and `{k,v}_proj.U.{g}.weight|bias` (f32) from `layers`, every other
/// tensor from `base`. For evaluating many configurations without writing checkpoints. `base` and
/// `layers` must outlive it.
class CompressedOverlay final : public WeightSource {
   public:
    CompressedOverlay(const WeightSource& base, const std::vector<CompressedLayer>& layers);
    const ModelConfig& config() const override { return base_->config(); }
    std::string format_name() const override { return base_->format_name() + "+palu"; }
    std::string path() const override { return base_->path() + " (compressed in memory)"; }
    std::vector<StoredTensorInfo> tensors() const override;
    bool has_tensor(const std::string& name) const override;
    Tensor load_f32(const std::string& name) const override;

   private:
    const WeightSource* base_;
    const std::vector<CompressedLayer>* layers_;
    // name → (layer, which (0 k / 1 v), part (-1 VT, g ≥ 0 U_g weight), is_bias)
    struct Ref {
        int64_t layer;
        int which;
        int64_t group;
        bool bias;
    };
    std::map<std::string, Ref> refs_;
    std::set<std::string> hidden_;
};

/// The default group size for n_kv KV heads: 4 when it divides n_kv, else the largest divisor ≤ 4.
int64_t default_group_size(int64_t n_kv_heads);

}  // namespace palu::pipeline
