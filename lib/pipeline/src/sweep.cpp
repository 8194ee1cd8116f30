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

SweepResult run_sweep(const SweepParams& p) {
    check_grid(p);
    const bool need_fisher = std::any_of(
        p.methods.begin(), p.methods.end(),
        [](compress::RankSearchMethod m) { return m != compress::RankSearchMethod::Uniform; });
    auto src = formats::open_model(p.model_path);
    const ModelConfig& cfg = src->config();
    PALU_CHECK(!formats::is_palu_checkpoint(*src), UsageError,
               "sweep: %s is already a compressed palu checkpoint; hint: sweep the original model",
               p.model_path.c_str());
    std::vector<int64_t> group_sizes = p.group_sizes;
    if (group_sizes.empty()) group_sizes.push_back(default_group_size(cfg.n_kv_heads));
    for (int64_t g : group_sizes)
        PALU_CHECK(g >= 1 && cfg.n_kv_heads % g == 0, UsageError,
                   "sweep: --group-sizes: %lld does not divide the %lld KV heads of %s; hint: use "
                   "divisors of %lld",
                   static_cast<long long>(g), static_cast<long long>(cfg.n_kv_heads),
                   p.model_path.c_str(), static_cast<long long>(cfg.n_kv_heads));
    const compress::KvShape shape{cfg.n_layers, cfg.n_kv_heads, cfg.d_head};

    const std::vector<int32_t> tokens = load_eval_tokens(p.eval, *src);
    const int64_t n_avail =
        static_cast<int64_t>(tokens.size()) / std::max<int64_t>(p.eval.seqlen, 2);
    PALU_CHECK(n_avail >= 1, UsageError,
               "sweep: the %zu evaluation tokens do not fill one window of %lld; hint: lower "
               "--eval-seqlen",
               tokens.size(), static_cast<long long>(p.eval.seqlen));

    SweepResult res;
    res.seqlen = p.eval.seqlen;
    res.n_eval_tokens = static_cast<int64_t>(tokens.size());
    std::string json_lines;
    auto emit = [&](const SweepRow& row) {
        res.rows.push_back(row);
        json_lines += to_json(row).dump() + "\n";
        if (!p.out_json.empty()) formats::write_file_atomically(p.out_json, json_lines, "sweep");
        if (!p.out_table.empty())
            formats::write_file_atomically(p.out_table, sweep_markdown(res, p), "sweep");
    };

    // ---- calibration (once), whitening factors and Fisher scalars (once per group size) ----
    const auto t_calib = Clock::now();
    const std::string model_fp = formats::fingerprint_model(*src);
    const CalibrationStats cs =
        calibrate(*src, model_fp, p.calib,
                  need_fisher ? FisherNeed::Required : FisherNeed::IfInStatsFile, p.run);
    Whitening whitening(cs.gram, p.damp, /*keep=*/true);
    for (int64_t l = 0; l < cfg.n_layers; ++l) whitening.factor(l);
    std::map<int64_t, compress::FisherScalars> fisher;
    if (need_fisher)
        for (int64_t g : group_sizes) fisher[g] = fisher_scalars(*cs.fisher, shape, g);
    res.calibration_s = seconds_since(t_calib);
    PALU_LOG_INFO("sweep", "calibration statistics ready in %.1f s (%lld Gram fallbacks)",
                  res.calibration_s, static_cast<long long>(whitening.n_fallbacks()));

    // ---- the original model: the baseline row ----
    const int64_t kv_orig = compress::original_kv_bytes_per_token(shape);
    {
        model::Transformer engine(*src, model::Residency::Resident);
        engine.set_threads(p.run.n_threads);
        const auto r = model::compute_perplexity(engine, tokens, p.eval.seqlen, p.eval.max_windows,
                                                 /*n_batch=*/1);
        res.ppl_original = r.ppl;
        res.n_windows = r.n_windows;
        SweepRow row;
        row.original = true;
        row.method = "original";
        row.kv_bytes_formula = kv_orig;
        row.kv_bytes_measured = r.kv_bytes_per_token;
        row.kv_bytes_original = kv_orig;
        row.ppl = r.ppl;
        row.nll = r.nll;
        row.eval_s = r.seconds;
        emit(row);
        PALU_LOG_INFO("sweep", "original: ppl %.4f over %lld windows of %lld in %.1f s", r.ppl,
                      static_cast<long long>(r.n_windows), static_cast<long long>(p.eval.seqlen),
                      r.seconds);
    }

    // ---- the grid ----
    const bool any_hadamard = std::any_of(p.latents.begin(), p.latents.end(),
                                          [](const LatentSetting& l) { return l.hadamard; });
    const int64_t n_points = static_cast<int64_t>(p.methods.size() * group_sizes.size() *
                                                  p.ratios.size() * p.latents.size());
    Progress progress("sweep", "row", n_points, /*min_interval_s=*/0.0);
    const bool show = p.run.progress;
    int64_t n_done = 0;
    std::map<std::string, std::vector<SweepRow>> measured;  // plan → its rows
    for (size_t mi = 0; mi < p.methods.size(); ++mi)
        for (int64_t g : group_sizes)
            for (double ratio : p.ratios) {
                const auto t0 = Clock::now();
                compress::RankSearchParams rp;
                rp.method = p.methods[mi];
                rp.group_size = g;
                rp.ratio = ratio;
                rp.rank_multiple = p.round_to;
                const compress::RankPlan plan = compress::search_ranks(
                    shape,
                    need_fisher && p.methods[mi] != compress::RankSearchMethod::Uniform
                        ? &fisher.at(g)
                        : nullptr,
                    rp);
                const double t_search = seconds_since(t0);
                // Methods that allocate the same ranks (every method at ratio 1.0) give the same
                // factors: their rows are measured once and repeated with this method's name.
                const std::string plan_key =
                    std::to_string(g) + compress::rank_plan_to_json(plan)["layers"].dump();
                const auto same = measured.find(plan_key);
                if (same != measured.end()) {
                    for (SweepRow row : same->second) {
                        row.method = compress::rank_search_method_name(p.methods[mi]);
                        row.target_ratio = ratio;
                        row.same_plan_as = same->second.front().method;
                        row.compression_s = t_search;
                        emit(row);
                        ++n_done;
                        if (show)
                            progress.update(
                                n_done,
                                strfmt("%s s=%lld ratio %.2f %s: same ranks as "
                                       "%s",
                                       row.method.c_str(), static_cast<long long>(g), ratio,
                                       row.latent.label().c_str(), row.same_plan_as.c_str()));
                    }
                    continue;
                }
                DecomposeOptions dopt;
                dopt.damp = p.damp;
                const std::vector<CompressedLayer> layers =
                    decompose_model(*src, plan, &whitening, dopt, /*progress=*/false).layers;
                const double t_compress = seconds_since(t0);
                std::vector<CompressedLayer> layers_h;
                double t_hadamard = 0.0;
                if (any_hadamard) {
                    const auto th = Clock::now();
                    layers_h = layers;
                    for (auto& cl : layers_h) {
                        compress::fuse_hadamard(cl.k, p.hadamard_seed);
                        compress::fuse_hadamard(cl.v, p.hadamard_seed);
                    }
                    t_hadamard = seconds_since(th);
                }
                // One engine per factor set; the latent format only changes the cache factory.
                const CompressedOverlay overlay(*src, layers), overlay_h(*src, layers_h);
                std::unique_ptr<model::Transformer> engine, engine_h;
                std::vector<SweepRow>& point_rows = measured[plan_key];
                for (const LatentSetting& lat : p.latents) {
                    const CompressedOverlay& ov = lat.hadamard ? overlay_h : overlay;
                    std::unique_ptr<model::Transformer>& e = lat.hadamard ? engine_h : engine;
                    if (!e) {
                        e = std::make_unique<model::Transformer>(ov, model::Residency::Resident);
                        e->set_threads(p.run.n_threads);
                    }
                    configure_latent_cache(*e, ov, lat.bits);
                    const auto r = model::compute_perplexity(*e, tokens, p.eval.seqlen,
                                                             p.eval.max_windows, /*n_batch=*/1);
                    quant::LatentQuantSpec q;
                    q.bits = lat.bits >= 16 ? 16 : lat.bits;
                    // f32 latents: twice the f16 bytes (4 per latent, no scales).
                    const int64_t formula =
                        compress::kv_bytes_per_token(plan, q) * (lat.bits == 32 ? 2 : 1);
                    PALU_ASSERT(formula == r.kv_bytes_per_token,
                                "KV bytes per token: formula %lld, measured cache %lld",
                                static_cast<long long>(formula),
                                static_cast<long long>(r.kv_bytes_per_token));
                    SweepRow row;
                    row.method = compress::rank_search_method_name(p.methods[mi]);
                    row.group_size = g;
                    row.target_ratio = ratio;
                    row.achieved_ratio = plan.achieved_ratio();
                    row.latent = lat;
                    row.kv_bytes_formula = formula;
                    row.kv_bytes_measured = r.kv_bytes_per_token;
                    row.kv_bytes_original = kv_orig;
                    row.ppl = r.ppl;
                    row.nll = r.nll;
                    row.compression_s = t_compress + (lat.hadamard ? t_hadamard : 0.0);
                    row.eval_s = r.seconds;
                    emit(row);
                    point_rows.push_back(row);
                    ++n_done;
                    if (show)
                        progress.update(n_done,
                                        strfmt("%s s=%lld ratio %.2f %s: ppl %.4f (%+.2f%%)",
                                               row.method.c_str(), static_cast<long long>(g), ratio,
                                               lat.label().c_str(), r.ppl,
                                               100.0 * (r.ppl / res.ppl_original - 1.0)));
                }
            }
    res.markdown = sweep_markdown(res, p);
    return res;
}

}  // namespace palu::pipeline
