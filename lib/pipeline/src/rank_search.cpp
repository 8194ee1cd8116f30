// palu pipeline: the rank-search stage (rank_search.h).
#include "palu/pipeline/rank_search.h"

#include <cmath>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/staging.h"
#include "palu/pipeline/calibrate.h"

namespace palu::pipeline {

using ll = long long;

int64_t default_group_size(int64_t n_kv_heads) {
    for (int64_t s = 4; s >= 1; --s)
        if (n_kv_heads % s == 0) return s;
    return 1;
}

int64_t resolve_group_size(const ModelConfig& cfg, int64_t requested, const char* stage,
                           const std::string& model) {
    const int64_t s = requested > 0 ? requested : default_group_size(cfg.n_kv_heads);
    PALU_CHECK(cfg.n_kv_heads % s == 0, UsageError,
               "%s: --group-size %lld does not divide the %lld KV heads of %s; hint: use a "
               "divisor of %lld (1 = per head, %lld = all heads jointly)",
               stage, static_cast<ll>(s), static_cast<ll>(cfg.n_kv_heads), model.c_str(),
               static_cast<ll>(cfg.n_kv_heads), static_cast<ll>(cfg.n_kv_heads));
    return s;
}

void check_rank_search_options(const RankSearchOptions& o, const char* stage) {
    PALU_CHECK(o.kv_bytes > 0.0 || (std::isfinite(o.ratio) && o.ratio > 0.0 && o.ratio <= 1.0),
               UsageError,
               "%s: --ratio must be in (0, 1], got %g; hint: 0.5 keeps half of the K/V latent "
               "dimensions",
               stage, o.ratio);
    PALU_CHECK(o.kv_bytes == 0.0 || (std::isfinite(o.kv_bytes) && o.kv_bytes > 0.0), UsageError,
               "%s: --kv-bytes must be > 0, got %g", stage, o.kv_bytes);
    PALU_CHECK(o.round_to >= 0, UsageError, "%s: --round-to must be >= 0, got %lld", stage,
               static_cast<ll>(o.round_to));
    PALU_CHECK(o.group_size >= 0, UsageError, "%s: --group-size must be >= 0, got %lld", stage,
               static_cast<ll>(o.group_size));
}

compress::FisherScalars fisher_scalars(const calib::FisherStats& f, const compress::KvShape& shape,
                                       int64_t group_size) {
    PALU_CHECK(f.n_samples >= 1, FormatError, "rank: Fisher statistics of %lld samples",
               static_cast<ll>(f.n_samples));
    PALU_CHECK(group_size > 0 && shape.n_kv_heads % group_size == 0, UsageError,
               "rank: --group-size %lld must divide the %lld KV heads", static_cast<ll>(group_size),
               static_cast<ll>(shape.n_kv_heads));
    PALU_CHECK(
        static_cast<int64_t>(f.k.size()) == shape.n_layers && f.n_out == shape.width(), FormatError,
        "rank: Fisher statistics of %zu layers x %lld outputs; expected %lld x %lld", f.k.size(),
        static_cast<ll>(f.n_out), static_cast<ll>(shape.n_layers), static_cast<ll>(shape.width()));
    const double n = static_cast<double>(f.n_samples);
    compress::FisherScalars out;
    for (int64_t l = 0; l < shape.n_layers; ++l)
        for (const bool is_k : {true, false}) {
            const std::vector<double>& sums = (is_k ? f.k : f.v)[static_cast<size_t>(l)];
            RowMatrixXf rms(f.n_out, f.d);
            for (int64_t i = 0; i < rms.size(); ++i)
                rms.data()[i] = static_cast<float>(std::sqrt(sums[static_cast<size_t>(i)] / n));
            const std::string name =
                strfmt("fisher/%s/layer_%lld", is_k ? "k" : "v", static_cast<ll>(l));
            const compress::FisherReduction red =
                compress::reduce_rms_gradient(rms, group_size * shape.d_head, name);
            (is_k ? out.k : out.v).push_back(red.module_mean);
            (is_k ? out.k_groups : out.v_groups).push_back(red.group_means);
        }
    return out;
}

compress::RankPlan search_rank_plan(const ModelConfig& cfg, const CalibrationStats* stats,
                                    const RankSearchOptions& o, int64_t group_size,
                                    const quant::LatentQuantSpec& quant) {
    const compress::KvShape shape{cfg.n_layers, cfg.n_kv_heads, cfg.d_head};
    compress::RankSearchParams rp;
    rp.method = o.method;
    rp.group_size = group_size;
    rp.ratio = o.kv_bytes > 0.0 ? 0.0 : o.ratio;
    rp.kv_bytes_per_token = o.kv_bytes;
    rp.quant = quant;
    rp.rank_multiple = o.round_to;
    compress::FisherScalars fisher;
    if (o.needs_fisher()) {
        PALU_CHECK(stats != nullptr && stats->fisher, UsageError,
                   "rank: method %s needs Fisher statistics; hint: calibrate with Fisher or use "
                   "--rank-search uniform",
                   compress::rank_search_method_name(o.method));
        fisher = fisher_scalars(*stats->fisher, shape, group_size);
    }
    const compress::RankPlan plan =
        compress::search_ranks(shape, o.needs_fisher() ? &fisher : nullptr, rp);
    PALU_LOG_INFO("rank",
                  "%s, group size %lld, rank multiple %lld, target ratio %.4f: kept %lld/%lld "
                  "dims, achieved ratio %.4f",
                  compress::rank_search_method_name(o.method), static_cast<ll>(group_size),
                  static_cast<ll>(plan.rank_multiple), plan.target_ratio,
                  static_cast<ll>(plan.n_kept()), static_cast<ll>(plan.n_full()),
                  plan.achieved_ratio());
    return plan;
}

nlohmann::json RankSearchResult::to_json() const {
    return compress::rank_plan_to_json(plan);
}

RankSearchResult run_rank_search(const RankSearchParams& p) {
    check_rank_search_options(p.rank, "rank");
    auto src = formats::open_model(p.model_path);
    const ModelConfig& cfg = src->config();
    const int64_t s = resolve_group_size(cfg, p.rank.group_size, "rank", p.model_path);
    std::optional<CalibrationStats> stats;
    if (p.rank.needs_fisher()) {
        PALU_CHECK(!p.stats_path.empty(), UsageError,
                   "rank: --stats is required for method %s; hint: run palu-calibrate first",
                   compress::rank_search_method_name(p.rank.method));
        stats =
            load_stats(p.stats_path, formats::fingerprint_model(*src), cfg, /*with_gram=*/false);
        PALU_CHECK(stats->fisher.has_value(), UsageError,
                   "rank: %s: holds no Fisher statistics; hint: re-run palu-calibrate without "
                   "--no-fisher",
                   p.stats_path.c_str());
    }
    quant::LatentQuantSpec q;
    q.bits = p.latent_bits;
    RankSearchResult r;
    r.plan = search_rank_plan(cfg, stats ? &*stats : nullptr, p.rank, s, q);
    if (!p.out_path.empty())
        formats::write_file_atomically(p.out_path, r.to_json().dump(2) + "\n", "rank");
    return r;
}

}  // namespace palu::pipeline
