// palu pipeline: the decompose stage (decompose.h).
#include "palu/pipeline/decompose.h"

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/progress.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/linalg/cholesky.h"

namespace palu::pipeline {

using json = nlohmann::json;
using ll = long long;

Whitening::Whitening(const calib::GramStats& gram, double damp, bool keep)
    : gram_(&gram), damp_(damp), keep_(keep) {
    const size_t n = gram.gram.size();
    factors_.resize(keep ? n : 1);
    computed_.assign(n, 0);
    fallback_.assign(n, 0);
    shift_.assign(n, 0.0);
}

const RowMatrixXd& Whitening::factor(int64_t l) {
    PALU_ASSERT(l >= 0 && l < static_cast<int64_t>(gram_->gram.size()));
    const size_t li = static_cast<size_t>(l);
    const size_t slot = keep_ ? li : 0;
    if (computed_[li] && (keep_ || last_ == l)) return factors_[slot];
    const int64_t d = gram_->d;
    PALU_CHECK(static_cast<int64_t>(gram_->gram[li].size()) == d * d, ShapeError,
               "compress: layer %lld Gram matrix has %zu values; expected %lld x %lld",
               static_cast<ll>(l), gram_->gram[li].size(), static_cast<ll>(d), static_cast<ll>(d));
    const RowMatrixXd g = Eigen::Map<const RowMatrixXd>(gram_->gram[li].data(), d, d);
    linalg::CholeskyOptions co;
    co.damp = damp_;
    co.eig_fallback = true;  // reference §3.3: shift by −λ_min + 1e−3, counted and reported
    linalg::CholeskyResult ch =
        linalg::cholesky(g, co, strfmt("layer %lld k/v input Gram", static_cast<ll>(l)));
    if (!computed_[li]) {
        if (ch.fallback) {
            ++n_fallbacks_;
            PALU_LOG_INFO("compress",
                          "layer %lld: Gram not positive definite (lambda_min %.3g): diagonal "
                          "shifted by %.3g (reference fallback)",
                          static_cast<ll>(l), ch.lambda_min, ch.shift);
        }
        max_shift_ = std::max(max_shift_, ch.shift);
        fallback_[li] = ch.fallback ? 1 : 0;
        shift_[li] = ch.shift;
        computed_[li] = 1;
    }
    last_ = l;
    factors_[slot] = std::move(ch.factor);
    return factors_[slot];
}

json layer_reports_json(const std::vector<LayerReport>& reports) {
    json out = json::array();
    auto proj = [](const LayerReport::Proj& p) {
        json errs = json::array();
        for (const auto& e : p.errors)
            errs.push_back({{"whitened_rel", e.whitened_rel}, {"plain_rel", e.plain_rel}});
        return json{{"ranks", p.ranks}, {"errors", errs}};
    };
    for (const LayerReport& r : reports) {
        json lr = {{"layer", r.layer}, {"k", proj(r.k)}, {"v", proj(r.v)}};
        if (r.whitened_info) {
            lr["gram_fallback"] = r.gram_fallback;
            lr["gram_shift"] = r.gram_shift;
        }
        out.push_back(std::move(lr));
    }
    return out;
}

DecomposeResult decompose_model(const WeightSource& src, const compress::RankPlan& plan,
                                Whitening* whitening, const DecomposeOptions& o, bool progress) {
    const ModelConfig& cfg = src.config();
    PALU_CHECK(o.method == compress::DecomposeMethod::Plain || whitening != nullptr, UsageError,
               "compress: the whitened decomposition needs calibration statistics");
    PALU_CHECK(plan.shape.n_layers == cfg.n_layers && plan.shape.n_kv_heads == cfg.n_kv_heads &&
                   plan.shape.d_head == cfg.d_head,
               ShapeError, "compress: the rank plan is for another model shape");
    DecomposeResult res;
    res.method = o.method;
    res.layers.resize(static_cast<size_t>(cfg.n_layers));
    Progress bar("compress", "layer", cfg.n_layers);
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        LayerReport rep;
        rep.layer = l;
        const RowMatrixXd* factor = whitening ? &whitening->factor(l) : nullptr;
        if (whitening) {
            rep.whitened_info = true;
            rep.gram_fallback = whitening->fallback(l);
            rep.gram_shift = whitening->shift(l);
        }
        for (const formats::KvProj which : {formats::KvProj::K, formats::KvProj::V}) {
            const bool is_k = which == formats::KvProj::K;
            const Tensor w = src.load_f32(formats::kv_dense_weight_name(l, which));
            const std::string bias_name = formats::kv_dense_bias_name(l, which);
            const Tensor b = src.has_tensor(bias_name) ? src.load_f32(bias_name) : Tensor();
            const RowMatrixXf wm = Eigen::Map<const RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
            const auto& ranks = (is_k ? plan.k_ranks : plan.v_ranks)[static_cast<size_t>(l)];
            compress::LowRankKV kv = compress::decompose_projection(
                wm, std::span<const float>(b.data(), static_cast<size_t>(b.numel())), ranks,
                cfg.d_head, plan.group_size, o.method, factor,
                strfmt("layer %lld %c_proj", static_cast<ll>(l), static_cast<char>(which)));
            if (o.hadamard) compress::fuse_hadamard(kv, o.hadamard_seed);
            (is_k ? rep.k : rep.v) = {ranks, kv.errors};
            CompressedLayer& cl = res.layers[static_cast<size_t>(l)];
            (is_k ? cl.k : cl.v) = std::move(kv);
        }
        res.reports.push_back(std::move(rep));
        if (progress) bar.update(l + 1);
    }
    res.gram_fallbacks = whitening ? whitening->n_fallbacks() : 0;
    res.max_gram_shift = whitening ? whitening->max_shift() : 0.0;
    return res;
}

}  // namespace palu::pipeline
