// palu-compress: one command from a Llama-family checkpoint to a compressed one with a smaller KV
// cache (Palu): calibrate → Fisher rank search → whitened group SVD → [Hadamard] → checkpoint +
// report.json, optionally with the perplexity before and after.
#include <cstdio>
#include <string>

#include "cli_common.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/model/blas.h"
#include "palu/pipeline/compress.h"
#include "palu/pipeline/mla.h"

namespace {

std::string join_ranks(const std::vector<int64_t>& ranks) {
    std::string s;
    for (int64_t r : ranks) s += (s.empty() ? "" : "/") + std::to_string(r);
    return s;
}

// Largest relative error of the layer's groups on the calibration activations ("-": no
// calibration statistics, e.g. a data-free plain SVD).
std::string worst_error(const std::vector<palu::compress::GroupError>& errs) {
    double w = -1;
    for (const auto& e : errs) w = std::max(w, e.whitened_rel);
    return w < 0 ? std::string("-") : palu::strfmt("%.4g", w);
}

void print_summary(const palu::pipeline::CompressResult& r) {
    const palu::formats::PaluBlock& b = r.palu;
    std::printf("palu-compress summary: %s -> %s\n", r.model_path.c_str(), r.out_dir.c_str());
    std::printf(
        "  group size %lld, rank search %s, target ratio %.3f, achieved %.4f (%lld/%lld dims)\n",
        static_cast<long long>(b.group_size), b.rank_search.method.c_str(),
        b.rank_search.target_ratio, b.rank_search.achieved_ratio,
        static_cast<long long>(b.rank_search.kept_dims),
        static_cast<long long>(b.rank_search.full_dims));
    std::printf("  %-6s %-22s %-22s %-12s %-12s\n", "layer", "K ranks", "V ranks", "K rel.err",
                "V rel.err");
    for (size_t l = 0; l < r.plan.k_ranks.size(); ++l) {
        const auto& lr = r.layers[l];
        std::printf("  %-6zu %-22s %-22s %-12s %-12s\n", l, join_ranks(r.plan.k_ranks[l]).c_str(),
                    join_ranks(r.plan.v_ranks[l]).c_str(), worst_error(lr.k.errors).c_str(),
                    worst_error(lr.v.errors).c_str());
    }
    const auto& kv = b.kv_bytes_per_token;
    std::printf(
        "  KV cache per token: original f16 %s, compressed %s (%d-bit latents) = %.3fx smaller\n",
        palu::bytes_str(kv.original_f16).c_str(), palu::bytes_str(kv.compressed).c_str(),
        b.latent_quant.bits,
        static_cast<double>(kv.original_f16) / static_cast<double>(kv.compressed));
    if (r.eval) {
        const auto& e = *r.eval;
        std::printf(
            "  perplexity (%lld windows of %lld): original %.4f, compressed %.4f (%+.2f%%); "
            "measured latent cache %lld bytes/token\n",
            static_cast<long long>(e.compressed.n_windows),
            static_cast<long long>(e.compressed.seqlen), e.original.ppl, e.compressed.ppl,
            100.0 * (e.compressed.ppl / e.original.ppl - 1.0),
            static_cast<long long>(e.compressed.kv_bytes_per_token));
    }
    std::printf("  stages:");
    for (const auto& st : r.stages.stages) std::printf(" %s %.1f s;", st.name.c_str(), st.seconds);
    std::printf(" total %.1f s, peak RSS %s\n", r.total_seconds,
                palu::bytes_str(r.peak_rss_bytes).c_str());
}

void print_mla_summary(const palu::pipeline::MlaCompressResult& r) {
    const auto& g = r.geometry;
    std::printf("palu-compress summary (MLA layout): %s -> %s\n", r.model_path.c_str(),
                r.out_dir.c_str());
    std::printf("  kv_lora_rank %lld + rope %lld (%s), rope_theta %g\n",
                static_cast<long long>(g.kv_lora_rank), static_cast<long long>(g.rope_dim),
                palu::compress::rope_select_name(g.rope_select), g.rope_theta);
    std::printf("  %-6s %-14s %-16s %-16s %-8s\n", "layer", "rope energy", "latent rel.err",
                "norm-fit rel.err", "alpha");
    for (const auto& l : r.layers)
        std::printf("  %-6lld %-14.4f %-16.4g %-16.4g %-8.3f\n", static_cast<long long>(l.layer),
                    l.rope_kept_energy, l.latent_whitened_rel, l.norm_refit_rel, l.alpha);
    std::printf(
        "  KV cache per token: original f16 %s, MLA f16 %s = %.3fx smaller\n",
        palu::bytes_str(g.original_kv_bytes).c_str(), palu::bytes_str(g.kv_bytes_per_token).c_str(),
        static_cast<double>(g.original_kv_bytes) / static_cast<double>(g.kv_bytes_per_token));
    if (r.ppl_original && r.ppl_mla)
        std::printf(
            "  perplexity (%lld windows of %lld): original %.4f, MLA %.4f (%+.2f%%); measured "
            "cache %lld bytes/token (f32 engine)\n",
            static_cast<long long>(r.ppl_mla->n_windows), static_cast<long long>(r.ppl_mla->seqlen),
            r.ppl_original->ppl, r.ppl_mla->ppl,
            100.0 * (r.ppl_mla->ppl / r.ppl_original->ppl - 1.0),
            static_cast<long long>(r.ppl_mla->kv_bytes_per_token));
    for (const auto& a : r.ablation)
        std::printf("  ablation: %-52s ppl %.4f\n", a.name.c_str(), a.ppl);
    std::printf("  stages:");
    for (const auto& st : r.stages.stages) std::printf(" %s %.1f s;", st.name.c_str(), st.seconds);
    std::printf(" total %.1f s, peak RSS %s\n", r.total_seconds,
                palu::bytes_str(r.peak_rss_bytes).c_str());
}

}  // namespace

int main(int argc, char** argv) {
    palu::model::blas_reexec_for_avx512(argc, argv);
    CLI::App app{
        "palu-compress: compresses the KV cache of a Llama-family model (Palu low-rank "
        "projection).\n"
        "Stages: calibrate on text (Gram matrices of the k/v_proj input, Fisher information of "
        "k_proj/v_proj) -> rank search over head groups for the kept ratio -> Cholesky-whitened "
        "SVD "
        "per head group -> optional Walsh-Hadamard rotation -> compressed checkpoint (HF "
        "directory: "
        "k/v_proj as VT + U.{g}, config.json with head_wise_ranks and a palu block) + "
        "report.json.\n"
        "Example: palu-compress --model SmolLM2.gguf --out smollm2-palu --ratio 0.5 --calib "
        "c4.jsonl --eval wiki.test.raw --eval-seqlen 1024\n"
        "The KV cache shrinks by 1/ratio with f16 latents (x4 more with --latent-bits 4).",
        "palu-compress"};
    palu::cli::CommonOptions common;
    palu::pipeline::CompressParams p;
    app.add_option("--model,-m", p.model_path,
                   "Model: HF directory, .safetensors, .gguf or llama2.c .bin")
        ->required();
    app.add_option("--out,-o", p.out_dir, "Output directory (must not exist or be empty)")
        ->required();
    auto* ratio =
        app.add_option("--ratio,-r", p.rank.ratio, "Kept fraction of K/V latent dims, in (0, 1]");
    app.add_option("--kv-bytes", p.rank.kv_bytes,
                   "Target instead of --ratio: KV-cache bytes per token (all layers, K and V, in "
                   "the --latent-bits format incl. scales and zeros)")
        ->excludes(ratio);
    app.add_option("--group-size,-g", p.rank.group_size,
                   "KV heads per latent group: 1 = per head (M-LRD), n_kv = joint (J-LRD); "
                   "0 = auto: 4, or the largest divisor of n_kv <= 4");
    palu::cli::add_enum_option(app, "--rank-search", p.rank.method,
                               palu::cli::rank_search_methods(),
                               "fisher_uniform (reference default: one budget over modules by "
                               "Fisher, even split over groups) | fisher (per group) | uniform");
    app.add_option("--round-to", p.rank.round_to, "Rank multiple (0: min(32, group width / 4))");
    palu::cli::add_calibration_options(app, p.calib);
    bool no_whiten = false;
    app.add_flag("--no-whiten", no_whiten, "Plain SVD of the weights instead of the whitened SVD");
    app.add_option("--damp", p.decompose.damp,
                   "Added to every Gram diagonal before Cholesky (default 0; the reference's "
                   "eigen-shift fallback runs when not positive definite)");
    app.add_flag("--hadamard", p.decompose.hadamard,
                 "Fuse a Walsh-Hadamard rotation into each group's factors (for low-bit latents)");
    app.add_option("--latent-bits", p.quant.bits,
                   "Latent KV-cache format recorded in the checkpoint: 16 (f16) | 8 | 4 | 3 | 2")
        ->check(CLI::IsMember({2, 3, 4, 8, 16}));
    app.add_option("--latent-group-size", p.quant.group_size,
                   "Channels per (scale, zero); 0 = the whole latent group");
    app.add_flag("--latent-sym", p.quant.symmetric,
                 "Symmetric latent quantization (default asymmetric)");
    std::string factor_dtype = "auto";
    app.add_option("--factor-dtype", factor_dtype,
                   "Storage of U/VT: auto (the source k_proj's dtype when f16/bf16, else f32) | "
                   "f32 | f16 | bf16")
        ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
    palu::pipeline::EvalOptions eval;
    eval.seqlen = 2048;
    auto* ev =
        app.add_option("--eval", eval.text_path, "Evaluate perplexity before/after on this text");
    palu::cli::add_enum_option(app, "--eval-format", eval.text_format, palu::cli::text_formats(),
                               "auto|wikitext|jsonl|plain");
    auto* evt =
        app.add_option("--eval-tokens", eval.tokens_path, "Evaluate on these token ids (.i32)")
            ->excludes(ev);
    app.add_option("--eval-seqlen", eval.seqlen, "Evaluation window length")
        ->check(CLI::Range(2, 1 << 20))
        ->capture_default_str();
    app.add_option("--eval-max-windows", eval.max_windows,
                   "Evaluate only the first K windows (0 = all)");
    app.add_flag("--overwrite", p.write.overwrite, "Replace a non-empty --out");
    std::string layout = "palu";
    app.add_option("--layout", layout,
                   "palu: latents per head group (Palu; palu's engine and kernels) | mla: one "
                   "latent + one shared rotary key per layer, written as a DeepSeek-V3 checkpoint "
                   "that llama.cpp (palu-export --to gguf), vLLM, SGLang and transformers serve "
                   "with the smaller cache")
        ->check(CLI::IsMember({"palu", "mla"}))
        ->capture_default_str();
    palu::pipeline::MlaOptions mla;
    app.add_option("--kv-lora-rank", mla.kv_lora_rank,
                   "MLA: latent dims per layer (instead of --ratio / --kv-bytes, which count "
                   "kv_lora_rank + rope dim against the original K+V dims / f16 bytes)");
    app.add_option("--rope-dim", mla.rope_dim,
                   "MLA: dims of the shared rotary key (qk_rope_head_dim); 0 = min(head_dim, 64)");
    palu::cli::add_enum_option(
        app, "--rope-select", mla.rope_select,
        {{"fold", palu::compress::RopeSelect::Fold}, {"high", palu::compress::RopeSelect::High}},
        "MLA, when --rope-dim < head_dim: fold (FreqFold: adjacent frequencies share a rotary "
        "pair, default) | high (the highest frequencies keep RoPE, the rest become NoPE)");
    palu::cli::add_enum_option(app, "--target", mla.target,
                               {{"any", palu::pipeline::MlaTarget::Any},
                                {"llama.cpp", palu::pipeline::MlaTarget::LlamaCpp},
                                {"vllm", palu::pipeline::MlaTarget::Vllm}},
                               "MLA: runtime geometry to respect: any | llama.cpp | vllm "
                               "(kv_lora_rank + rope dim = 576 or 320)");
    palu::cli::add_enum_option(app, "--latent-norm-fit", mla.norm_fit,
                               {{"refit", palu::pipeline::LatentNormFit::Refit},
                                {"scale", palu::pipeline::LatentNormFit::Scale},
                                {"linearize", palu::pipeline::LatentNormFit::Linearize}},
                               "MLA: how the latent norm every runtime applies is absorbed: "
                               "linearize (default: latent kept below the norm's eps so the norm "
                               "is a constant; f32/bf16 kv_a_proj) | refit (kv_b_proj refit by "
                               "least squares on the normalised calibration latents) | scale");
    palu::cli::add_enum_option(app, "--rope-pca", mla.query_rope, {{"query", true}, {"key", false}},
                               "MLA: which rotary component each frequency keeps: query (the "
                               "query-weighted PCA that minimises the score error, default) | key "
                               "(TransMLA's key PCA)");
    palu::cli::add_enum_option(app, "--latent-metric", mla.output_metric,
                               {{"output", true}, {"input", false}},
                               "MLA: joint latent SVD error measured at the output (K through the "
                               "queries, V through o_proj; default) | input (whitening only)");
    app.add_option("--kv-balance", mla.balance,
                   "MLA: weight of K against V in the joint SVD (0 = equal energy)");
    app.add_flag("--mla-ablation", mla.ablation,
                 "MLA with --eval: also score each approximation alone (RoPE decoupling, "
                 "low-rank latent, latent norm with and without refit)");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        p.run.n_threads = palu::cli::apply_common(common);
        if (layout == "mla") {
            palu::pipeline::MlaCompressParams m;
            m.model_path = p.model_path;
            m.out_dir = p.out_dir;
            m.calib = p.calib;
            m.rank = p.rank;
            m.rank_given = app.count("--ratio") + app.count("--kv-bytes") > 0;
            PALU_CHECK(!(m.rank_given && mla.kv_lora_rank > 0), palu::UsageError,
                       "compress: give --kv-lora-rank or --ratio / --kv-bytes, not both");
            m.mla = mla;
            if (factor_dtype != "auto") m.dtype = palu::cli::float_dtypes().at(factor_dtype);
            m.overwrite = p.write.overwrite;
            if (ev->count() > 0 || evt->count() > 0) m.eval = eval;
            m.run = p.run;
            m.run.progress = !common.quiet;
            const auto r = palu::pipeline::run_compress_mla(m);
            if (!common.quiet) print_mla_summary(r);
            return 0;
        }
        if (app.count("--ratio") == 0 && app.count("--kv-bytes") == 0)
            throw palu::UsageError("compress: give the target: --ratio R or --kv-bytes N");
        p.decompose.method = no_whiten ? palu::compress::DecomposeMethod::Plain
                                       : palu::compress::DecomposeMethod::Whitened;
        p.decompose.hadamard_seed = p.calib.seed;  // one --seed for sampling and rotation
        if (factor_dtype != "auto")
            p.write.factor_dtype = palu::cli::float_dtypes().at(factor_dtype);
        if (ev->count() > 0 || evt->count() > 0) p.eval = eval;
        p.run.progress = !common.quiet;
        const auto r = palu::pipeline::run_compress(p);
        if (!common.quiet) print_summary(r);
        return 0;
    });
}
