// palu pipeline: palu-compress --layout mla (mla.h).
#include "palu/pipeline/mla.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/progress.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/formats/safetensors.h"
#include "palu/formats/staging.h"
#include "palu/model/transformer.h"
#include "palu/pipeline/decompose.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ll = long long;
using compress::RopeSelect;

const char* mla_target_name(MlaTarget t) {
    return t == MlaTarget::Vllm ? "vllm" : t == MlaTarget::LlamaCpp ? "llama.cpp" : "any";
}

const char* latent_norm_fit_name(LatentNormFit f) {
    return f == LatentNormFit::Refit ? "refit" : f == LatentNormFit::Scale ? "scale" : "linearize";
}

namespace {

std::string layer_tensor(int64_t l, const char* name) {
    return strfmt("model.layers.%lld.self_attn.%s", static_cast<ll>(l), name);
}

RowMatrixXd load_f64(const WeightSource& src, const std::string& name) {
    const Tensor t = src.load_f32(name);
    PALU_CHECK(t.ndim() == 2, ShapeError, "mla: %s: expected a matrix", name.c_str());
    RowMatrixXd m(t.dim(0), t.dim(1));
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = t.data()[i];
    return m;
}

Tensor to_tensor(const RowMatrixXd& m) {
    Tensor t({m.rows(), m.cols()});
    for (int64_t i = 0; i < m.size(); ++i) t.data()[i] = static_cast<float>(m.data()[i]);
    return t;
}

RowMatrixXd gram_matrix(const calib::GramStats& g, int64_t l) {
    RowMatrixXd m(g.d, g.d);
    const auto& v = g.gram.at(static_cast<size_t>(l));
    std::copy(v.begin(), v.end(), m.data());
    return m;
}

// kv_a_layernorm's eps in every runtime once rms_norm_eps is 1e-6 (transformers builds it with
// DeepseekV3RMSNorm's default 1e-6; llama.cpp, vLLM and SGLang take rms_norm_eps).
constexpr double kNormEps = 1e-6;
// Linearize: the largest calibration token's mean square is kLinKappa·eps, so that
// c/√(ms + eps) ≈ c/√eps within 1 − 1/√(1 + kLinKappa) ≈ 0.5 % at worst (typically ~0.03 %).
constexpr double kLinKappa = 0.01;

// One layer's MLA factors before the latent-norm pass.
struct LayerWork {
    RowMatrixXd q_proj;  // [H·(d + d_r), d_model]
    RowMatrixXd k_pe;    // [d_r, d_model]
    RowMatrixXd k_res;   // [n_kv·d, d_model]
    RowMatrixXd down;    // [r, d_model], unit mean RMS of down·x on the calibration tokens
    RowMatrixXd up;      // [2·n_kv·d, r]
    RowMatrixXd up_refit;
    Eigen::VectorXd norm_w;  // kv_a_layernorm weight [r]
    double lin_scale = 1.0;  // Linearize: latent scale σ with σ²·max ms = kLinKappa·kNormEps
    MlaLayerReport report;
};

// Σ x ĉᵀ and Σ ĉ ĉᵀ of the normalised latents ĉ = c/rms(c), c = down·x, over the calibration
// windows, through the original model's forward (the k/v input observer).
struct NormSums {
    RowMatrixXd xc, cc;
    double ms_max = 0.0;  // largest mean square of the latent (before the norm) over the tokens
};

std::vector<NormSums> collect_norm_sums(const WeightSource& src, const calib::CalibWindows& win,
                                        const std::vector<LayerWork>& work, const RunOptions& run) {
    const ModelConfig& c = src.config();
    std::vector<NormSums> sums(static_cast<size_t>(c.n_layers));
    for (size_t l = 0; l < sums.size(); ++l) {
        const int64_t r = work[l].down.rows();
        sums[l].xc = RowMatrixXd::Zero(c.d_model, r);
        sums[l].cc = RowMatrixXd::Zero(r, r);
    }
    model::Transformer engine(src);
    engine.set_threads(run.n_threads);
    std::vector<Eigen::MatrixXf> down_f(sums.size());
    std::vector<Eigen::RowVectorXf> w_f(sums.size());
    for (size_t l = 0; l < sums.size(); ++l) {
        down_f[l] = work[l].down.cast<float>();
        w_f[l] = work[l].norm_w.transpose().cast<float>();
    }
    engine.add_observer([&](int64_t l, model::ObservePoint p, const TensorView& x) {
        if (p != model::ObservePoint::KvInput) return;
        const int64_t n = x.dim(0), d = x.dim(1);
        const Eigen::Map<
            const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
            xm(x.data, n, d);
        const auto& a = down_f[static_cast<size_t>(l)];
        Eigen::MatrixXf cm = xm * a.transpose();  // [n, r]
        const auto eps = static_cast<float>(kNormEps);
        NormSums& s = sums[static_cast<size_t>(l)];
        for (int64_t i = 0; i < n; ++i) {
            const float ms = cm.row(i).squaredNorm() / static_cast<float>(cm.cols());
            s.ms_max = std::max(s.ms_max, static_cast<double>(ms));
            cm.row(i) = cm.row(i).cwiseProduct(w_f[static_cast<size_t>(l)]) / std::sqrt(ms + eps);
        }
        s.xc += (xm.transpose() * cm).cast<double>();
        s.cc += (cm.transpose() * cm).cast<double>();
    });
    Progress prog("mla", "latent-norm pass: windows", win.n_samples());
    for (int64_t w = 0; w < win.n_samples(); ++w) {
        auto cache = engine.make_cache(1, win.seqlen);
        engine.forward(win.window(w), 1, win.seqlen, *cache, /*last_only=*/true);
        if (run.progress) prog.update(w + 1);
    }
    return sums;
}

// Relative error E‖F x − B ĉ‖² / E‖F x‖² from the Gram G and the sums (F = [k_res; wv]).
double latent_fit_rel(const RowMatrixXd& f, const RowMatrixXd& gram, const NormSums& s,
                      const RowMatrixXd& b) {
    const double total = (f * gram * f.transpose()).trace();
    const double cross = (b.transpose() * f * s.xc).trace();
    const double quad = (b * s.cc * b.transpose()).trace();
    return total > 0 ? (total - 2.0 * cross + quad) / total : 0.0;
}

// The replaced tensors of every layer for one variant.
std::vector<MlaLayerTensors> layer_tensors(const std::vector<LayerWork>& work,
                                           const compress::MlaShape& shape, LatentNormFit fit) {
    std::vector<MlaLayerTensors> out;
    out.reserve(work.size());
    for (const LayerWork& w : work) {
        const int64_t r = w.down.rows();
        const bool lin = fit == LatentNormFit::Linearize;
        RowMatrixXd kv_a(r + w.k_pe.rows(), w.down.cols());
        kv_a.topRows(r) = lin ? RowMatrixXd(w.lin_scale * w.down) : w.down;
        kv_a.bottomRows(w.k_pe.rows()) = w.k_pe;
        MlaLayerTensors t;
        t.q_proj = to_tensor(w.q_proj);
        t.kv_a = to_tensor(kv_a);
        t.kv_a_norm = Tensor({r});
        const double wl = std::sqrt(kNormEps) / w.lin_scale;
        for (int64_t i = 0; i < r; ++i)
            t.kv_a_norm.data()[i] = static_cast<float>(lin ? wl : w.norm_w(i));
        t.kv_b =
            to_tensor(compress::mla_kv_b(fit == LatentNormFit::Refit ? w.up_refit : w.up, shape));
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

MlaGeometry resolve_mla_geometry(const ModelConfig& c, const MlaOptions& o,
                                 const RankSearchOptions& rank, bool rank_given, const char* st) {
    PALU_CHECK(!c.is_mla(), UsageError,
               "%s: the model is already MLA (deepseek_v3); hint: --layout mla converts a "
               "Llama-family model",
               st);
    PALU_CHECK(!c.qkv_bias && !c.o_bias, UsageError,
               "%s: --layout mla: attention biases (%s) are not supported yet: MLA runtimes have "
               "no q/k/v biases; hint: use --layout palu for this model",
               st, c.architecture.c_str());
    PALU_CHECK(c.rope_scaling.type == "none", UsageError,
               "%s: --layout mla: rope scaling '%s' is not supported yet; hint: use --layout palu",
               st, c.rope_scaling.type.c_str());
    PALU_CHECK(c.d_head % 2 == 0, UsageError, "%s: --layout mla needs an even head_dim, got %lld",
               st, static_cast<ll>(c.d_head));
    MlaGeometry g;
    g.rope_select = o.rope_select;
    g.rope_dim = o.rope_dim > 0 ? o.rope_dim : std::min<int64_t>(c.d_head, 64);
    const std::string why = compress::check_rope_dim(c.d_head, g.rope_dim, o.rope_select);
    PALU_CHECK(why.empty(), UsageError, "%s: --rope-dim: %s", st, why.c_str());
    const int64_t full = 2 * c.n_kv_heads * c.d_head;  // K+V dims per token and layer
    const int64_t max_rank = std::min(full, c.d_model);
    g.original_kv_bytes = 2 * c.n_layers * full;
    if (o.kv_lora_rank > 0) {
        g.kv_lora_rank = o.kv_lora_rank;
    } else {
        PALU_CHECK(rank_given, UsageError,
                   "%s: --layout mla: give the latent size: --kv-lora-rank R, --ratio R or "
                   "--kv-bytes N",
                   st);
        int64_t dims = 0;  // kv_lora_rank + rope per layer
        if (rank.kv_bytes > 0.0)
            dims = static_cast<int64_t>(std::floor(rank.kv_bytes / (2.0 * c.n_layers)));
        else
            dims = static_cast<int64_t>(std::llround(rank.ratio * static_cast<double>(full)));
        if (o.target == MlaTarget::Vllm) {
            // The vLLM latent closest to the budget (576 or 320 per layer).
            dims = std::abs(dims - 576) < std::abs(dims - 320) ? 576 : 320;
        }
        g.kv_lora_rank = dims - g.rope_dim;
        PALU_CHECK(g.kv_lora_rank >= 1, UsageError,
                   "%s: --layout mla: the budget (%lld dims per layer) is not above the rope part "
                   "(%lld); hint: raise --ratio / --kv-bytes or lower --rope-dim",
                   st, static_cast<ll>(dims), static_cast<ll>(g.rope_dim));
    }
    PALU_CHECK(g.kv_lora_rank <= max_rank, UsageError,
               "%s: --layout mla: kv_lora_rank %lld is above what the layer can use (min(2 * "
               "n_kv_heads * head_dim, hidden_size) = %lld); hint: lower the budget",
               st, static_cast<ll>(g.kv_lora_rank), static_cast<ll>(max_rank));
    if (o.target == MlaTarget::Vllm) {
        const int64_t sum = g.kv_lora_rank + g.rope_dim;
        PALU_CHECK(sum == 576 || sum == 320, UsageError,
                   "%s: --target vllm: kv_lora_rank + rope dim = %lld, but vLLM's MLA kernels "
                   "accept only 576 or 320; hint: --kv-lora-rank %lld or %lld with --rope-dim "
                   "%lld",
                   st, static_cast<ll>(sum), static_cast<ll>(576 - g.rope_dim),
                   static_cast<ll>(320 - g.rope_dim), static_cast<ll>(g.rope_dim));
    }
    g.rope_theta = compress::mla_rope_theta(c.rope_theta, c.d_head, g.rope_dim, g.rope_select);
    g.kv_bytes_per_token = 2 * c.n_layers * (g.kv_lora_rank + g.rope_dim);
    return g;
}

ModelConfig mla_model_config(const ModelConfig& c, const MlaGeometry& g) {
    ModelConfig m = c;
    m.architecture = "deepseek_v3";
    MlaConfig mc;
    mc.kv_lora_rank = g.kv_lora_rank;
    mc.qk_rope_head_dim = g.rope_dim;
    mc.qk_nope_head_dim = c.d_head;
    mc.v_head_dim = c.d_head;
    mc.rope_interleave = true;
    m.mla = mc;
    m.d_head = c.d_head + g.rope_dim;
    m.n_kv_heads = c.n_heads;
    m.rope_theta = g.rope_theta;
    return m;
}

// ---- MlaOverlay -------------------------------------------------------------------------------

MlaOverlay::MlaOverlay(const WeightSource& base, ModelConfig mla_config,
                       std::vector<MlaLayerTensors> layers, const json& palu, DType storage)
    : base_(&base), config_(std::move(mla_config)), storage_(storage) {
    PALU_CHECK(static_cast<int64_t>(layers.size()) == config_.n_layers, ShapeError,
               "mla: %zu layers of tensors for a model of %lld layers", layers.size(),
               static_cast<ll>(config_.n_layers));
    PALU_CHECK(storage == DType::F32 || storage == DType::F16 || storage == DType::BF16, UsageError,
               "mla: storage %s: expected f32, f16 or bf16", dtype_name(storage));
    for (int64_t l = 0; l < config_.n_layers; ++l) {
        MlaLayerTensors& t = layers[static_cast<size_t>(l)];
        hidden_.insert(layer_tensor(l, "k_proj.weight"));
        hidden_.insert(layer_tensor(l, "v_proj.weight"));
        for (auto* x : {&t.q_proj, &t.kv_a, &t.kv_a_norm, &t.kv_b})
            round_to_storage(x->data(), static_cast<size_t>(x->numel()), storage);
        replaced_[layer_tensor(l, "q_proj.weight")] = std::move(t.q_proj);
        replaced_[layer_tensor(l, "kv_a_proj_with_mqa.weight")] = std::move(t.kv_a);
        replaced_[layer_tensor(l, "kv_a_layernorm.weight")] = std::move(t.kv_a_norm);
        replaced_[layer_tensor(l, "kv_b_proj.weight")] = std::move(t.kv_b);
    }
    json cfg = formats::hf_config_json(config_, formats::torch_dtype_name(storage));
    cfg["palu"] = palu;
    config_text_ = cfg.dump();
}

std::vector<StoredTensorInfo> MlaOverlay::tensors() const {
    std::vector<StoredTensorInfo> out;
    for (auto& t : base_->tensors())
        if (!hidden_.count(t.name) && !replaced_.count(t.name)) out.push_back(std::move(t));
    for (const auto& [name, t] : replaced_)
        out.push_back({name, t.shape(), dtype_name(storage_),
                       static_cast<uint64_t>(t.numel()) * dtype_size(storage_)});
    std::sort(out.begin(), out.end(),
              [](const StoredTensorInfo& a, const StoredTensorInfo& b) { return a.name < b.name; });
    return out;
}

bool MlaOverlay::has_tensor(const std::string& name) const {
    if (replaced_.count(name)) return true;
    return !hidden_.count(name) && base_->has_tensor(name);
}

std::optional<RawTensorBytes> MlaOverlay::raw_tensor(const std::string& name) const {
    if (replaced_.count(name) || hidden_.count(name)) return std::nullopt;
    return base_->raw_tensor(name);
}

Tensor MlaOverlay::load_f32(const std::string& name) const {
    const auto it = replaced_.find(name);
    if (it != replaced_.end()) return it->second;
    PALU_CHECK(!hidden_.count(name), FormatError,
               "mla: tensor '%s' is replaced by the latent projections", name.c_str());
    return base_->load_f32(name);
}

void write_mla_checkpoint(const MlaOverlay& model, const std::string& out_dir, bool overwrite) {
    const auto t0 = std::chrono::steady_clock::now();
    formats::StagingDir stage(out_dir, overwrite, model.base().source_dir(), "checkpoint");
    formats::TensorWriteList list;
    std::deque<Tensor> keep;
    for (const auto& t : model.tensors()) {
        if (auto raw = model.raw_tensor(t.name)) {
            list.add_raw(t.name, raw->dtype, raw->shape, raw->bytes);
            continue;
        }
        keep.push_back(model.load_f32(t.name));
        const Tensor& x = keep.back();
        // Replaced tensors in the requested storage; untouched ones of GGUF / llama2.c sources
        // (no safetensors equivalent) as the f32 values the engine sees.
        const bool replaced = model.replaces(t.name);
        list.add_f32(t.name, replaced ? model.storage() : DType::F32, x.shape(), x.data(),
                     static_cast<size_t>(x.numel()), "checkpoint");
    }
    const size_t n_tensors = list.size();
    const uint64_t n_bytes = list.n_bytes();
    formats::write_safetensors(stage.path(), list.take(), {{"format", "pt"}});
    formats::write_text_file(stage.path() / "config.json",
                             formats::palu_config_text(json::parse(model.config_json_text())),
                             "checkpoint");
    const auto tok = formats::copy_tokenizer_files(model.base(), stage.path(), "checkpoint");
    if (tok.empty())
        PALU_LOG_WARN("checkpoint", "no tokenizer found for %s; the checkpoint has none",
                      model.base().path().c_str());
    stage.commit();
    PALU_LOG_INFO("checkpoint", "wrote MLA checkpoint %s: %zu tensors, %s; %.2f s",
                  stage.final_path().string().c_str(), n_tensors,
                  bytes_str(static_cast<double>(n_bytes)).c_str(), seconds_since(t0));
}

// ---- the driver --------------------------------------------------------------------------------

json MlaCompressResult::to_json() const {
    json layers_j = json::array();
    for (const auto& l : layers)
        layers_j.push_back({{"layer", l.layer},
                            {"rope_kept_energy", l.rope_kept_energy},
                            {"alpha", l.alpha},
                            {"latent_whitened_rel_err", l.latent_whitened_rel},
                            {"latent_norm_fit_rel_err", l.norm_refit_rel}});
    json eval = nullptr;
    if (ppl_original && ppl_mla)
        eval = {{"seqlen", ppl_mla->seqlen},
                {"n_windows", ppl_mla->n_windows},
                {"ppl_original", ppl_original->ppl},
                {"ppl_mla", ppl_mla->ppl},
                {"ppl_ratio", ppl_mla->ppl / ppl_original->ppl},
                {"kv_cache_bytes_per_token_measured", ppl_mla->kv_bytes_per_token},
                {"kv_cache_bytes_per_token_original", ppl_original->kv_bytes_per_token}};
    json abl = json::array();
    for (const auto& a : ablation)
        abl.push_back({{"applied", a.name}, {"ppl", a.ppl}, {"kv_lora_rank", a.kv_lora_rank}});
    return {{"format", "palu.report"},
            {"format_version", 1},
            {"layout", "mla"},
            {"model", model_path},
            {"out", out_dir},
            {"palu", palu},
            {"layers", layers_j},
            {"eval", eval},
            {"ablation", abl},
            {"stages", stages.to_json()},
            {"total_seconds", total_seconds},
            {"peak_rss_bytes", peak_rss_bytes}};
}

MlaCompressResult run_compress_mla(const MlaCompressParams& p) {
    const auto t_start = std::chrono::steady_clock::now();
    const char* st = "compress";
    PALU_CHECK(p.dtype == DType::F32 || p.dtype == DType::F16 || p.dtype == DType::BF16, UsageError,
               "%s: --factor-dtype: expected f32, f16 or bf16", st);
    PALU_CHECK(!(p.mla.norm_fit == LatentNormFit::Linearize && p.dtype == DType::F16), UsageError,
               "%s: --latent-norm-fit linearize keeps the latent below the norm's eps, which f16 "
               "weights cannot hold (subnormals); hint: --factor-dtype f32 or bf16, or "
               "--latent-norm-fit refit",
               st);
    if (p.rank_given) check_rank_search_options(p.rank, st);
    formats::check_output_dir(p.out_dir, p.overwrite, st);
    PALU_CHECK(p.calib.has_source(), UsageError,
               "%s: --layout mla needs calibration text (the latent-norm refit runs the model "
               "over it); hint: pass --calib TEXT or --calib-tokens FILE",
               st);
    check_calibration_inputs(p.calib, true, st, "--layout mla");
    if (p.eval) {
        PALU_CHECK(p.eval->has_source() && p.eval->text_path.empty() != p.eval->tokens_path.empty(),
                   UsageError, "%s: give one of --eval TEXT or --eval-tokens FILE", st);
        PALU_CHECK(fs::is_regular_file(p.eval->source()), IoError,
                   "%s: evaluation file %s does not exist", st, p.eval->source().c_str());
    }
    PALU_CHECK(!p.mla.ablation || p.eval, UsageError,
               "%s: --mla-ablation scores each approximation: it needs --eval TEXT", st);
    MlaCompressResult res;
    res.model_path = p.model_path;
    res.out_dir = p.out_dir;
    auto src = formats::open_model(p.model_path);
    const ModelConfig& c = src->config();
    PALU_CHECK(!formats::is_palu_checkpoint(*src), UsageError,
               "%s: %s is already a compressed palu checkpoint; hint: compress the original model",
               st, p.model_path.c_str());
    res.geometry = resolve_mla_geometry(c, p.mla, p.rank, p.rank_given, st);
    const MlaGeometry& g = res.geometry;
    PALU_LOG_INFO(
        st,
        "MLA layout: kv_lora_rank %lld + rope %lld (%s, rope_theta %g -> %g): %s per "
        "token (original f16 %s, %.3fx smaller)",
        static_cast<ll>(g.kv_lora_rank), static_cast<ll>(g.rope_dim),
        compress::rope_select_name(g.rope_select), c.rope_theta, g.rope_theta,
        bytes_str(g.kv_bytes_per_token).c_str(), bytes_str(g.original_kv_bytes).c_str(),
        static_cast<double>(g.original_kv_bytes) / static_cast<double>(g.kv_bytes_per_token));
    const std::string model_fp = formats::fingerprint_model(*src);
    const CalibrationStats stats =
        calibrate(*src, model_fp, p.calib, FisherNeed::IfInStatsFile, p.run);
    res.stages.done("calibrate");

    // Per layer: RoPE decoupling, joint latent, q_proj.
    const compress::MlaShape shape{c.d_model, c.n_heads, c.n_kv_heads, c.d_head};
    const double q_scale =
        std::sqrt(static_cast<double>(c.d_head + g.rope_dim) / static_cast<double>(c.d_head));
    const double n_tok = static_cast<double>(std::max<int64_t>(stats.gram.n_tokens, 1));
    Whitening whitening(stats.gram, 0.0, /*keep=*/false);
    std::vector<LayerWork> work(static_cast<size_t>(c.n_layers));
    std::vector<RowMatrixXd> wv_all(work.size());
    // Kept for the ablation's full-rank latent.
    std::vector<RowMatrixXd> chol_keep;
    std::vector<std::optional<compress::OutputMetric>> metric_keep;
    Progress prog(st, "MLA layers", c.n_layers);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        LayerWork& w = work[static_cast<size_t>(l)];
        const RowMatrixXd gram = gram_matrix(stats.gram, l);
        const RowMatrixXd wq = load_f64(*src, layer_tensor(l, "q_proj.weight"));
        const RowMatrixXd wk = load_f64(*src, layer_tensor(l, "k_proj.weight"));
        RowMatrixXd wv = load_f64(*src, layer_tensor(l, "v_proj.weight"));
        const compress::RopeDecoupling rope = compress::decouple_rope(
            wk, gram, shape, g.rope_dim, g.rope_select, p.mla.query_rope ? &wq : nullptr);
        const RowMatrixXd& chol = whitening.factor(l);
        std::optional<compress::OutputMetric> metric;
        if (p.mla.output_metric)
            metric = compress::output_metric(wq, load_f64(*src, layer_tensor(l, "o_proj.weight")),
                                             gram, shape);
        const compress::OutputMetric* mp = metric ? &*metric : nullptr;
        compress::JointLatent jl =
            compress::joint_latent(rope.k_res, wv, chol, g.kv_lora_rank, p.mla.balance,
                                   strfmt("layer %lld latent", static_cast<ll>(l)), mp, &shape);
        if (p.mla.ablation) {
            chol_keep.push_back(chol);
            metric_keep.push_back(metric);
        }
        // Unit mean RMS of the latent on the calibration tokens (the norm then changes little,
        // and llama.cpp's eps (rms_norm_eps) and DeepSeek's (1e-6) differ negligibly).
        const double ms = (jl.down * gram * jl.down.transpose()).trace() /
                          (static_cast<double>(g.kv_lora_rank) * n_tok);
        const double s = ms > 0 ? std::sqrt(ms) : 1.0;
        jl.down /= s;
        jl.up *= s;
        w.norm_w = Eigen::VectorXd::Ones(g.kv_lora_rank);
        w.q_proj = compress::mla_q_proj(wq, rope, shape, q_scale);
        w.k_pe = rope.k_pe;
        w.k_res = rope.k_res;
        w.down = std::move(jl.down);
        w.up = std::move(jl.up);
        w.report.layer = l;
        w.report.rope_kept_energy = rope.key_energy > 0 ? rope.kept_energy / rope.key_energy : 1.0;
        w.report.alpha = jl.alpha;
        w.report.latent_whitened_rel = jl.error.whitened_rel;
        wv_all[static_cast<size_t>(l)] = std::move(wv);
        if (p.run.progress) prog.update(l + 1);
    }
    res.stages.done("decompose");

    // The latent-norm pass and the refit of kv_b_proj.
    const calib::CalibWindows windows = calibration_windows(*src, p.calib);
    const std::vector<NormSums> sums = collect_norm_sums(*src, windows, work, p.run);
    for (size_t l = 0; l < work.size(); ++l) {
        LayerWork& w = work[l];
        const RowMatrixXd f = compress::kv_features(w.k_res, wv_all[l]);
        const RowMatrixXd gram = gram_matrix(stats.gram, static_cast<int64_t>(l));
        w.up_refit = compress::refit_up(w.k_res, wv_all[l], sums[l].xc, sums[l].cc);
        const RowMatrixXd& used = p.mla.norm_fit == LatentNormFit::Refit ? w.up_refit : w.up;
        w.lin_scale = std::sqrt(kLinKappa * kNormEps / std::max(sums[l].ms_max, 1e-300));
        w.report.norm_refit_rel = p.mla.norm_fit == LatentNormFit::Linearize
                                      ? -1.0
                                      : latent_fit_rel(f, gram, sums[l], used);
        res.layers.push_back(w.report);
    }
    res.stages.done("latent_norm");

    double kept = 0, lat = 0, fit = 0;
    for (const auto& r : res.layers) {
        kept += r.rope_kept_energy;
        lat += r.latent_whitened_rel;
        fit += r.norm_refit_rel;
    }
    const double nl = static_cast<double>(c.n_layers);
    res.palu = {{"format_version", formats::kPaluFormatVersion},
                {"layout", "mla"},
                {"source_model",
                 {{"path", p.model_path}, {"format", src->format_name()}, {"sha256", model_fp}}},
                {"calibration", formats::to_json(stats.record)},
                {"mla",
                 {{"kv_lora_rank", g.kv_lora_rank},
                  {"rope_dim", g.rope_dim},
                  {"rope_select", compress::rope_select_name(g.rope_select)},
                  {"rope_theta_source", c.rope_theta},
                  {"rope_theta", g.rope_theta},
                  {"target", mla_target_name(p.mla.target)},
                  {"latent_norm_fit", latent_norm_fit_name(p.mla.norm_fit)},
                  {"balance", p.mla.balance > 0 ? json(p.mla.balance) : json("auto")},
                  {"rope_pca", p.mla.query_rope ? "query-weighted" : "key"},
                  {"latent_metric", p.mla.output_metric ? "output" : "input"},
                  {"q_scale", q_scale}}},
                {"approximations",
                 {{{"name", "rope_decoupling"},
                   {"what",
                    "per-frequency complex PCA of the keys across KV heads (RoRoPE); the top "
                    "component keeps RoPE, the residual keys are scored without rotation"},
                   {"mean_key_energy_kept", kept / nl}},
                  {{"name", "low_rank_latent"},
                   {"what", "joint whitened SVD of [alpha*K_res; V] at kv_lora_rank"},
                   {"mean_whitened_rel_err", lat / nl}},
                  {{"name", "latent_norm"},
                   {"what", p.mla.norm_fit == LatentNormFit::Linearize
                                ? "kv_a_layernorm (always applied by runtimes) made a constant: "
                                  "latent max mean square 0.01*eps on the calibration tokens "
                                  "(<= 0.5 % per token), rms_norm_eps 1e-6"
                            : p.mla.norm_fit == LatentNormFit::Refit
                                ? "kv_a_layernorm (always applied by runtimes): kv_b_proj refit "
                                  "by least squares on the normalised calibration latents"
                                : "kv_a_layernorm (always applied by runtimes): latent at unit "
                                  "mean RMS, no refit"},
                   {"mean_fit_rel_err",
                    p.mla.norm_fit == LatentNormFit::Linearize ? json(nullptr) : json(fit / nl)}}}},
                {"kv_bytes_per_token",
                 {{"original_f16", g.original_kv_bytes},
                  {"mla_f16", g.kv_bytes_per_token},
                  {"ratio", static_cast<double>(g.kv_bytes_per_token) /
                                static_cast<double>(g.original_kv_bytes)}}}};

    ModelConfig mcfg = mla_model_config(c, g);
    if (p.mla.norm_fit == LatentNormFit::Linearize) mcfg.rms_norm_eps = kNormEps;
    const MlaOverlay model(*src, mcfg, layer_tensors(work, shape, p.mla.norm_fit), res.palu,
                           p.dtype);
    write_mla_checkpoint(model, p.out_dir, p.overwrite);
    res.stages.done("write");

    if (p.eval) {
        const std::vector<int32_t> ids = load_eval_tokens(*p.eval, *src);
        res.ppl_original = eval_ppl(*src, ids, *p.eval, p.run);
        res.ppl_mla = eval_ppl(model, ids, *p.eval, p.run);
        PALU_LOG_INFO(st, "perplexity (%lld windows of %lld): original %.4f, MLA %.4f",
                      static_cast<ll>(res.ppl_mla->n_windows), static_cast<ll>(p.eval->seqlen),
                      res.ppl_original->ppl, res.ppl_mla->ppl);
        if (p.mla.ablation) {
            res.ablation.push_back({"original", res.ppl_original->ppl, 0});
            // 1. RoPE decoupling alone: a full-rank latent, no latent norm.
            const int64_t r_full = std::min(2 * c.n_kv_heads * c.d_head, c.d_model);
            std::vector<LayerWork> full(work.size());
            for (size_t l = 0; l < work.size(); ++l) {
                full[l].q_proj = work[l].q_proj;
                full[l].k_pe = work[l].k_pe;
                compress::JointLatent jl = compress::joint_latent(
                    work[l].k_res, wv_all[l], chol_keep[l], r_full, p.mla.balance, "ablation",
                    metric_keep[l] ? &*metric_keep[l] : nullptr, &shape);
                full[l].norm_w = Eigen::VectorXd::Ones(r_full);
                full[l].down = std::move(jl.down);
                full[l].up = std::move(jl.up);
            }
            MlaGeometry gf = g;
            gf.kv_lora_rank = r_full;
            ModelConfig cf = mla_model_config(c, gf);
            cf.mla->latent_norm = false;
            {
                const MlaOverlay m(*src, cf, layer_tensors(full, shape, LatentNormFit::Scale),
                                   res.palu, p.dtype);
                res.ablation.push_back({"rope decoupling (full-rank latent, no latent norm)",
                                        eval_ppl(m, ids, *p.eval, p.run).ppl, r_full});
            }
            ModelConfig cn = mla_model_config(c, g);  // the source's rms_norm_eps
            cn.mla->latent_norm = false;
            {
                const MlaOverlay m(*src, cn, layer_tensors(work, shape, LatentNormFit::Scale),
                                   res.palu, p.dtype);
                res.ablation.push_back({"+ low-rank latent (no latent norm)",
                                        eval_ppl(m, ids, *p.eval, p.run).ppl, g.kv_lora_rank});
            }
            for (const LatentNormFit f :
                 {LatentNormFit::Scale, LatentNormFit::Refit, LatentNormFit::Linearize}) {
                ModelConfig cv = mla_model_config(c, g);
                if (f == LatentNormFit::Linearize) cv.rms_norm_eps = kNormEps;
                const MlaOverlay m(*src, cv, layer_tensors(work, shape, f), res.palu, p.dtype);
                res.ablation.push_back({std::string("+ latent norm, ") +
                                            (f == LatentNormFit::Scale   ? "kv_b not refit"
                                             : f == LatentNormFit::Refit ? "kv_b refit"
                                                                         : "linearised (eps)"),
                                        eval_ppl(m, ids, *p.eval, p.run).ppl, g.kv_lora_rank});
            }
        }
        res.stages.done("eval");
    }
    res.total_seconds = seconds_since(t_start);
    res.peak_rss_bytes = peak_rss_bytes();
    formats::write_file_atomically(fs::path(p.out_dir) / "report.json",
                                   res.to_json().dump(2) + "\n", st);
    return res;
}

}  // namespace palu::pipeline
