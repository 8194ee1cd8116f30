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

void add_calibration_options(CLI::App& app, pipeline::CalibrationOptions& c) {
    auto* calib = app.add_option("--calib", c.calib_path,
                                 "Calibration text (wikitext raw, .jsonl with \"text\", or plain)");
    app.add_option("--calib-format", c.calib_format, "auto|wikitext|jsonl|plain")
        ->check(CLI::IsMember({"auto", "wikitext", "jsonl", "plain"}));
    app.add_option("--calib-tokens", c.calib_tokens, "Calibration token ids (raw int32 .i32)")
        ->excludes(calib);
    app.add_option("--calib-samples", c.calib_samples, "Calibration windows")
        ->check(CLI::Range(1, 1 << 20));
    app.add_option("--calib-seqlen", c.calib_seqlen, "Tokens per calibration window")
        ->check(CLI::Range(2, 1 << 20));
    app.add_option("--sampler", c.calib_sampler,
                   "random (reference: seeded random offsets, BOS first) | contiguous | offsets")
        ->check(CLI::IsMember({"random", "contiguous", "offsets"}));
    app.add_option("--offsets", c.calib_offsets, "Offsets file for --sampler offsets")
        ->check(CLI::ExistingFile);
    app.add_option("--seed", c.seed, "Sampling / rotation seed");
    app.add_option("--fisher-shift", c.fisher_shift,
                   "single (correct) | double (the reference's bug, for parity)")
        ->check(CLI::IsMember({"single", "double"}));
    app.add_option("--stats", c.stats_path,
                   "Calibration statistics (HDF5): reused when model, data and settings match, "
                   "written there otherwise; without --calib an existing file is used as is");
}

}  // namespace palu::cli
