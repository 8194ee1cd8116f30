// palu-sweep: the real-model tables of issue 4. Calibrates once, then compresses in memory for
// every rank-search method × group size × kept ratio and measures perplexity with every latent
// format; writes a markdown table and JSON lines (sweep.h).
#include <cstdio>
#include <string>

#include "cli_common.h"
#include "palu/model/blas.h"
#include "palu/pipeline/sweep.h"

int main(int argc, char** argv) {
    palu::model::blas_reexec_for_avx512(argc, argv);
    CLI::App app{
        "palu-sweep: perplexity and KV-cache size of a model compressed over a grid of settings "
        "(rank search method x head-group size x kept ratio x latent format), one calibration for "
        "all, factors kept in memory (no checkpoints written).\n"
        "Example: palu-sweep --model SmolLM2.gguf --calib c4.jsonl --eval wiki.test.raw "
        "--eval-seqlen 1024 --group-sizes 1,3 --latents 16,4,3,3h --out table.md --json rows.jsonl",
        "palu-sweep"};
    palu::cli::CommonOptions common;
    palu::pipeline::SweepParams p;
    palu::pipeline::CalibrationOptions& c = p.calib;
    std::string ratios = "1.0,0.7,0.5,0.3", group_sizes, methods = "uniform,fisher_uniform",
                latents = "16,4,3,3h";
    app.add_option("--model,-m", p.model_path,
                   "Model: HF directory, .safetensors, .gguf or llama2.c .bin")
        ->required();
    app.add_option("--ratios", ratios, "Kept ratios, comma-separated, each in (0, 1]")
        ->capture_default_str();
    app.add_option("--group-sizes", group_sizes,
                   "KV heads per latent group, comma-separated (default: 4, or the largest divisor "
                   "of n_kv <= 4)");
    app.add_option("--methods", methods, "Rank search methods: uniform, fisher, fisher_uniform")
        ->capture_default_str();
    app.add_option("--latents", latents,
                   "Latent KV formats: 32 / 16 (f32 / f16 latents), 8, 4, 3, 2 bits; 'h' suffix = "
                   "on the Hadamard-fused factors (e.g. 3h)")
        ->capture_default_str();
    app.add_option("--round-to", p.round_to, "Rank multiple (0: min(32, group width / 4))");
    palu::cli::add_calibration_options(app, c);
    app.add_option("--damp", p.damp, "Added to every Gram diagonal before Cholesky (default 0)");
    auto* ev = app.add_option("--eval", p.eval.text_path, "Evaluation text");
    palu::cli::add_enum_option(app, "--eval-format", p.eval.text_format, palu::cli::text_formats(),
                               "auto|wikitext|jsonl|plain");
    app.add_option("--eval-tokens", p.eval.tokens_path, "Evaluation token ids (.i32)")
        ->excludes(ev);
    app.add_option("--eval-seqlen", p.eval.seqlen, "Evaluation window length")
        ->check(CLI::Range(2, 1 << 20));
    app.add_option("--eval-max-windows", p.eval.max_windows,
                   "Evaluate only the first K windows (0 = all)");
    app.add_option("--out,-o", p.out_table, "Markdown table (rewritten after every row)");
    app.add_option("--json", p.out_json, "JSON lines, one per row (rewritten after every row)");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        p.run.n_threads = palu::cli::apply_common(common);
        p.run.progress = !common.quiet;
        p.hadamard_seed = c.seed;
        p.ratios = palu::pipeline::parse_ratio_list(ratios, "--ratios");
        if (!group_sizes.empty())
            p.group_sizes = palu::pipeline::parse_group_size_list(group_sizes, "--group-sizes");
        p.methods = palu::pipeline::parse_method_list(methods, "--methods");
        p.latents = palu::pipeline::parse_latent_list(latents, "--latents");
        const auto r = palu::pipeline::run_sweep(p);
        std::fputs(r.markdown.c_str(), stdout);
        return 0;
    });
}
