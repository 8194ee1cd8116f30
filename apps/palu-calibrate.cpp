// palu-calibrate: calibration statistics (per-layer Gram of the K/V input, Fisher of k/v_proj) of a
// model over sampled windows of a text or token file, written to an HDF5 stats file.
#include <cstdio>

#include "cli_common.h"
#include "palu/model/blas.h"
#include "palu/pipeline/calibrate.h"

int main(int argc, char** argv) {
    palu::model::blas_reexec_for_avx512(argc, argv);
    CLI::App app{
        "palu-calibrate: samples calibration windows, runs the model over them and stores "
        "Sum x x^T of every layer's K/V input (whitening) and Sum (dL/dW)^2 of every "
        "k_proj/v_proj (Fisher, for rank search) in an HDF5 file. An existing --out made "
        "from the same model, data and settings is reused; one made from others is "
        "refused.",
        "palu-calibrate"};
    palu::cli::CommonOptions common;
    palu::pipeline::CalibrateParams p;
    app.add_option("--model,-m", p.model_path,
                   "Model: HF dir, .safetensors, .gguf or llama2.c .bin")
        ->required();
    palu::pipeline::CalibrationOptions& c = p.calib;
    auto* o_text =
        app.add_option("--text", c.text_path, "Text corpus, tokenized with the model's tokenizer");
    palu::cli::add_enum_option(app, "--format", c.text_format, palu::cli::text_formats(),
                               "Text format");
    app.add_option("--tokens", c.tokens_path, "Token ids (raw little-endian int32, .i32)")
        ->excludes(o_text);
    app.add_option("--samples,-n", c.n_samples, "Calibration windows")
        ->required()
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    app.add_option("--seqlen", c.seqlen, "Tokens per window")
        ->required()
        ->check(CLI::Range(int64_t{2}, int64_t{1} << 24));
    palu::cli::add_enum_option(app, "--sampler", c.sampler, palu::cli::samplers(),
                               "random: [BOS]+tokens[o:o+L-1] at seeded random o; contiguous: "
                               "non-overlapping windows from the start; offsets: o from --offsets");
    app.add_option("--offsets", c.offsets_path,
                   "Offsets file: one start offset per line, '#' comments");
    app.add_option("--seed", c.seed, "Seed of the random sampler");
    palu::cli::add_enum_option(app, "--fisher-shift", c.fisher_shift, palu::cli::fisher_shifts(),
                               "Fisher loss: single (t predicts t+1) or double (t predicts t+2, "
                               "the Palu reference)");
    app.add_flag(
        "--no-fisher", [&](int64_t) { p.fisher = false; }, "Gram matrices only");
    app.add_option("--out,-o", c.stats_path, "Output stats file (.h5)")->required();
    app.add_flag("--overwrite", c.overwrite_stats,
                 "Replace an --out made from another model, data or settings");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        p.run.n_threads = palu::cli::apply_common(common);
        p.run.progress = !common.quiet;
        const auto r = palu::pipeline::run_calibrate(p);
        std::printf(
            "stats %s\nreused %s\nwindows %lld\ntokens %lld\nfisher_mean_loss %.6f\nseconds %.2f\n",
            r.out_path.c_str(), r.reused ? "yes" : "no", (long long)r.n_samples,
            (long long)r.n_tokens, r.fisher_mean_loss, r.seconds);
        return 0;
    });
}
