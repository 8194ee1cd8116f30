// palu-rank-search: per-group K/V ranks for a kept ratio, from the Fisher statistics of
// palu-calibrate (Palu's fisher_uniform / fisher allocation) or uniform. Writes ranks.json.
#include <cstdio>

#include "cli_common.h"
#include "palu/core/error.h"
#include "palu/pipeline/rank_search.h"

int main(int argc, char** argv) {
    CLI::App app{
        "palu-rank-search: allocates the low-rank budget (ratio of K/V latent dims kept) over "
        "every head group of every k_proj/v_proj. fisher_uniform (Palu's default) splits one "
        "budget over all modules in proportion to their mean RMS gradient; fisher does it per "
        "group; uniform gives every group the same rank. Ranks are rounded to multiples of "
        "--round-to. The achieved ratio is always reported.",
        "palu-rank-search"};
    palu::cli::CommonOptions common;
    palu::pipeline::RankSearchParams p;
    app.add_option("--stats,-s", p.stats_path,
                   "Stats file of palu-calibrate (not read for uniform)");
    app.add_option("--model,-m", p.model_path, "The calibrated model")->required();
    auto* ratio =
        app.add_option("--ratio,-r", p.rank.ratio, "Kept fraction of K/V latent dims, in (0, 1]");
    app.add_option("--kv-bytes", p.rank.kv_bytes,
                   "Target instead of --ratio: KV-cache bytes per token (all layers, K and V) in "
                   "the --latent-bits format incl. scales and zeros")
        ->excludes(ratio);
    app.add_option("--latent-bits", p.latent_bits, "Latent format for --kv-bytes: 16|8|4|3|2")
        ->check(CLI::IsMember({2, 3, 4, 8, 16}));
    p.rank.group_size = 4;
    app.add_option("--group-size,-g", p.rank.group_size,
                   "KV heads per group (divides the KV heads)")
        ->capture_default_str();
    palu::cli::add_enum_option(app, "--method", p.rank.method, palu::cli::rank_search_methods(),
                               "fisher_uniform | fisher | uniform");
    app.add_option("--round-to", p.rank.round_to, "Rank multiple (0: min(32, group width / 4))");
    app.add_option("--out,-o", p.out_path, "ranks.json (stdout when omitted)");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        palu::cli::apply_common(common);
        if (app.count("--ratio") == 0 && app.count("--kv-bytes") == 0)
            throw palu::UsageError("rank: give the target: --ratio R or --kv-bytes N");
        const auto r = palu::pipeline::run_rank_search(p);
        if (p.out_path.empty()) std::printf("%s\n", r.to_json().dump(2).c_str());
        return 0;
    });
}
