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

namespace {

void print_summary(const nlohmann::json& r) {
    const auto& palu = r["palu"];
    std::printf("palu-compress summary: %s -> %s\n", r["model"].get<std::string>().c_str(),
                r["out"].get<std::string>().c_str());
    std::printf("  group size %lld, rank search %s, target ratio %.3f, achieved %.4f (%lld/%lld dims)\n",
                palu["group_size"].get<long long>(),
                palu["rank_search"]["method"].get<std::string>().c_str(),
                palu["rank_search"]["target_ratio"].get<double>(),
                palu["rank_search"]["achieved_ratio"].get<double>(),
                palu["rank_search"]["kept_dims"].get<long long>(),
                palu["rank_search"]["full_dims"].get<long long>());
    std::printf("  %-6s %-22s %-22s %-12s %-12s\n", "layer", "K ranks", "V ranks", "K rel.err",
                "V rel.err");
    for (const auto& l : r["layers"]) {
        auto ranks = [](const nlohmann::json& a) {
            std::string s;
            for (const auto& x : a) s += (s.empty() ? "" : "/") + std::to_string(x.get<long long>());
            return s;
        };
        // Largest relative error of the layer's groups on the calibration activations
        // ("-": no calibration statistics, e.g. a data-free plain SVD).
        auto worst = [](const nlohmann::json& errs) {
            double w = -1;
            for (const auto& e : errs) w = std::max(w, e["whitened_rel"].get<double>());
            return w < 0 ? std::string("-") : palu::strfmt("%.4g", w);
        };
        std::printf("  %-6lld %-22s %-22s %-12s %-12s\n", l["layer"].get<long long>(),
                    ranks(l["k"]["ranks"]).c_str(), ranks(l["v"]["ranks"]).c_str(),
                    worst(l["k"]["errors"]).c_str(), worst(l["v"]["errors"]).c_str());
    }
    const auto& kv = palu["kv_bytes_per_token"];
    std::printf("  KV cache per token: original f16 %s, compressed %s (%d-bit latents) = %.3fx smaller\n",
                palu::bytes_str(kv["original_f16"].get<int64_t>()).c_str(),
                palu::bytes_str(kv["compressed"].get<int64_t>()).c_str(),
                palu["latent_quant"]["bits"].get<int>(),
                kv["original_f16"].get<double>() / kv["compressed"].get<double>());
    if (!r["eval"].is_null()) {
        const auto& e = r["eval"];
        std::printf("  perplexity (%lld windows of %lld): original %.4f, compressed %.4f (%+.2f%%); "
                    "measured latent cache %lld bytes/token\n",
                    e["n_windows"].get<long long>(), e["seqlen"].get<long long>(),
                    e["ppl_original"].get<double>(), e["ppl_compressed"].get<double>(),
                    100.0 * (e["ppl_ratio"].get<double>() - 1.0),
                    e["kv_cache_bytes_per_token_measured"].get<long long>());
    }
    std::printf("  stages:");
    for (const char* name : {"calibrate", "rank_search", "decompose", "write", "eval"})
        if (r["stages"].contains(name))
            std::printf(" %s %.1f s;", name, r["stages"][name]["seconds"].get<double>());
    std::printf(" total %.1f s, peak RSS %s\n", r["total_seconds"].get<double>(),
                palu::bytes_str(r["peak_rss_bytes"].get<int64_t>()).c_str());
}

}  // namespace

int main(int argc, char** argv) {
    palu::model::blas_reexec_for_avx512(argc, argv);
    CLI::App app{
        "palu-compress: compresses the KV cache of a Llama-family model (Palu low-rank projection).\n"
        "Stages: calibrate on text (Gram matrices of the k/v_proj input, Fisher information of "
        "k_proj/v_proj) -> rank search over head groups for the kept ratio -> Cholesky-whitened SVD "
        "per head group -> optional Walsh-Hadamard rotation -> compressed checkpoint (HF directory: "
        "k/v_proj as VT + U.{g}, config.json with head_wise_ranks and a palu block) + report.json.\n"
        "Example: palu-compress --model SmolLM2.gguf --out smollm2-palu --ratio 0.5 --calib "
        "c4.jsonl --eval wiki.test.raw --eval-seqlen 1024\n"
        "The KV cache shrinks by 1/ratio with f16 latents (x4 more with --latent-bits 4).",
        "palu-compress"};
    palu::cli::CommonOptions common;
    palu::pipeline::CompressParams p;
    app.add_option("--model,-m", p.model_path,
                   "Model: HF directory, .safetensors, .gguf or llama2.c .bin")
        ->required();
    app.add_option("--out,-o", p.out_dir, "Output directory (must not exist or be empty)")->required();
    auto* ratio = app.add_option("--ratio,-r", p.ratio, "Kept fraction of K/V latent dims, in (0, 1]");
    app.add_option("--kv-bytes", p.kv_bytes,
                   "Target instead of --ratio: KV-cache bytes per token (all layers, K and V, in "
                   "the --latent-bits format incl. scales and zeros)")
        ->excludes(ratio);
    app.add_option("--group-size,-g", p.group_size,
                   "KV heads per latent group: 1 = per head (M-LRD), n_kv = joint (J-LRD); "
                   "0 = auto: 4, or the largest divisor of n_kv <= 4");
    app.add_option("--rank-search", p.rank_search,
                   "fisher_uniform (reference default: one budget over modules by Fisher, even "
                   "split over groups) | fisher (per group) | uniform")
        ->check(CLI::IsMember({"uniform", "fisher", "fisher_uniform"}));
    app.add_option("--round-to", p.round_to, "Rank multiple (0: min(32, group width / 4))");
    palu::cli::add_calibration_options(app, p.calib);
    bool no_whiten = false;
    app.add_flag("--no-whiten", no_whiten, "Plain SVD of the weights instead of the whitened SVD");
    app.add_option("--damp", p.damp, "Added to every Gram diagonal before Cholesky (default 0; the reference's eigen-shift fallback runs when not positive definite)");
    app.add_flag("--hadamard", p.hadamard, "Fuse a Walsh-Hadamard rotation into each group's factors (for low-bit latents)");
    app.add_option("--latent-bits", p.quant.bits, "Latent KV-cache format recorded in the checkpoint: 16 (f16) | 8 | 4 | 3 | 2")
        ->check(CLI::IsMember({2, 3, 4, 8, 16}));
    app.add_option("--latent-group-size", p.quant.group_size, "Channels per (scale, zero); 0 = the whole latent group");
    app.add_flag("--latent-sym", p.quant.symmetric, "Symmetric latent quantization (default asymmetric)");
    app.add_option("--factor-dtype", p.factor_dtype, "Storage of U/VT: auto (source k_proj dtype) | f32 | f16 | bf16")
        ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
    auto* ev = app.add_option("--eval", p.eval_path, "Evaluate perplexity before/after on this text");
    app.add_option("--eval-format", p.eval_format, "auto|wikitext|jsonl|plain")
        ->check(CLI::IsMember({"auto", "wikitext", "jsonl", "plain"}));
    app.add_option("--eval-tokens", p.eval_tokens, "Evaluate on these token ids (.i32)")->excludes(ev);
    app.add_option("--eval-seqlen", p.eval_seqlen, "Evaluation window length")->check(CLI::Range(2, 1 << 20));
    app.add_option("--eval-max-windows", p.eval_max_windows, "Evaluate only the first K windows (0 = all)");
    app.add_flag("--overwrite", p.overwrite, "Replace a non-empty --out");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        p.n_threads = palu::cli::apply_common(common);
        if (app.count("--ratio") == 0 && app.count("--kv-bytes") == 0)
            throw palu::UsageError("compress: give the target: --ratio R or --kv-bytes N");
        p.whiten = !no_whiten;
        p.progress = !common.quiet;
        const auto r = palu::pipeline::run_compress(p);
        if (!common.quiet) print_summary(r.report);
        return 0;
    });
}
