// palu pipeline: `palu-compress --layout mla` — a Llama-family model rewritten as a dense
// DeepSeek-V3 MLA checkpoint (one latent of kv_lora_rank dims + one shared rotary key per token
// and layer), the form llama.cpp (deepseek2), vLLM, SGLang and transformers serve with the
// smaller cache. Training-free, from the same calibration statistics as the Palu layout:
//   calibrate (Gram) → per layer: RoPE decoupling (compress/mla.h) → joint whitened latent of
//   [K_res; V] → q_proj with the scale folded → latent-norm pass (the engine over the calibration
//   windows: Σ x ĉᵀ, Σ ĉ ĉᵀ of the normalised latents) → kv_b_proj refit by least squares →
//   MLA checkpoint (DeepSeek-V3 HF directory + palu block) + report.json [+ perplexities, and
//   with `ablation` the cost of each approximation measured on the same windows].
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "palu/compress/mla.h"
#include "palu/core/dtype.h"
#include "palu/core/tensor.h"
#include "palu/core/weight_source.h"
#include "palu/pipeline/calibrate.h"
#include "palu/pipeline/eval.h"
#include "palu/pipeline/rank_search.h"
#include "palu/pipeline/run.h"

namespace palu::pipeline {

/// The runtime whose MLA geometry the checkpoint must respect.
enum class MlaTarget {
    Any,       ///< transformers, palu: any kv_lora_rank / rope dim
    LlamaCpp,  ///< llama.cpp deepseek2: any geometry (as Any; recorded)
    Vllm,      ///< vLLM's MLA backends: kv_lora_rank + qk_rope_head_dim ∈ {576, 320}
};
const char* mla_target_name(MlaTarget t);

/// How the latent norm (kv_a_layernorm, always applied by runtimes) is accounted for.
enum class LatentNormFit {
    Refit,  ///< kv_b_proj refit by least squares on the normalised calibration latents
    Scale,  ///< latent scaled to unit mean RMS only (no refit; for measuring the refit's gain)
    /// The latent kept so small that the norm's eps dominates (max mean square = 0.01·eps):
    /// RMSNorm acts as the constant 1/√eps, folded into its weight; rms_norm_eps set to 1e-6
    /// so every runtime uses transformers' eps. Needs f32/bf16 kv_a_proj storage.
    Linearize,
};
const char* latent_norm_fit_name(LatentNormFit f);

struct MlaOptions {
    int64_t kv_lora_rank = 0;  ///< 0: from RankSearchOptions ratio / kv_bytes
    int64_t rope_dim = 0;      ///< qk_rope_head_dim; 0: min(head_dim, 64)
    compress::RopeSelect rope_select = compress::RopeSelect::Fold;
    MlaTarget target = MlaTarget::Any;
    LatentNormFit norm_fit = LatentNormFit::Linearize;
    bool query_rope = true;     ///< query-weighted RoPE PCA (else TransMLA's key PCA)
    bool output_metric = true;  ///< latent SVD in the output metric (else input whitening only)
    double balance = 0.0;       ///< weight α of K against V in the joint SVD; 0 = equal energy
    bool ablation = false;      ///< with eval: also score each approximation alone
};

/// The geometry a request resolves to.
struct MlaGeometry {
    int64_t kv_lora_rank = 0, rope_dim = 0;
    compress::RopeSelect rope_select = compress::RopeSelect::Fold;
    double rope_theta = 0.0;         ///< the MLA rope_theta of the kept frequencies
    int64_t kv_bytes_per_token = 0;  ///< f16, all layers: 2·n_layers·(kv_lora_rank + rope)
    int64_t original_kv_bytes = 0;   ///< f16 K+V of the source
};

/// Resolves and checks an MLA request against the model before any work (UsageError with one
/// line and a hint: rope dim larger than the head or odd, a budget below the rope part, a rank
/// above what the layer's K and V can use, vLLM geometry, biases, rope scaling, MLA sources).
MlaGeometry resolve_mla_geometry(const ModelConfig& config, const MlaOptions& mla,
                                 const RankSearchOptions& rank, bool rank_given, const char* stage);

/// The MLA ModelConfig (deepseek_v3) of a Llama-family `config` with geometry `g`.
ModelConfig mla_model_config(const ModelConfig& config, const MlaGeometry& g);

/// The replaced tensors of one layer, f32 [n_out, n_in].
struct MlaLayerTensors {
    Tensor q_proj, kv_a, kv_a_norm, kv_b;
};

/// `base` seen as the MLA model: q/k/v_proj replaced by q_proj, kv_a_proj_with_mqa,
/// kv_a_layernorm, kv_b_proj (values rounded to `storage` as the written checkpoint stores them),
/// every other tensor from `base`; config() is the deepseek_v3 config, config_json_text() the
/// checkpoint's config.json (palu block `palu`). `base` must outlive it.
class MlaOverlay final : public WeightSource {
   public:
    MlaOverlay(const WeightSource& base, ModelConfig mla_config,
               std::vector<MlaLayerTensors> layers, const nlohmann::json& palu, DType storage);
    const ModelConfig& config() const override { return config_; }
    std::string format_name() const override { return base_->format_name() + "+mla"; }
    std::string path() const override { return base_->path() + " (MLA in memory)"; }
    std::vector<StoredTensorInfo> tensors() const override;
    bool has_tensor(const std::string& name) const override;
    Tensor load_f32(const std::string& name) const override;
    std::filesystem::path source_dir() const override { return base_->source_dir(); }
    std::string config_json_text() const override { return config_text_; }
    std::optional<RawTensorBytes> raw_tensor(const std::string& name) const override;
    DType storage() const { return storage_; }
    /// Whether `name` is one of the MLA tensors made here (stored as storage()).
    bool replaces(const std::string& name) const { return replaced_.count(name) > 0; }
    const WeightSource& base() const { return *base_; }

   private:
    const WeightSource* base_;
    ModelConfig config_;
    DType storage_;
    std::string config_text_;
    std::map<std::string, Tensor> replaced_;
    std::set<std::string> hidden_;
};

/// Writes `model` as an MLA checkpoint directory (atomically; tokenizer files of its base copied).
void write_mla_checkpoint(const MlaOverlay& model, const std::string& out_dir, bool overwrite);

struct MlaLayerReport {
    int64_t layer = 0;
    double rope_kept_energy = 0.0;     ///< fraction of key energy kept in the rotary pairs
    double alpha = 1.0;                ///< K weight in the joint SVD
    double latent_whitened_rel = 0.0;  ///< joint latent error (balanced, whitened)
    double norm_refit_rel = 0.0;  ///< after refit: E‖F x − B'ĉ‖² / E‖F x‖² (−1: no refit)
};

struct MlaCompressParams {
    std::string model_path;
    std::string out_dir;
    CalibrationOptions calib;
    RankSearchOptions rank;   ///< ratio (of the original K+V dims) or kv_bytes (f16)
    bool rank_given = false;  ///< ratio / kv_bytes given explicitly (else kv_lora_rank must be)
    MlaOptions mla;
    DType dtype = DType::F32;  ///< storage of the replaced tensors (F32|F16|BF16)
    bool overwrite = false;
    std::optional<EvalOptions> eval;
    RunOptions run;
};

struct MlaAblationRow {
    std::string name;  ///< what is applied
    double ppl = 0.0;
    int64_t kv_lora_rank = 0;
};

struct MlaCompressResult {
    std::string model_path, out_dir;
    MlaGeometry geometry;
    std::vector<MlaLayerReport> layers;
    std::optional<EvalPplResult> ppl_original, ppl_mla;
    std::vector<MlaAblationRow> ablation;
    nlohmann::json palu;  ///< the palu block written to config.json
    StageTimes stages;
    double total_seconds = 0.0;
    int64_t peak_rss_bytes = 0;
    nlohmann::json to_json() const;  ///< report.json
};

MlaCompressResult run_compress_mla(const MlaCompressParams& params);

}  // namespace palu::pipeline
