// palu apps: shared CLI plumbing.
#include "cli_common.h"

#include <cstdio>
#include <exception>

#include "palu/core/error.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"

namespace palu::cli {

void add_common(CLI::App& app, CommonOptions& opts, bool with_seed) {
    app.add_option("--threads,-t", opts.n_threads, "Worker threads (0 = all cores)")
        ->check(CLI::Range(0, 1024));
    app.add_option("--log-level", opts.log_level, "debug|info|warn|error|quiet")
        ->check(CLI::IsMember({"debug", "info", "warn", "error", "quiet"}));
    app.add_flag("--quiet,-q", opts.quiet, "Only errors on stderr");
    if (with_seed) app.add_option("--seed", opts.seed, "Random seed");
}

int apply_common(const CommonOptions& opts) {
    set_log_level(opts.quiet ? LogLevel::Error : parse_log_level(opts.log_level));
    return opts.n_threads > 0 ? opts.n_threads : n_cpu_cores();
}

int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help / --version exit 0; every other parse error is a usage error (exit code 2).
        int rc = app.exit(e);
        return rc == 0 ? 0 : static_cast<int>(ErrorCode::Usage);
    }
    try {
        return body();
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "E out of memory; hint: use a smaller --seqlen or fewer samples\n");
        return 6;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "E unexpected error: %s\n", e.what());
        return 1;
    }
}

const std::map<std::string, calib::TextFormat>& text_formats() {
    static const std::map<std::string, calib::TextFormat> m = {
        {"auto", calib::TextFormat::Auto},
        {"wikitext", calib::TextFormat::Wikitext},
        {"jsonl", calib::TextFormat::Jsonl},
        {"plain", calib::TextFormat::Plain}};
    return m;
}

const std::map<std::string, compress::RankSearchMethod>& rank_search_methods() {
    static const std::map<std::string, compress::RankSearchMethod> m = {
        {"uniform", compress::RankSearchMethod::Uniform},
        {"fisher", compress::RankSearchMethod::Fisher},
        {"fisher_uniform", compress::RankSearchMethod::FisherUniform}};
    return m;
}

const std::map<std::string, DType>& float_dtypes() {
    static const std::map<std::string, DType> m = {
        {"f32", DType::F32}, {"f16", DType::F16}, {"bf16", DType::BF16}};
    return m;
}

const std::map<std::string, calib::SamplerKind>& samplers() {
    static const std::map<std::string, calib::SamplerKind> m = {
        {"random", calib::SamplerKind::Random},
        {"contiguous", calib::SamplerKind::Contiguous},
        {"offsets", calib::SamplerKind::Offsets}};
    return m;
}

const std::map<std::string, model::LabelShift>& fisher_shifts() {
    static const std::map<std::string, model::LabelShift> m = {
        {"single", model::LabelShift::Single}, {"double", model::LabelShift::Double}};
    return m;
}

void add_calibration_options(CLI::App& app, pipeline::CalibrationOptions& c) {
    auto* calib = app.add_option("--calib", c.text_path,
                                 "Calibration text (wikitext raw, .jsonl with \"text\", or plain)");
    add_enum_option(app, "--calib-format", c.text_format, text_formats(),
                    "auto|wikitext|jsonl|plain");
    app.add_option("--calib-tokens", c.tokens_path, "Calibration token ids (raw int32 .i32)")
        ->excludes(calib);
    app.add_option("--calib-samples", c.n_samples, "Calibration windows")
        ->check(CLI::Range(1, 1 << 20))
        ->capture_default_str();
    app.add_option("--calib-seqlen", c.seqlen, "Tokens per calibration window")
        ->check(CLI::Range(2, 1 << 20))
        ->capture_default_str();
    add_enum_option(app, "--sampler", c.sampler, samplers(),
                    "random (reference: seeded random offsets, BOS first) | contiguous | offsets");
    app.add_option("--offsets", c.offsets_path, "Offsets file for --sampler offsets")
        ->check(CLI::ExistingFile);
    app.add_option("--seed", c.seed, "Sampling / rotation seed")->capture_default_str();
    add_enum_option(app, "--fisher-shift", c.fisher_shift, fisher_shifts(),
                    "single (correct) | double (the reference's bug, for parity)");
    app.add_option("--stats", c.stats_path,
                   "Keep the calibration statistics in this HDF5 file (reused when model, data "
                   "and settings match, written there otherwise; without --calib an existing file "
                   "is used as is). Without --stats they stay in memory");
    app.add_flag("--overwrite-stats", c.overwrite_stats,
                 "Replace a --stats file made from another model, data or settings");
}

}  // namespace palu::cli
