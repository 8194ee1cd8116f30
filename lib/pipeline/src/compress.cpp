// palu pipeline: the palu-compress driver (compress.h).
#include "palu/pipeline/compress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "palu/compress/decompose.h"
#include "palu/compress/rank_search.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/progress.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/stats_store.h"
#include "palu/linalg/cholesky.h"
#include "palu/model/weights.h"
#include "palu/pipeline/calibrate.h"
#include "palu/pipeline/checkpoint.h"
#include "palu/pipeline/eval.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t default_group_size(int64_t n_kv_heads) {
    for (int64_t s = 4; s >= 1; --s)
        if (n_kv_heads % s == 0) return s;
    return 1;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Everything about out_dir that can be checked before the long work starts.
void check_out_dir(const CompressParams& p) {
    PALU_CHECK(!p.out_dir.empty(), UsageError, "compress: no output directory; hint: pass --out DIR");
    const fs::path out = fs::absolute(p.out_dir);
    if (fs::exists(out)) {
        PALU_CHECK(fs::is_directory(out), UsageError,
                   "compress: --out %s exists and is not a directory; hint: choose another --out",
                   p.out_dir.c_str());
        PALU_CHECK(p.overwrite || fs::is_empty(out), UsageError,
                   "compress: --out %s exists and is not empty; hint: pass --overwrite or choose "
                   "another --out",
                   p.out_dir.c_str());
    }
    const fs::path parent = out.parent_path();
    PALU_CHECK(fs::is_directory(parent), IoError,
               "compress: cannot write %s: directory %s does not exist; hint: choose another --out",
               p.out_dir.c_str(), parent.string().c_str());
    PALU_CHECK(::access(parent.c_str(), W_OK | X_OK) == 0, IoError,
               "compress: cannot write %s: directory %s is not writable; hint: choose another --out",
               p.out_dir.c_str(), parent.string().c_str());
}

compress::RankSearchMethod parse_method(const std::string& s) {
    auto m = compress::parse_rank_search_method(s);
    PALU_CHECK(m.has_value(), UsageError,
               "compress: --rank-search must be uniform, fisher or fisher_uniform, got '%s'",
               s.c_str());
    return *m;
}

RowMatrixXd read_matrix(const formats::StatsStore& stats, const std::string& name, int64_t rows,
                        int64_t cols) {
    const formats::StatsDataset ds = stats.read(name);
    PALU_CHECK(ds.shape == (std::vector<int64_t>{rows, cols}), FormatError,
               "compress: %s: dataset '%s' has shape %s; expected [%lld, %lld]; hint: re-run "
               "palu-calibrate for this model",
               stats.path().c_str(), name.c_str(), shape_str(ds.shape).c_str(),
               static_cast<long long>(rows), static_cast<long long>(cols));
    return Eigen::Map<const RowMatrixXd>(ds.values.data(), rows, cols);
}

struct StageClock {
    json stages = json::object();
    Clock::time_point t0 = Clock::now();
    void done(const std::string& name, json extra = json::object()) {
        extra["seconds"] = seconds_since(t0);
        extra["peak_rss_bytes"] = peak_rss_bytes();
        stages[name] = std::move(extra);
        t0 = Clock::now();
    }
};

}  // namespace

Whitening::Whitening(const formats::StatsStore& stats, const ModelConfig& config, double damp,
                     bool keep)
    : stats_(&stats), config_(config), damp_(damp), keep_(keep) {
    const size_t n = static_cast<size_t>(config.n_layers);
    factors_.resize(keep ? n : 1);
    computed_.assign(n, 0);
    fallback_.assign(n, 0);
    shift_.assign(n, 0.0);
}

const RowMatrixXd& Whitening::factor(int64_t l) {
    PALU_ASSERT(l >= 0 && l < config_.n_layers);
    const size_t slot = keep_ ? static_cast<size_t>(l) : 0;
    if (computed_[static_cast<size_t>(l)] && (keep_ || last_ == l)) return factors_[slot];
    const RowMatrixXd gram = read_matrix(*stats_, strfmt("gram/layer_%lld", static_cast<long long>(l)),
                                         config_.d_model, config_.d_model);
    linalg::CholeskyOptions co;
    co.damp = damp_;
    co.eig_fallback = true;  // reference §3.3: shift by −λ_min + 1e−3, counted and reported
    linalg::CholeskyResult ch =
        linalg::cholesky(gram, co, strfmt("layer %lld k/v input Gram", static_cast<long long>(l)));
    if (!computed_[static_cast<size_t>(l)]) {
        if (ch.fallback) {
            ++n_fallbacks_;
            PALU_LOG_INFO("compress",
                          "layer %lld: Gram not positive definite (lambda_min %.3g): diagonal "
                          "shifted by %.3g (reference fallback)",
                          static_cast<long long>(l), ch.lambda_min, ch.shift);
        }
        max_shift_ = std::max(max_shift_, ch.shift);
        fallback_[static_cast<size_t>(l)] = ch.fallback ? 1 : 0;
        shift_[static_cast<size_t>(l)] = ch.shift;
        computed_[static_cast<size_t>(l)] = 1;
    }
    last_ = l;
    factors_[slot] = std::move(ch.factor);
    return factors_[slot];
}

std::vector<CompressedLayer> decompose_model(const WeightSource& src, const compress::RankPlan& plan,
                                             Whitening* whitening, const DecomposeOptions& o,
                                             json* layer_reports) {
    const ModelConfig& cfg = src.config();
    PALU_CHECK(o.method == compress::DecomposeMethod::Plain || whitening != nullptr, UsageError,
               "compress: the whitened decomposition needs calibration statistics");
    PALU_CHECK(plan.shape.n_layers == cfg.n_layers && plan.shape.n_kv_heads == cfg.n_kv_heads &&
                   plan.shape.d_head == cfg.d_head,
               ShapeError, "compress: the rank plan is for another model shape");
    std::vector<CompressedLayer> layers(static_cast<size_t>(cfg.n_layers));
    if (layer_reports) *layer_reports = json::array();
    Progress progress("compress", "layer", cfg.n_layers);
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        const std::string pre = strfmt("model.layers.%lld.self_attn.", static_cast<long long>(l));
        json lr = {{"layer", l}};
        const RowMatrixXd* factor = whitening ? &whitening->factor(l) : nullptr;
        if (whitening) {
            lr["gram_fallback"] = whitening->fallback(l);
            lr["gram_shift"] = whitening->shift(l);
        }
        for (int which = 0; which < 2; ++which) {
            const std::string proj = which == 0 ? "k_proj" : "v_proj";
            const Tensor w = src.load_f32(pre + proj + ".weight");
            const Tensor b =
                src.has_tensor(pre + proj + ".bias") ? src.load_f32(pre + proj + ".bias") : Tensor();
            const RowMatrixXf wm = Eigen::Map<const RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
            const auto& ranks = (which == 0 ? plan.k_ranks : plan.v_ranks)[static_cast<size_t>(l)];
            compress::LowRankKV kv = compress::decompose_projection(
                wm, std::span<const float>(b.data(), static_cast<size_t>(b.numel())), ranks,
                cfg.d_head, plan.group_size, o.method, factor,
                strfmt("layer %lld %s", static_cast<long long>(l), proj.c_str()));
            if (o.hadamard) compress::fuse_hadamard(kv, o.seed);
            json errs = json::array();
            for (const auto& e : kv.errors)
                errs.push_back({{"whitened_rel", e.whitened_rel}, {"plain_rel", e.plain_rel}});
            lr[which == 0 ? "k" : "v"] = {{"ranks", ranks}, {"errors", errs}};
            (which == 0 ? layers[static_cast<size_t>(l)].k : layers[static_cast<size_t>(l)].v) =
                std::move(kv);
        }
        if (layer_reports) layer_reports->push_back(std::move(lr));
        if (o.progress) progress.update(l + 1);
    }
    return layers;
}

CompressedOverlay::CompressedOverlay(const WeightSource& base,
                                     const std::vector<CompressedLayer>& layers)
    : base_(&base), layers_(&layers) {
    PALU_CHECK(static_cast<int64_t>(layers.size()) == base.config().n_layers, ShapeError,
               "compress: %zu compressed layers for a model of %lld layers", layers.size(),
               static_cast<long long>(base.config().n_layers));
    for (int64_t l = 0; l < static_cast<int64_t>(layers.size()); ++l)
        for (int which = 0; which < 2; ++which) {
            const std::string p = strfmt("model.layers.%lld.self_attn.%s", static_cast<long long>(l),
                                         which == 0 ? "k_proj" : "v_proj");
            hidden_.insert(p + ".weight");
            hidden_.insert(p + ".bias");
            const compress::LowRankKV& kv =
                which == 0 ? layers[static_cast<size_t>(l)].k : layers[static_cast<size_t>(l)].v;
            refs_[p + ".VT.weight"] = Ref{l, which, -1, false};
            for (int64_t g = 0; g < kv.n_groups(); ++g) {
                refs_[strfmt("%s.U.%lld.weight", p.c_str(), static_cast<long long>(g))] =
                    Ref{l, which, g, false};
                if (!kv.bias.empty() && !kv.bias[static_cast<size_t>(g)].empty())
                    refs_[strfmt("%s.U.%lld.bias", p.c_str(), static_cast<long long>(g))] =
                        Ref{l, which, g, true};
            }
        }
}

std::vector<StoredTensorInfo> CompressedOverlay::tensors() const {
    std::vector<StoredTensorInfo> out;
    for (auto& t : base_->tensors())
        if (!hidden_.count(t.name)) out.push_back(std::move(t));
    for (const auto& [name, ref] : refs_) {
        const Tensor t = load_f32(name);
        out.push_back({name, t.shape(), "F32", static_cast<uint64_t>(t.numel()) * 4});
    }
    std::sort(out.begin(), out.end(),
              [](const StoredTensorInfo& a, const StoredTensorInfo& b) { return a.name < b.name; });
    return out;
}

bool CompressedOverlay::has_tensor(const std::string& name) const {
    if (refs_.count(name)) return true;
    return !hidden_.count(name) && base_->has_tensor(name);
}

Tensor CompressedOverlay::load_f32(const std::string& name) const {
    const auto it = refs_.find(name);
    if (it == refs_.end()) {
        PALU_CHECK(!hidden_.count(name), FormatError,
                   "compress: tensor '%s' is replaced by low-rank factors", name.c_str());
        return base_->load_f32(name);
    }
    const Ref& r = it->second;
    const CompressedLayer& cl = (*layers_)[static_cast<size_t>(r.layer)];
    const compress::LowRankKV& kv = r.which == 0 ? cl.k : cl.v;
    if (r.group < 0) {
        Tensor t({kv.vt.rows(), kv.vt.cols()});
        std::copy(kv.vt.data(), kv.vt.data() + kv.vt.size(), t.data());
        return t;
    }
    if (r.bias) {
        const auto& b = kv.bias[static_cast<size_t>(r.group)];
        return Tensor({static_cast<int64_t>(b.size())}, b);
    }
    const RowMatrixXf& u = kv.u[static_cast<size_t>(r.group)];
    Tensor t({u.rows(), u.cols()});
    std::copy(u.data(), u.data() + u.size(), t.data());
    return t;
}

CalibrationStats::CalibrationStats() = default;

CalibrationStats::CalibrationStats(CalibrationStats&& o) noexcept
    : stats(std::move(o.stats)),
      info(std::move(o.info)),
      reused(o.reused),
      n_tokens(o.n_tokens),
      seconds(o.seconds) {
    temp_path.swap(o.temp_path);  // the moved-from object must not remove the file
}

CalibrationStats::~CalibrationStats() {
    stats.reset();  // close the HDF5 file before removing it
    std::error_code ec;
    if (!temp_path.empty()) fs::remove(temp_path, ec);
}

void check_calibration_inputs(const CalibrationOptions& c, bool need_stats,
                              const std::string& stage, const std::string& need_what) {
    const char* st = stage.c_str();
    PALU_CHECK(c.fisher_shift == "single" || c.fisher_shift == "double", UsageError,
               "%s: --fisher-shift must be single or double, got '%s'", st, c.fisher_shift.c_str());
    PALU_CHECK(!(c.calib_path.size() && c.calib_tokens.size()), UsageError,
               "%s: give one of --calib TEXT or --calib-tokens FILE, not both", st);
    const bool have_calib = !c.calib_path.empty() || !c.calib_tokens.empty();
    if (have_calib) {
        const std::string& f = c.calib_path.empty() ? c.calib_tokens : c.calib_path;
        PALU_CHECK(fs::is_regular_file(f), IoError,
                   "%s: calibration file %s does not exist; hint: pass a text corpus with "
                   "--calib",
                   st, f.c_str());
        PALU_CHECK(fs::file_size(f) > 0, UsageError,
                   "%s: calibration file %s is empty; hint: pass a text corpus with --calib", st,
                   f.c_str());
    }
    PALU_CHECK(!need_stats || have_calib || (!c.stats_path.empty() && fs::exists(c.stats_path)),
               UsageError,
               "%s: %s needs calibration statistics; hint: pass --calib TEXT (or "
               "--calib-tokens FILE), or --stats FILE.h5 from palu-calibrate",
               st, need_what.c_str());
}

CalibrationStats obtain_calibration_stats(const std::string& model_path,
                                          const std::string& model_fp,
                                          const CalibrationOptions& c, bool need_fisher,
                                          bool need_stats, const std::string& temp_dir,
                                          int n_threads, bool progress) {
    CalibrationStats out;
    if (!need_stats) return out;
    const auto t0 = Clock::now();
    std::string stats_path = c.stats_path;
    // An existing stats file with Fisher also serves a run that needs only the Gram matrices
    // (a uniform sweep after a fisher_uniform one): ask for the same settings it was made with.
    bool with_fisher = need_fisher;
    if (!with_fisher && !stats_path.empty() && fs::exists(stats_path)) {
        try {
            with_fisher = formats::StatsStore::open(stats_path).has("fisher/n_samples");
        } catch (const Error&) {
            // unreadable: run_calibrate / StatsStore::open below give the error
        }
    }
    if (!c.calib_path.empty() || !c.calib_tokens.empty()) {
        if (stats_path.empty()) {
            stats_path = (fs::path(temp_dir) /
                          strfmt(".palu-calib-%d.h5", static_cast<int>(::getpid())))
                             .string();
            out.temp_path = stats_path;
        }
        CalibrateParams cp;
        cp.model_path = model_path;
        cp.text_path = c.calib_path;
        cp.text_format = c.calib_format;
        cp.tokens_path = c.calib_tokens;
        cp.n_samples = c.calib_samples;
        cp.seqlen = c.calib_seqlen;
        cp.sampler = c.calib_sampler;
        cp.offsets_path = c.calib_offsets;
        cp.seed = c.seed;
        cp.fisher_shift = c.fisher_shift;
        cp.fisher = with_fisher;
        cp.out_path = stats_path;
        cp.n_threads = n_threads;
        cp.progress = progress;
        const CalibrateResult cr = run_calibrate(cp);
        out.info = {{"source", c.calib_path.empty() ? c.calib_tokens : c.calib_path},
                    {"sha256", cr.data_fingerprint},
                    {"n_samples", cr.n_samples},
                    {"seqlen", c.calib_seqlen},
                    {"n_tokens", cr.n_tokens},
                    {"sampler", c.calib_sampler},
                    {"seed", c.seed},
                    {"fisher_shift", need_fisher ? json(c.fisher_shift) : json(nullptr)},
                    {"stats_reused", cr.reused}};
        out.reused = cr.reused;
        out.n_tokens = cr.n_tokens;
    } else {
        PALU_LOG_INFO("compress", "reusing calibration statistics %s", stats_path.c_str());
        out.reused = true;
    }
    out.stats = std::make_unique<formats::StatsStore>(
        formats::StatsStore::open(stats_path, {model_fp, ""}));
    if (out.info.is_null()) {
        const auto& info = out.stats->info();
        out.n_tokens = info.n_tokens;
        out.info = {{"stats", stats_path},
                    {"sha256", info.data_fingerprint},
                    {"n_tokens", info.n_tokens},
                    {"seed", info.seed},
                    {"settings", json::parse(info.settings_json, nullptr, false)}};
    }
    PALU_CHECK(!need_fisher || out.stats->has("fisher/n_samples"), UsageError,
               "compress: %s has no Fisher information (calibrated with --no-fisher); hint: "
               "re-run palu-calibrate with Fisher, or use --rank-search uniform",
               stats_path.c_str());
    out.seconds = seconds_since(t0);
    return out;
}

CompressResult run_compress(const CompressParams& p) {
    const auto t_start = Clock::now();
    StageClock clock;
    // ---- inputs, checked before any long work ----
    PALU_CHECK(p.kv_bytes > 0.0 || (std::isfinite(p.ratio) && p.ratio > 0.0 && p.ratio <= 1.0),
               UsageError,
               "compress: --ratio must be in (0, 1], got %g; hint: 0.5 keeps half of the K/V "
               "latent dimensions",
               p.ratio);
    PALU_CHECK(p.kv_bytes == 0.0 || (std::isfinite(p.kv_bytes) && p.kv_bytes > 0.0), UsageError,
               "compress: --kv-bytes must be > 0, got %g", p.kv_bytes);
    const compress::RankSearchMethod method = parse_method(p.rank_search);
    check_out_dir(p);
    auto src = formats::open_model(p.model_path);
    const ModelConfig& cfg = src->config();
    PALU_CHECK(!model::has_low_rank_kv(*src), UsageError,
               "compress: %s is already a compressed palu checkpoint; hint: compress the original "
               "model",
               p.model_path.c_str());
    const int64_t s = p.group_size > 0 ? p.group_size : default_group_size(cfg.n_kv_heads);
    PALU_CHECK(cfg.n_kv_heads % s == 0, UsageError,
               "compress: --group-size %lld does not divide the %lld KV heads of %s; hint: use a "
               "divisor of %lld (1 = per head, %lld = all heads jointly)",
               static_cast<long long>(s), static_cast<long long>(cfg.n_kv_heads),
               p.model_path.c_str(), static_cast<long long>(cfg.n_kv_heads),
               static_cast<long long>(cfg.n_kv_heads));
    const compress::KvShape shape{cfg.n_layers, cfg.n_kv_heads, cfg.d_head};
    quant::validate_quant_spec(p.quant, 0);
    const bool need_fisher = method != compress::RankSearchMethod::Uniform;
    // Statistics are needed for Fisher and whitening; when calibration data is given anyway, the
    // plain SVD uses them to report its error on the calibration activations.
    const CalibrationOptions& calib = p.calib;
    const bool need_stats = need_fisher || p.whiten || !calib.calib_path.empty() ||
                            !calib.calib_tokens.empty() ||
                            (!calib.stats_path.empty() && fs::exists(calib.stats_path));
    check_calibration_inputs(
        calib, need_stats, "compress",
        need_fisher ? "rank search '" + p.rank_search + "'" : std::string("whitening"));
    const std::string model_fp = formats::fingerprint_model(*src);

    // ---- 1. calibrate (or reuse) ----
    const CalibrationStats cs = obtain_calibration_stats(
        p.model_path, model_fp, calib, need_fisher, need_stats,
        fs::absolute(p.out_dir).parent_path().string(), p.n_threads, p.progress);
    const formats::StatsStore* stats = cs.stats.get();
    const json& calib_info = cs.info;
    if (need_stats) clock.done("calibrate", {{"reused", cs.reused}, {"n_tokens", cs.n_tokens}});

    // ---- 2. rank search ----
    compress::RankSearchParams rp;
    rp.method = method;
    rp.group_size = s;
    rp.ratio = p.kv_bytes > 0.0 ? 0.0 : p.ratio;
    rp.kv_bytes_per_token = p.kv_bytes;
    rp.quant = p.quant;
    rp.rank_multiple = p.round_to;
    compress::FisherScalars fisher;
    if (need_fisher) fisher = fisher_scalars_from_stats(*stats, shape, s);
    const compress::RankPlan plan =
        compress::search_ranks(shape, need_fisher ? &fisher : nullptr, rp);
    PALU_LOG_INFO("compress", "rank search %s, group size %lld, rank multiple %lld: kept %lld of "
                  "%lld latent dims (ratio %.4f, target %.4f)",
                  compress::rank_search_method_name(method), static_cast<long long>(s),
                  static_cast<long long>(plan.rank_multiple), static_cast<long long>(plan.n_kept()),
                  static_cast<long long>(plan.n_full()), plan.achieved_ratio(), plan.target_ratio);
    clock.done("rank_search");

    // ---- 3./4. decompose (+ Hadamard) layer by layer ----
    DecomposeOptions dopt;
    dopt.method = p.whiten ? compress::DecomposeMethod::Whitened : compress::DecomposeMethod::Plain;
    dopt.hadamard = p.hadamard;
    dopt.seed = p.calib.seed;
    dopt.progress = p.progress;
    std::unique_ptr<Whitening> whitening;
    if (stats) whitening = std::make_unique<Whitening>(*stats, cfg, p.damp, /*keep=*/false);
    json layer_reports;
    std::vector<CompressedLayer> layers =
        decompose_model(*src, plan, whitening.get(), dopt, &layer_reports);
    const compress::DecomposeMethod dm = dopt.method;
    const int64_t n_fallbacks = whitening ? whitening->n_fallbacks() : 0;
    const double max_shift = whitening ? whitening->max_shift() : 0.0;
    clock.done("decompose", {{"method", compress::decompose_method_name(dm)},
                             {"hadamard", p.hadamard},
                             {"gram_fallbacks", n_fallbacks}});

    // ---- 5. write ----
    const int64_t kv_orig = compress::original_kv_bytes_per_token(shape);
    const int64_t kv_comp = compress::kv_bytes_per_token(plan, p.quant);
    json quant_json = {{"bits", p.quant.bits},
                       {"group_size", p.quant.group_size},
                       {"symmetric", p.quant.symmetric},
                       {"clip_ratio", p.quant.clip_ratio},
                       {"include_zero", p.quant.include_zero}};
    json palu = {
        {"format_version", 1},
        {"group_size", s},
        {"rank_search",
         {{"method", compress::rank_search_method_name(method)},
          {"target_ratio", plan.target_ratio},
          {"target_kv_bytes_per_token", p.kv_bytes > 0.0 ? json(p.kv_bytes) : json(nullptr)},
          {"achieved_ratio", plan.achieved_ratio()},
          {"rank_multiple", plan.rank_multiple},
          {"kept_dims", plan.n_kept()},
          {"full_dims", plan.n_full()}}},
        {"decompose",
         {{"method", compress::decompose_method_name(dm)},
          {"damp", p.damp},
          {"eig_fallback_eps", 1e-3},
          {"gram_fallbacks", n_fallbacks},
          {"max_gram_shift", max_shift}}},
        {"calibration", calib_info},
        {"hadamard", {{"fused", p.hadamard}, {"seed", p.calib.seed}}},
        {"latent_quant", quant_json},
        {"head_permutation", nullptr},
        {"kv_bytes_per_token",
         {{"original_f16", kv_orig},
          {"compressed", kv_comp},
          {"ratio", static_cast<double>(kv_comp) / static_cast<double>(kv_orig)},
          {"includes", "latents + per-token f16 scales and zeros, all layers, K and V"}}},
        {"source_model",
         {{"path", p.model_path}, {"format", src->format_name()}, {"fingerprint", model_fp}}}};
    CheckpointWriteOptions wo;
    wo.factor_dtype = p.factor_dtype;
    wo.overwrite = p.overwrite;
    write_compressed_checkpoint(*src, layers, palu, p.out_dir, wo);
    layers.clear();
    PALU_LOG_INFO("compress", "wrote %s: KV cache %s per token (original f16 %s, %.3fx smaller)",
                  p.out_dir.c_str(), bytes_str(kv_comp).c_str(), bytes_str(kv_orig).c_str(),
                  static_cast<double>(kv_orig) / static_cast<double>(kv_comp));
    clock.done("write");

    // ---- 6. evaluate ----
    json eval = nullptr;
    if (!p.eval_path.empty() || !p.eval_tokens.empty()) {
        EvalPplParams ep;
        ep.text_path = p.eval_path;
        ep.text_format = p.eval_format;
        ep.tokens_path = p.eval_tokens;
        ep.seqlen = p.eval_seqlen;
        ep.max_windows = p.eval_max_windows;
        ep.n_threads = p.n_threads;
        ep.progress = p.progress;
        ep.model_path = p.model_path;
        // Tokenized once, scored by both models.
        const std::vector<int32_t> ids = load_eval_tokens(ep, *src);
        ep.tokens = &ids;
        const EvalPplResult before = run_eval_ppl(ep);
        ep.model_path = p.out_dir;
        const EvalPplResult after = run_eval_ppl(ep);
        eval = {{"source", p.eval_path.empty() ? p.eval_tokens : p.eval_path},
                {"seqlen", p.eval_seqlen},
                {"n_windows", after.n_windows},
                {"ppl_original", before.ppl},
                {"ppl_compressed", after.ppl},
                {"ppl_ratio", after.ppl / before.ppl},
                {"kv_cache_bytes_per_token_measured", after.kv_bytes_per_token},
                {"kv_cache_latent_bits", after.latent_bits}};
        PALU_LOG_INFO("compress", "perplexity (%lld windows of %lld): original %.4f, compressed %.4f",
                      static_cast<long long>(after.n_windows), static_cast<long long>(p.eval_seqlen),
                      before.ppl, after.ppl);
        clock.done("eval");
    }

    // ---- report ----
    json report = {{"format", "palu.report"},
                   {"format_version", 1},
                   {"model", p.model_path},
                   {"out", p.out_dir},
                   {"palu", palu},
                   {"ranks", compress::rank_plan_to_json(plan)},
                   {"layers", layer_reports},
                   {"stages", clock.stages},
                   {"eval", eval},
                   {"total_seconds", seconds_since(t_start)},
                   {"peak_rss_bytes", peak_rss_bytes()},
                   {"threads", p.n_threads}};
    const fs::path rpath = fs::path(p.out_dir) / "report.json";
    const fs::path tmp = fs::path(p.out_dir) / ".report.json.tmp";
    {
        std::ofstream f(tmp);
        f << report.dump(2) << "\n";
        PALU_CHECK(f.good(), IoError, "compress: cannot write %s", tmp.c_str());
    }
    fs::rename(tmp, rpath);
    return CompressResult{std::move(report)};
}

}  // namespace palu::pipeline
