// palu pipeline: the palu-compress driver (compress.h).
#include "palu/pipeline/compress.h"

#include <filesystem>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/staging.h"
#include "palu/pipeline/overlay.h"
#include "palu/pipeline/write.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Inputs checked before the model is opened.
void check_options(const CompressParams& p) {
    check_rank_search_options(p.rank, "compress");
    quant::validate_quant_spec(p.quant, 0);
    formats::check_output_dir(p.out_dir, p.write.overwrite, "compress");
    if (p.eval) {
        PALU_CHECK(p.eval->has_source() && p.eval->text_path.empty() != p.eval->tokens_path.empty(),
                   UsageError, "compress: give one of --eval TEXT or --eval-tokens FILE");
        PALU_CHECK(fs::is_regular_file(p.eval->source()), IoError,
                   "compress: evaluation file %s does not exist", p.eval->source().c_str());
    }
}

// The calibration inputs, checked before any long work; returns whether statistics are needed.
bool check_calibration(const CompressParams& p) {
    // Statistics are needed for Fisher and whitening; when calibration data is given anyway, the
    // plain SVD uses them to report its error on the calibration activations.
    const CalibrationOptions& c = p.calib;
    const bool whiten = p.decompose.method == compress::DecomposeMethod::Whitened;
    const bool need_stats = p.rank.needs_fisher() || whiten || c.has_source() ||
                            (!c.stats_path.empty() && fs::exists(c.stats_path));
    check_calibration_inputs(
        c, need_stats, "compress",
        p.rank.needs_fisher()
            ? strfmt("rank search '%s'", compress::rank_search_method_name(p.rank.method))
            : std::string("whitening"));
    return need_stats;
}

formats::PaluBlock make_block(const CompressParams& p, const WeightSource& src,
                              const std::string& model_fp, const compress::RankPlan& plan,
                              const DecomposeResult& dec, const CalibrationStats* stats) {
    formats::PaluBlock b;
    b.group_size = plan.group_size;
    b.rank_search.method = compress::rank_search_method_name(plan.method);
    b.rank_search.target_ratio = plan.target_ratio;
    if (p.rank.kv_bytes > 0.0) b.rank_search.target_kv_bytes = p.rank.kv_bytes;
    b.rank_search.achieved_ratio = plan.achieved_ratio();
    b.rank_search.rank_multiple = plan.rank_multiple;
    b.rank_search.kept_dims = plan.n_kept();
    b.rank_search.full_dims = plan.n_full();
    b.decompose.method = compress::decompose_method_name(dec.method);
    b.decompose.damp = p.decompose.damp;
    b.decompose.gram_fallbacks = dec.gram_fallbacks;
    b.decompose.max_gram_shift = dec.max_gram_shift;
    if (stats) b.calibration = stats->record;
    b.hadamard = {p.decompose.hadamard, p.decompose.hadamard_seed};
    b.latent_quant = p.quant;
    const compress::KvShape shape{src.config().n_layers, src.config().n_kv_heads,
                                  src.config().d_head};
    b.kv_bytes_per_token.original_f16 = compress::original_kv_bytes_per_token(shape);
    b.kv_bytes_per_token.compressed = compress::kv_bytes_per_token(plan, p.quant);
    b.kv_bytes_per_token.ratio = static_cast<double>(b.kv_bytes_per_token.compressed) /
                                 static_cast<double>(b.kv_bytes_per_token.original_f16);
    b.source_model = {p.model_path, src.format_name(), model_fp};
    return b;
}

}  // namespace

json CompressEval::to_json() const {
    return {{"source", source},
            {"seqlen", compressed.seqlen},
            {"n_windows", compressed.n_windows},
            {"ppl_original", original.ppl},
            {"ppl_compressed", compressed.ppl},
            {"ppl_ratio", compressed.ppl / original.ppl},
            {"kv_cache_bytes_per_token_measured", compressed.kv_bytes_per_token},
            {"kv_cache_bytes_per_token_original", original.kv_bytes_per_token},
            {"kv_cache_latent_bits", compressed.latent_bits}};
}

json CompressResult::to_json() const {
    return {{"format", "palu.report"},
            {"format_version", 1},
            {"model", model_path},
            {"out", out_dir},
            {"palu", formats::to_json(palu)},
            {"ranks", compress::rank_plan_to_json(plan)},
            {"layers", layer_reports_json(layers)},
            {"stages", stages.to_json()},
            {"eval", eval ? eval->to_json() : json(nullptr)},
            {"total_seconds", total_seconds},
            {"peak_rss_bytes", peak_rss_bytes},
            {"threads", n_threads}};
}

CompressResult run_compress(const CompressParams& p) {
    const auto t_start = std::chrono::steady_clock::now();
    check_options(p);
    CompressResult res;
    res.model_path = p.model_path;
    res.out_dir = p.out_dir;
    res.n_threads = p.run.n_threads;
    auto src = formats::open_model(p.model_path);
    const ModelConfig& cfg = src->config();
    PALU_CHECK(!formats::is_palu_checkpoint(*src), UsageError,
               "compress: %s is already a compressed palu checkpoint; hint: compress the original "
               "model",
               p.model_path.c_str());
    const int64_t s = resolve_group_size(cfg, p.rank.group_size, "compress", p.model_path);
    const bool need_stats = check_calibration(p);
    const std::string model_fp = formats::fingerprint_model(*src);

    std::optional<CalibrationStats> stats;
    if (need_stats) {
        stats = calibrate(*src, model_fp, p.calib,
                          p.rank.needs_fisher() ? FisherNeed::Required : FisherNeed::IfInStatsFile,
                          p.run);
        res.stages.done("calibrate");
    }
    res.plan = search_rank_plan(cfg, stats ? &*stats : nullptr, p.rank, s, p.quant);
    res.stages.done("rank_search");

    std::optional<Whitening> whitening;
    if (stats) whitening.emplace(stats->gram, p.decompose.damp, /*keep=*/false);
    DecomposeResult dec = decompose_model(*src, res.plan, whitening ? &*whitening : nullptr,
                                          p.decompose, p.run.progress);
    res.layers = dec.reports;
    res.stages.done("decompose");

    res.palu = make_block(p, *src, model_fp, res.plan, dec, stats ? &*stats : nullptr);
    write_compressed_checkpoint(*src, dec.layers, res.palu, p.out_dir, p.write);
    const int64_t kv_orig = res.palu.kv_bytes_per_token.original_f16;
    const int64_t kv_comp = res.palu.kv_bytes_per_token.compressed;
    PALU_LOG_INFO("compress", "wrote %s: KV cache %s per token (original f16 %s, %.3fx smaller)",
                  p.out_dir.c_str(), bytes_str(kv_comp).c_str(), bytes_str(kv_orig).c_str(),
                  static_cast<double>(kv_orig) / static_cast<double>(kv_comp));
    res.stages.done("write");

    if (p.eval) {
        // Tokenized once, scored by both models; the compressed one in memory, with the factor
        // values the checkpoint stores.
        const std::vector<int32_t> ids = load_eval_tokens(*p.eval, *src);
        CompressEval ev;
        ev.source = p.eval->source();
        ev.original = eval_ppl(*src, ids, *p.eval, p.run);
        const CompressedOverlay compressed(
            *src, dec.layers, res.palu, formats::resolve_factor_dtype(*src, p.write.factor_dtype));
        ev.compressed = eval_ppl(compressed, ids, *p.eval, p.run);
        PALU_LOG_INFO("compress",
                      "perplexity (%lld windows of %lld): original %.4f, compressed %.4f",
                      static_cast<long long>(ev.compressed.n_windows),
                      static_cast<long long>(p.eval->seqlen), ev.original.ppl, ev.compressed.ppl);
        res.eval = std::move(ev);
        res.stages.done("eval");
    }
    res.total_seconds = seconds_since(t_start);
    res.peak_rss_bytes = peak_rss_bytes();
    formats::write_file_atomically(fs::path(p.out_dir) / "report.json",
                                   res.to_json().dump(2) + "\n", "compress");
    return res;
}

}  // namespace palu::pipeline
