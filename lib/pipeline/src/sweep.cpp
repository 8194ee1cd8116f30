// palu pipeline: the palu-sweep driver (sweep.h).
#include "palu/pipeline/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "palu/compress/decompose.h"
#include "palu/compress/rank_search.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/progress.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/formats/staging.h"
#include "palu/model/perplexity.h"
#include "palu/model/transformer.h"
#include "palu/pipeline/calibrate.h"
#include "palu/pipeline/eval.h"
#include "palu/pipeline/overlay.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// Splits "a,b,c" into trimmed items; an empty list or item is a usage error.
std::vector<std::string> split_list(const std::string& list, const std::string& option) {
    std::vector<std::string> items;
    std::string item;
    std::istringstream in(list);
    auto trim = [](std::string s) {
        const auto b = s.find_first_not_of(" \t");
        const auto e = s.find_last_not_of(" \t");
        return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    while (std::getline(in, item, ',')) {
        item = trim(item);
        PALU_CHECK(!item.empty(), UsageError,
                   "sweep: %s '%s': empty item; expected a comma-separated list such as %s",
                   option.c_str(), list.c_str(),
                   option == "--ratios"    ? "1.0,0.5"
                   : option == "--latents" ? "16,4,3h"
                                           : "1,2");
        items.push_back(item);
    }
    PALU_CHECK(!items.empty() && list.back() != ',', UsageError,
               "sweep: %s '%s': expected a non-empty comma-separated list", option.c_str(),
               list.c_str());
    return items;
}

template <class T>
void check_unique(const std::vector<T>& v, const std::vector<std::string>& items,
                  const std::string& option) {
    for (size_t i = 0; i < v.size(); ++i)
        for (size_t j = 0; j < i; ++j)
            PALU_CHECK(!(v[i] == v[j]), UsageError, "sweep: %s: '%s' given twice", option.c_str(),
                       items[i].c_str());
}

void check_writable(const std::string& path, const char* option) {
    if (path.empty()) return;
    const fs::path parent = fs::absolute(path).parent_path();
    PALU_CHECK(fs::is_directory(parent), IoError,
               "sweep: %s %s: directory %s does not exist; hint: create it or choose another path",
               option, path.c_str(), parent.c_str());
}

}  // namespace

std::string LatentSetting::label() const {
    return std::to_string(bits) + (hadamard ? "h" : "");
}

std::vector<double> parse_ratio_list(const std::string& list, const std::string& option) {
    const auto items = split_list(list, option);
    std::vector<double> out;
    for (const auto& it : items) {
        size_t n = 0;
        double r = 0.0;
        try {
            r = std::stod(it, &n);
        } catch (const std::exception&) {
            n = 0;
        }
        PALU_CHECK(n == it.size() && std::isfinite(r) && r > 0.0 && r <= 1.0, UsageError,
                   "sweep: %s: item '%s': expected a kept ratio in (0, 1], such as 0.5",
                   option.c_str(), it.c_str());
        out.push_back(r);
    }
    check_unique(out, items, option);
    return out;
}

std::vector<int64_t> parse_group_size_list(const std::string& list, const std::string& option) {
    const auto items = split_list(list, option);
    std::vector<int64_t> out;
    for (const auto& it : items) {
        size_t n = 0;
        long long g = 0;
        try {
            g = std::stoll(it, &n);
        } catch (const std::exception&) {
            n = 0;
        }
        PALU_CHECK(n == it.size() && g >= 1, UsageError,
                   "sweep: %s: item '%s': expected a number of KV heads per group >= 1",
                   option.c_str(), it.c_str());
        out.push_back(g);
    }
    check_unique(out, items, option);
    return out;
}

std::vector<compress::RankSearchMethod> parse_method_list(const std::string& list,
                                                          const std::string& option) {
    const auto items = split_list(list, option);
    std::vector<compress::RankSearchMethod> out;
    for (const auto& it : items) {
        const auto m = compress::parse_rank_search_method(it);
        PALU_CHECK(m.has_value(), UsageError,
                   "sweep: %s: item '%s': expected uniform, fisher or fisher_uniform",
                   option.c_str(), it.c_str());
        out.push_back(*m);
    }
    check_unique(out, items, option);
    return out;
}

std::vector<LatentSetting> parse_latent_list(const std::string& list, const std::string& option) {
    const auto items = split_list(list, option);
    std::vector<LatentSetting> out;
    for (const auto& it : items) {
        LatentSetting s;
        std::string digits = it;
        if (!digits.empty() && digits.back() == 'h') {
            s.hadamard = true;
            digits.pop_back();
        }
        const bool ok_bits = digits == "32" || digits == "16" || digits == "8" || digits == "4" ||
                             digits == "3" || digits == "2";
        PALU_CHECK(ok_bits && !(s.hadamard && (digits == "32" || digits == "16")), UsageError,
                   "sweep: %s: item '%s': expected a latent format 32, 16 (float latents) or "
                   "8, 4, 3, 2 (quantized), the quantized ones optionally with 'h' (Hadamard), "
                   "such as 3h",
                   option.c_str(), it.c_str());
        s.bits = std::stoi(digits);
        out.push_back(s);
    }
    std::vector<std::string> labels;
    for (const auto& s : out) labels.push_back(s.label());
    check_unique(labels, items, option);
    return out;
}

json to_json(const SweepRow& r) {
    return json{{"method", r.method},
                {"group_size", r.original ? json(nullptr) : json(r.group_size)},
                {"target_ratio", r.target_ratio},
                {"achieved_ratio", r.achieved_ratio},
                {"latents", r.original ? json("dense") : json(r.latent.label())},
                {"latent_bits", r.original ? json(nullptr) : json(r.latent.bits)},
                {"hadamard", r.latent.hadamard},
                {"kv_bytes_per_token", r.kv_bytes_formula},
                {"kv_bytes_per_token_measured", r.kv_bytes_measured},
                {"kv_bytes_per_token_original_f16", r.kv_bytes_original},
                {"kv_smaller_x", static_cast<double>(r.kv_bytes_original) /
                                     static_cast<double>(std::max<int64_t>(r.kv_bytes_formula, 1))},
                {"ppl", r.ppl},
                {"nll", r.nll},
                {"compression_s", r.original ? json(nullptr) : json(r.compression_s)},
                {"eval_s", r.eval_s},
                {"same_ranks_as", r.same_plan_as.empty() ? json(nullptr) : json(r.same_plan_as)}};
}

std::string sweep_markdown(const SweepResult& res, const SweepParams& p) {
    std::string s;
    s += strfmt(
        "Model `%s`; evaluation `%s`: %lld windows of %lld tokens (of %lld tokens); "
        "calibration + whitening factors + Fisher scalars %.1f s (once).\n\n",
        p.model_path.c_str(), p.eval.source().c_str(), static_cast<long long>(res.n_windows),
        static_cast<long long>(res.seqlen), static_cast<long long>(res.n_eval_tokens),
        res.calibration_s);
    s += "| method | group size | ratio | achieved ratio | latents | KV bytes/token | x smaller "
         "vs f16 | ppl | Δppl % | compression s |\n";
    s += "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n";
    for (const SweepRow& r : res.rows) {
        std::string latents;
        if (r.original)
            latents = "f16 (dense)";
        else if (r.latent.bits >= 16)
            latents = strfmt("f%d", r.latent.bits);
        else
            latents = strfmt("%d-bit%s", r.latent.bits, r.latent.hadamard ? " + Hadamard" : "");
        const double dppl = 100.0 * (r.ppl / res.ppl_original - 1.0);
        s += strfmt(
            "| %s | %s | %.2f | %.4f | %s | %lld | %.2f | %.4f | %+.2f | %s |\n", r.method.c_str(),
            r.original ? "–" : std::to_string(r.group_size).c_str(), r.target_ratio,
            r.achieved_ratio, latents.c_str(), static_cast<long long>(r.kv_bytes_formula),
            static_cast<double>(r.kv_bytes_original) /
                static_cast<double>(std::max<int64_t>(r.kv_bytes_formula, 1)),
            r.ppl, dppl,
            r.original ? "–"
            : r.same_plan_as.empty()
                ? strfmt("%.3f", r.compression_s).c_str()
                : strfmt("%.3f (ranks = %s)", r.compression_s, r.same_plan_as.c_str()).c_str());
    }
    return s;
}

namespace {

// Everything checked before any long work (the model is checked by the caller).
void check_grid(const SweepParams& p) {
    PALU_CHECK(!p.methods.empty() && !p.ratios.empty() && !p.latents.empty(), UsageError,
               "sweep: empty grid: expected at least one method, ratio and latent format");
    for (double r : p.ratios)
        PALU_CHECK(std::isfinite(r) && r > 0.0 && r <= 1.0, UsageError,
                   "sweep: --ratios: %g: expected a kept ratio in (0, 1]", r);
    for (const auto& l : p.latents)
        PALU_CHECK(l.bits == 32 || l.bits == 16 || l.bits == 8 || l.bits == 4 || l.bits == 3 ||
                       l.bits == 2,
                   UsageError, "sweep: --latents: %d bits: expected 32, 16, 8, 4, 3 or 2", l.bits);
    PALU_CHECK(p.eval.text_path.empty() != p.eval.tokens_path.empty(), UsageError,
               "sweep: give exactly one of --eval TEXT or --eval-tokens FILE.i32");
    PALU_CHECK(fs::is_regular_file(p.eval.source()), IoError,
               "sweep: evaluation file %s does not exist", p.eval.source().c_str());
    check_writable(p.out_table, "--out");
    check_writable(p.out_json, "--json");
    check_calibration_inputs(p.calib, /*need_stats=*/true, "sweep", "the whitened decomposition");
}

}  // namespace

namespace {

// One sweep: the model opened once, the calibration statistics and whitening factors computed
// once, then every grid point through the same stages as palu-compress. Rows are emitted (and the
// output files rewritten) as they are measured.
class SweepRun {
   public:
    explicit SweepRun(const SweepParams& p) : p_(p) {}

    SweepResult run() {
        open_model_and_tokens();
        calibrate_once();
        baseline_row();
        const int64_t n_points = static_cast<int64_t>(p_.methods.size() * group_sizes_.size() *
                                                      p_.ratios.size() * p_.latents.size());
        progress_ = std::make_unique<Progress>("sweep", "row", n_points, /*min_interval_s=*/0.0);
        for (const compress::RankSearchMethod method : p_.methods)
            for (const int64_t g : group_sizes_)
                for (const double ratio : p_.ratios) grid_point(method, g, ratio);
        res_.markdown = sweep_markdown(res_, p_);
        return std::move(res_);
    }

   private:
    void open_model_and_tokens() {
        src_ = formats::open_model(p_.model_path);
        const ModelConfig& cfg = src_->config();
        PALU_CHECK(!formats::is_palu_checkpoint(*src_), UsageError,
                   "sweep: %s is already a compressed palu checkpoint; hint: sweep the original "
                   "model",
                   p_.model_path.c_str());
        group_sizes_ = p_.group_sizes;
        if (group_sizes_.empty()) group_sizes_.push_back(default_group_size(cfg.n_kv_heads));
        for (int64_t g : group_sizes_)
            PALU_CHECK(g >= 1 && cfg.n_kv_heads % g == 0, UsageError,
                       "sweep: --group-sizes: %lld does not divide the %lld KV heads of %s; hint: "
                       "use divisors of %lld",
                       static_cast<long long>(g), static_cast<long long>(cfg.n_kv_heads),
                       p_.model_path.c_str(), static_cast<long long>(cfg.n_kv_heads));
        shape_ = {cfg.n_layers, cfg.n_kv_heads, cfg.d_head};
        kv_orig_ = compress::original_kv_bytes_per_token(shape_);
        tokens_ = load_eval_tokens(p_.eval, *src_);
        const int64_t n_avail =
            static_cast<int64_t>(tokens_.size()) / std::max<int64_t>(p_.eval.seqlen, 2);
        PALU_CHECK(n_avail >= 1, UsageError,
                   "sweep: the %zu evaluation tokens do not fill one window of %lld; hint: lower "
                   "--eval-seqlen",
                   tokens_.size(), static_cast<long long>(p_.eval.seqlen));
        res_.seqlen = p_.eval.seqlen;
        res_.n_eval_tokens = static_cast<int64_t>(tokens_.size());
    }

    // Calibration (once), whitening factors (once), Fisher scalars (once per group size).
    void calibrate_once() {
        const auto t0 = Clock::now();
        need_fisher_ = std::any_of(p_.methods.begin(), p_.methods.end(),
                                   [](auto m) { return m != compress::RankSearchMethod::Uniform; });
        stats_ = calibrate(*src_, formats::fingerprint_model(*src_), p_.calib,
                           need_fisher_ ? FisherNeed::Required : FisherNeed::IfInStatsFile, p_.run);
        whitening_ = std::make_unique<Whitening>(stats_.gram, p_.damp, /*keep=*/true);
        for (int64_t l = 0; l < shape_.n_layers; ++l) whitening_->factor(l);
        if (need_fisher_)
            for (int64_t g : group_sizes_) fisher_[g] = fisher_scalars(*stats_.fisher, shape_, g);
        res_.calibration_s = seconds_since(t0);
        PALU_LOG_INFO("sweep", "calibration statistics ready in %.1f s (%lld Gram fallbacks)",
                      res_.calibration_s, static_cast<long long>(whitening_->n_fallbacks()));
    }

    void emit(const SweepRow& row) {
        res_.rows.push_back(row);
        json_lines_ += to_json(row).dump() + "\n";
        if (!p_.out_json.empty()) formats::write_file_atomically(p_.out_json, json_lines_, "sweep");
        if (!p_.out_table.empty())
            formats::write_file_atomically(p_.out_table, sweep_markdown(res_, p_), "sweep");
    }

    void report(const SweepRow& row, const std::string& what) {
        ++n_done_;
        if (p_.run.progress)
            progress_->update(n_done_,
                              strfmt("%s s=%lld ratio %.2f %s: %s", row.method.c_str(),
                                     static_cast<long long>(row.group_size), row.target_ratio,
                                     row.latent.label().c_str(), what.c_str()));
    }

    model::PerplexityResult perplexity(model::Transformer& engine) const {
        return model::compute_perplexity(engine, tokens_, p_.eval.seqlen, p_.eval.max_windows,
                                         /*n_batch=*/1);
    }

    void baseline_row() {
        model::Transformer engine(*src_, model::Residency::Resident);
        engine.set_threads(p_.run.n_threads);
        const auto r = perplexity(engine);
        res_.ppl_original = r.ppl;
        res_.n_windows = r.n_windows;
        SweepRow row;
        row.original = true;
        row.method = "original";
        row.kv_bytes_formula = kv_orig_;
        row.kv_bytes_measured = r.kv_bytes_per_token;
        row.kv_bytes_original = kv_orig_;
        row.ppl = r.ppl;
        row.nll = r.nll;
        row.eval_s = r.seconds;
        emit(row);
        PALU_LOG_INFO("sweep", "original: ppl %.4f over %lld windows of %lld in %.1f s", r.ppl,
                      static_cast<long long>(r.n_windows), static_cast<long long>(p_.eval.seqlen),
                      r.seconds);
    }

    void grid_point(compress::RankSearchMethod method, int64_t g, double ratio) {
        const auto t0 = Clock::now();
        compress::RankSearchParams rp;
        rp.method = method;
        rp.group_size = g;
        rp.ratio = ratio;
        rp.rank_multiple = p_.round_to;
        const bool fisher = method != compress::RankSearchMethod::Uniform;
        const compress::RankPlan plan =
            compress::search_ranks(shape_, fisher ? &fisher_.at(g) : nullptr, rp);
        const double t_search = seconds_since(t0);
        // Methods that allocate the same ranks (every method at ratio 1.0) give the same
        // factors: their rows are measured once and repeated with this method's name.
        const std::string key =
            std::to_string(g) + compress::rank_plan_to_json(plan)["layers"].dump();
        const auto same = measured_.find(key);
        if (same != measured_.end()) {
            for (SweepRow row : same->second) {
                row.method = compress::rank_search_method_name(method);
                row.target_ratio = ratio;
                row.same_plan_as = same->second.front().method;
                row.compression_s = t_search;
                emit(row);
                report(row, "same ranks as " + row.same_plan_as);
            }
            return;
        }
        SweepRow proto;
        proto.method = compress::rank_search_method_name(method);
        proto.group_size = g;
        proto.target_ratio = ratio;
        proto.achieved_ratio = plan.achieved_ratio();
        proto.kv_bytes_original = kv_orig_;
        measured_[key] = measure_latents(plan, proto, t0);
    }

    // Decomposes once (plus the Hadamard-fused copy when a format asks for it) and measures every
    // latent format; one engine per factor set, the format only changes the cache factory.
    std::vector<SweepRow> measure_latents(const compress::RankPlan& plan, const SweepRow& proto,
                                          Clock::time_point t0) {
        DecomposeOptions dopt;
        dopt.damp = p_.damp;
        const std::vector<CompressedLayer> layers =
            decompose_model(*src_, plan, whitening_.get(), dopt, /*progress=*/false).layers;
        const double t_compress = seconds_since(t0);
        const bool any_hadamard = std::any_of(p_.latents.begin(), p_.latents.end(),
                                              [](const LatentSetting& l) { return l.hadamard; });
        std::vector<CompressedLayer> layers_h;
        double t_hadamard = 0.0;
        if (any_hadamard) {
            const auto th = Clock::now();
            layers_h = layers;
            for (auto& cl : layers_h) {
                compress::fuse_hadamard(cl.k, p_.hadamard_seed);
                compress::fuse_hadamard(cl.v, p_.hadamard_seed);
            }
            t_hadamard = seconds_since(th);
        }
        const CompressedOverlay overlay(*src_, layers), overlay_h(*src_, layers_h);
        std::unique_ptr<model::Transformer> engine, engine_h;
        std::vector<SweepRow> rows;
        for (const LatentSetting& lat : p_.latents) {
            const CompressedOverlay& ov = lat.hadamard ? overlay_h : overlay;
            std::unique_ptr<model::Transformer>& e = lat.hadamard ? engine_h : engine;
            if (!e) {
                e = std::make_unique<model::Transformer>(ov, model::Residency::Resident);
                e->set_threads(p_.run.n_threads);
            }
            configure_latent_cache(*e, ov, lat.bits);
            const auto r = perplexity(*e);
            quant::LatentQuantSpec q;
            q.bits = lat.bits >= 16 ? 16 : lat.bits;
            // f32 latents: twice the f16 bytes (4 per latent, no scales).
            const int64_t formula =
                compress::kv_bytes_per_token(plan, q) * (lat.bits == 32 ? 2 : 1);
            PALU_ASSERT(formula == r.kv_bytes_per_token,
                        "KV bytes per token: formula %lld, measured cache %lld",
                        static_cast<long long>(formula),
                        static_cast<long long>(r.kv_bytes_per_token));
            SweepRow row = proto;
            row.latent = lat;
            row.kv_bytes_formula = formula;
            row.kv_bytes_measured = r.kv_bytes_per_token;
            row.ppl = r.ppl;
            row.nll = r.nll;
            row.compression_s = t_compress + (lat.hadamard ? t_hadamard : 0.0);
            row.eval_s = r.seconds;
            emit(row);
            rows.push_back(row);
            report(row,
                   strfmt("ppl %.4f (%+.2f%%)", r.ppl, 100.0 * (r.ppl / res_.ppl_original - 1.0)));
        }
        return rows;
    }

    const SweepParams& p_;
    std::unique_ptr<WeightSource> src_;
    std::vector<int64_t> group_sizes_;
    compress::KvShape shape_{};
    int64_t kv_orig_ = 0;
    std::vector<int32_t> tokens_;
    bool need_fisher_ = false;
    CalibrationStats stats_;
    std::unique_ptr<Whitening> whitening_;
    std::map<int64_t, compress::FisherScalars> fisher_;
    SweepResult res_;
    std::string json_lines_;
    std::unique_ptr<Progress> progress_;
    int64_t n_done_ = 0;
    std::map<std::string, std::vector<SweepRow>> measured_;  // plan → its rows
};

}  // namespace

SweepResult run_sweep(const SweepParams& p) {
    check_grid(p);
    return SweepRun(p).run();
}

}  // namespace palu::pipeline
