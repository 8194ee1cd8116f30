// palu pipeline tests: palu-sweep (issue #4 tables) on stories260K with a small grid.
//  * the ratio-1.0 rows with f32 latents reproduce the original perplexity (full rank is exact up
//    to f32 rounding), and f16 latents stay close;
//  * the KV bytes per token from the formula equal the engine's measured cache for every row;
//  * one row per grid point (+ the original), also in the JSON lines and markdown outputs;
//  * sanity: fisher_uniform with f16 latents is not better at ratio 0.3 than at 0.7;
//  * the grid lists reject bad items with one message naming the option and the item.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/pipeline/sweep.h"
#include "test_data.h"

namespace palu::test {
namespace {

namespace fs = std::filesystem;
using pipeline::SweepRow;

const SweepRow* find_row(const std::vector<SweepRow>& rows, const std::string& method, double ratio,
                         const std::string& latents) {
    for (const auto& r : rows)
        if (!r.original && r.method == method && r.target_ratio == ratio &&
            r.latent.label() == latents)
            return &r;
    return nullptr;
}

TEST(Sweep, SmallGridOnStories260K_Data) {
    PALU_REQUIRE_DATA(model, "models/stories260K/hf");
    PALU_REQUIRE_DATA(tokens, "golden/stories260K.tinystories.i32");
    const fs::path dir =
        fs::temp_directory_path() / strfmt("palu_sweep_%d", static_cast<int>(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);

    pipeline::SweepParams p;
    p.model_path = model.string();
    p.calib.tokens_path = tokens.string();
    p.calib.n_samples = 32;
    p.calib.seqlen = 256;
    p.eval.tokens_path = tokens.string();
    p.eval.seqlen = 256;
    p.eval.max_windows = 4;
    p.methods = {compress::RankSearchMethod::Uniform, compress::RankSearchMethod::FisherUniform};
    p.group_sizes = {2};
    p.ratios = {1.0, 0.7, 0.3};
    p.latents = {{32, false}, {16, false}, {4, false}, {3, true}};
    p.out_table = (dir / "table.md").string();
    p.out_json = (dir / "rows.jsonl").string();
    p.run.n_threads = 1;
    p.run.progress = false;
    const pipeline::SweepResult res = pipeline::run_sweep(p);

    ASSERT_EQ(res.rows.size(), 1u + 2 * 1 * 3 * 4);
    ASSERT_TRUE(res.rows[0].original);
    EXPECT_EQ(res.rows[0].ppl, res.ppl_original);
    EXPECT_EQ(res.n_windows, 4);
    for (const auto& r : res.rows) {
        if (r.original) continue;
        EXPECT_EQ(r.kv_bytes_formula, r.kv_bytes_measured)
            << r.method << " ratio " << r.target_ratio << " latents " << r.latent.label();
        EXPECT_GE(r.compression_s, 0.0);
        EXPECT_TRUE(std::isfinite(r.ppl));
    }
    for (const char* m : {"uniform", "fisher_uniform"}) {
        const SweepRow* full = find_row(res.rows, m, 1.0, "32");
        ASSERT_NE(full, nullptr) << m;
        EXPECT_EQ(full->achieved_ratio, 1.0);
        EXPECT_NEAR(full->ppl, res.ppl_original, 1e-5 * res.ppl_original) << m;
        const SweepRow* full16 = find_row(res.rows, m, 1.0, "16");
        ASSERT_NE(full16, nullptr);
        EXPECT_NEAR(full16->ppl, res.ppl_original, 1e-3 * res.ppl_original) << m;
        EXPECT_EQ(full16->kv_bytes_formula, full16->kv_bytes_original);
    }
    EXPECT_EQ(find_row(res.rows, "fisher_uniform", 1.0, "16")->same_plan_as, "uniform");
    EXPECT_EQ(find_row(res.rows, "fisher_uniform", 0.3, "16")->same_plan_as, "");
    const SweepRow* r07 = find_row(res.rows, "fisher_uniform", 0.7, "16");
    const SweepRow* r03 = find_row(res.rows, "fisher_uniform", 0.3, "16");
    ASSERT_TRUE(r07 && r03);
    EXPECT_GE(r03->ppl, r07->ppl);
    EXPECT_LT(r03->kv_bytes_formula, r07->kv_bytes_formula);

    std::ifstream jl(p.out_json);
    std::string line;
    size_t n_lines = 0;
    while (std::getline(jl, line)) {
        const auto j = nlohmann::json::parse(line);
        if (j["method"] != "original") {
            EXPECT_EQ(j["kv_bytes_per_token"], j["kv_bytes_per_token_measured"]) << line;
        }
        ++n_lines;
    }
    EXPECT_EQ(n_lines, res.rows.size());
    std::ifstream md(p.out_table);
    size_t n_table = 0;
    while (std::getline(md, line)) n_table += line.rfind("| ", 0) == 0 ? 1 : 0;
    EXPECT_EQ(n_table, res.rows.size() + 1);  // + the header line
    fs::remove_all(dir);
}

TEST(Sweep, GridListsRejectBadItems) {
    auto message = [](auto&& f) {
        try {
            f();
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string("(no UsageError)");
    };
    EXPECT_EQ(pipeline::parse_ratio_list("1.0, 0.5", "--ratios"), (std::vector<double>{1.0, 0.5}));
    EXPECT_THAT(
        message([] { pipeline::parse_ratio_list("1.0,1.5", "--ratios"); }),
        ::testing::HasSubstr("sweep: --ratios: item '1.5': expected a kept ratio in (0, 1]"));
    EXPECT_THAT(message([] { pipeline::parse_ratio_list("1.0,,0.5", "--ratios"); }),
                ::testing::HasSubstr("sweep: --ratios '1.0,,0.5': empty item"));
    EXPECT_THAT(message([] { pipeline::parse_ratio_list("0.5x", "--ratios"); }),
                ::testing::HasSubstr("item '0.5x'"));
    EXPECT_THAT(message([] { pipeline::parse_group_size_list("1,0", "--group-sizes"); }),
                ::testing::HasSubstr("sweep: --group-sizes: item '0'"));
    EXPECT_THAT(message([] { pipeline::parse_method_list("uniform,fishr", "--methods"); }),
                ::testing::HasSubstr("sweep: --methods: item 'fishr': expected uniform, fisher or "
                                     "fisher_uniform"));
    EXPECT_THAT(message([] { pipeline::parse_latent_list("16,16h", "--latents"); }),
                ::testing::HasSubstr("sweep: --latents: item '16h'"));
    EXPECT_THAT(message([] { pipeline::parse_latent_list("4,3h,4", "--latents"); }),
                ::testing::HasSubstr("sweep: --latents: '4' given twice"));
    const auto lat = pipeline::parse_latent_list("16,4,3,3h", "--latents");
    ASSERT_EQ(lat.size(), 4u);
    EXPECT_EQ(lat[3].bits, 3);
    EXPECT_TRUE(lat[3].hadamard);
    EXPECT_EQ(lat[3].label(), "3h");
}

}  // namespace
}  // namespace palu::test
