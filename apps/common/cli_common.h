// palu apps: the option group shared by every palu-* tool and the error -> exit-code mapping.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "palu/compress/rank_search.h"
#include "palu/core/dtype.h"
#include "palu/pipeline/calibrate.h"
#include "palu/pipeline/eval.h"

namespace palu::cli {

/// Options every stage understands. Tools bind the ones they use.
struct CommonOptions {
    int n_threads = 0;  // 0 = all cores
    std::string log_level = "info";
    bool quiet = false;
    uint64_t seed = 0;
};

/// Registers --threads, --log-level, --quiet (and --seed when `with_seed`).
void add_common(CLI::App& app, CommonOptions& opts, bool with_seed = false);
/// Applies logging settings; returns the effective thread count.
int apply_common(const CommonOptions& opts);

/// Parses argv, runs `body`, and maps palu::Error to its exit code with one `E` line on stderr.
int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

/// Registers the calibration options shared by palu-compress and palu-sweep (--calib,
/// --calib-format, --calib-tokens, --calib-samples, --calib-seqlen, --sampler, --offsets, --seed,
/// --fisher-shift, --stats).
void add_calibration_options(CLI::App& app, pipeline::CalibrationOptions& c);

/// The value names of the enums the tools take (parsed here, once; stages get the enums).
const std::map<std::string, calib::TextFormat>& text_formats();
const std::map<std::string, compress::RankSearchMethod>& rank_search_methods();
const std::map<std::string, DType>& float_dtypes();
const std::map<std::string, calib::SamplerKind>& samplers();
const std::map<std::string, model::LabelShift>& fisher_shifts();

/// An option whose value is one of the names in `names` (copied, so a temporary map is fine):
/// CLI11 refuses other values with the list; the enum is set on parse.
template <class T>
CLI::Option* add_enum_option(CLI::App& app, const std::string& flags, T& value,
                             const std::map<std::string, T>& names, const std::string& help) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : names) keys.push_back(k);
    return app
        .add_option_function<std::string>(
            flags, [&value, names](const std::string& s) { value = names.at(s); }, help)
        ->check(CLI::IsMember(keys));
}

}  // namespace palu::cli
