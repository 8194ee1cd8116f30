// palu compress tests: rank search against allocations derived by hand from the reference's
// algorithm (palu-reference.md §4), budget, rounding, determinism, JSON. The stories260K rank
// parity with the reference, on the Fisher scalars calibration produces, is in
// tests/pipeline/test_rank_parity.cpp.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "palu/compress/rank_search.h"
#include "palu/core/error.h"

using namespace palu;
using namespace palu::compress;
using Ranks = std::vector<std::vector<int64_t>>;

TEST(RankSearchAllocate, ExactProportions_NoRemainder) {
    // target 20 over f = 1,2,3,4 (Σ 10): r_float = 2,4,6,8 exactly.
    EXPECT_EQ(allocate_proportional({1, 2, 3, 4}, 10, 20.0), (std::vector<int64_t>{2, 4, 6, 8}));
}

TEST(RankSearchAllocate, RemainderGoesToSmallestFractionFirst) {
    // target 48·0.375 = 18 over f = 3,5,9 (Σ 17): r_float = 3.18, 5.29, 9.53 → floors 3,5,9
    // (Σ 17); the order is ascending fractional part, so the +1 goes to item 0 (the reference's
    // quirk: not the largest remainder).
    EXPECT_EQ(allocate_proportional({3, 5, 9}, 16, 48 * 0.375), (std::vector<int64_t>{4, 5, 9}));
}

TEST(RankSearchAllocate, FractionalLeftover_WholePassOvershoots) {
    // target 19.2 over four equal items: floors 4 (Σ 16), leftover 3.2 never hits exactly 0, so
    // the pass gives every item +1: Σ 20 > target (reference behaviour).
    EXPECT_EQ(allocate_proportional({1, 1, 1, 1}, 16, 19.2), (std::vector<int64_t>{5, 5, 5, 5}));
}

TEST(RankSearchAllocate, CappedItemsAreSkippedInRoundRobin) {
    // target 12, f = 100,1,1 (Σ 102): r_float = 11.76 → capped 8, 0.12 → 0, 0.12 → 0.
    // Order by fraction: item1, item2 (tie kept stable), item0 (3.76). Leftover 4: two passes
    // over items 1 and 2.
    EXPECT_EQ(allocate_proportional({100, 1, 1}, 8, 12.0), (std::vector<int64_t>{8, 2, 2}));
}

TEST(RankSearch, FisherUniform_HandDerived) {
    // 2 layers, 4 KV heads × d_head 16 (D = 64), s = 2 (2 groups of 32), ρ = 0.5: target 128.
    // Items k0,v0,k1,v1 with f = 1,3,2,4: r_float = 12.8, 38.4, 25.6, 51.2 → floors 12,38,25,51
    // (Σ 126); ascending fractions v1(.2), v0(.4), k1(.6), k0(.8): +1 to v1 and v0 → 12,39,25,52.
    // Split //2 → 6, 19, 12, 26; round to B = 8 (default for width 32), half-even:
    // 0.75→1, 2.375→2, 1.5→2, 3.25→3 → 8, 16, 16, 24.
    KvShape shape{2, 4, 16};
    FisherScalars f;
    f.k = {1, 2};
    f.v = {3, 4};
    RankSearchParams p;
    p.method = RankSearchMethod::FisherUniform;
    p.group_size = 2;
    p.ratio = 0.5;
    RankPlan plan = search_ranks(shape, &f, p);
    EXPECT_EQ(plan.rank_multiple, 8);
    EXPECT_EQ(plan.k_ranks, (Ranks{{8, 8}, {16, 16}}));
    EXPECT_EQ(plan.v_ranks, (Ranks{{16, 16}, {24, 24}}));
    EXPECT_EQ(plan.n_kept(), 128);
    EXPECT_EQ(plan.n_full(), 256);
    EXPECT_DOUBLE_EQ(plan.achieved_ratio(), 0.5);
}

TEST(RankSearch, FisherGroupLevel_HandDerived) {
    // Same shape, group-level items (k0g0,k0g1,v0g0,v0g1,k1g0,k1g1,v1g0,v1g1), f = 1,1,2,6,1,3,2,4
    // (Σ 20), cap 32, target 128: r_float = 6.4·f → floors 6,6,12,32(cap),6,19,12,25 (Σ 118).
    // Ascending fractions: k1g1(.2), k0g0, k0g1, k1g0 (.4), v1g1(.6), v0g0, v1g0(.8), v0g1(cap).
    // Leftover 10: pass 1 gives +1 to the seven uncapped items, pass 2 to k1g1, k0g0, k0g1.
    // → 8,8,13,32,7,21,13,26; rounded to 8: 8,8,16,32,8,24,16,24.
    KvShape shape{2, 4, 16};
    FisherScalars f;
    f.k = {1, 1};
    f.v = {1, 1};
    f.k_groups = {{1, 1}, {1, 3}};
    f.v_groups = {{2, 6}, {2, 4}};
    RankSearchParams p;
    p.method = RankSearchMethod::Fisher;
    p.group_size = 2;
    p.ratio = 0.5;
    RankPlan plan = search_ranks(shape, &f, p);
    EXPECT_EQ(plan.k_ranks, (Ranks{{8, 8}, {8, 24}}));
    EXPECT_EQ(plan.v_ranks, (Ranks{{16, 32}, {16, 24}}));
}

TEST(RankSearch, Uniform_RoundsHalfToEven) {
    KvShape shape{3, 4, 16};
    RankSearchParams p;
    p.method = RankSearchMethod::Uniform;
    p.group_size = 2;  // width 32, B = 8
    for (auto [ratio, expect] : std::vector<std::pair<double, int64_t>>{{0.3, 8},
                                                                        {0.7, 24},
                                                                        {0.625, 16} /* 2.5 → 2 */,
                                                                        {0.875, 32} /* 3.5 → 4 */,
                                                                        {0.01, 8} /* max(1, 0) */,
                                                                        {1.0, 32}}) {
        p.ratio = ratio;
        RankPlan plan = search_ranks(shape, nullptr, p);
        for (const auto& l : plan.k_ranks)
            for (int64_t r : l) EXPECT_EQ(r, expect) << "ratio " << ratio;
        for (const auto& l : plan.v_ranks)
            for (int64_t r : l) EXPECT_EQ(r, expect) << "ratio " << ratio;
    }
    // The reference's example: s = 4, d_head 128, ρ = 0.7 → 358.4 → 352 (B = 32).
    p.group_size = 4;
    p.ratio = 0.7;
    RankPlan big = search_ranks(KvShape{1, 32, 128}, nullptr, p);
    EXPECT_EQ(big.rank_multiple, 32);
    EXPECT_EQ(big.k_ranks[0], std::vector<int64_t>(8, 352));
}

TEST(RankSearch, RoundingMultiple_DefaultAndOverride) {
    EXPECT_EQ(default_rank_multiple(512), 32);
    EXPECT_EQ(default_rank_multiple(128), 32);
    EXPECT_EQ(default_rank_multiple(64), 16);
    EXPECT_EQ(default_rank_multiple(192), 32);
    EXPECT_EQ(default_rank_multiple(32), 8);
    EXPECT_EQ(default_rank_multiple(16), 4);
    EXPECT_EQ(default_rank_multiple(96), 16);
    EXPECT_EQ(default_rank_multiple(3), 1);
    EXPECT_EQ(round_rank(45, 32, 48), 32);
    EXPECT_EQ(round_rank(48, 32, 48), 48);  // 1.5 → 2 → 64, capped at the width
    EXPECT_EQ(round_rank(0, 4, 16), 4);
}

TEST(RankSearch, MeetsBudgetAndRespectsRounding_ManyInputs) {
    // Random Fisher scalars: every rank is a multiple of B within [B, width], and the kept dims
    // before rounding equal the target whenever the target is integral.
    KvShape shape{6, 8, 32};
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        FisherScalars f;
        uint64_t x = seed * 2654435761u;
        auto next = [&] {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            return 0.1 + static_cast<double>(x >> 40) / (1ull << 24);
        };
        for (int l = 0; l < 6; ++l) {
            f.k.push_back(next());
            f.v.push_back(next() * 3);
        }
        std::vector<double> items;
        for (int l = 0; l < 6; ++l) {
            items.push_back(f.k[l]);
            items.push_back(f.v[l]);
        }
        const auto alloc = allocate_proportional(items, 256, 12 * 256 * 0.5);
        int64_t sum = 0;
        for (int64_t r : alloc) {
            EXPECT_LE(r, 256);
            sum += r;
        }
        EXPECT_EQ(sum, 12 * 128);
        for (int64_t s : {1, 2, 4, 8}) {
            RankSearchParams p;
            p.group_size = s;
            p.ratio = 0.5;
            RankPlan a = search_ranks(shape, &f, p);
            RankPlan b = search_ranks(shape, &f, p);
            EXPECT_EQ(a.k_ranks, b.k_ranks);
            EXPECT_EQ(a.v_ranks, b.v_ranks);
            for (const auto* rk : {&a.k_ranks, &a.v_ranks})
                for (const auto& l : *rk)
                    for (int64_t r : l) {
                        EXPECT_EQ(r % a.rank_multiple, 0);
                        EXPECT_GE(r, a.rank_multiple);
                        EXPECT_LE(r, a.group_width());
                    }
            // Rounding moves each group by at most B/2 (plus the split's floor, < 1 per group).
            const double slack = (a.rank_multiple / 2.0 + 1.0) * 2 * 6 * a.n_groups();
            EXPECT_NEAR(static_cast<double>(a.n_kept()), 0.5 * a.n_full(), slack);
        }
    }
}

TEST(RankSearch, BytesTarget_ConvertsWithLatentFormat) {
    KvShape shape{2, 4, 16};
    RankSearchParams p;
    p.method = RankSearchMethod::Uniform;
    p.group_size = 2;
    p.kv_bytes_per_token = 256;  // f16 latents: 128 dims of 512 bytes total
    RankPlan plan = search_ranks(shape, nullptr, p);
    EXPECT_DOUBLE_EQ(plan.target_ratio, 0.5);
    EXPECT_EQ(kv_bytes_per_token(plan, p.quant), 256);
    EXPECT_EQ(original_kv_bytes_per_token(shape), 512);
    // 4-bit asymmetric, one (scale, zero) per token per latent group: 8 groups × 4 bytes = 32
    // bytes of parameters; (96 − 32)·8/4 = 128 dims.
    p.quant.bits = 4;
    p.kv_bytes_per_token = 96;
    plan = search_ranks(shape, nullptr, p);
    EXPECT_DOUBLE_EQ(plan.target_ratio, 0.5);
    EXPECT_EQ(kv_bytes_per_token(plan, p.quant), 96);
    p.kv_bytes_per_token = 20;  // below the scale overhead
    EXPECT_THROW(search_ranks(shape, nullptr, p), UsageError);
}

TEST(RankSearch, BadInput_TypedErrors) {
    KvShape shape{2, 4, 16};
    FisherScalars f;
    f.k = {1, 2};
    f.v = {3, 4};
    RankSearchParams p;
    p.ratio = 1.5;
    try {
        search_ranks(shape, &f, p);
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "rank: kept ratio outside (0,1]: expected 0 < ratio <= 1, got 1.5");
    }
    p.ratio = 0.5;
    p.group_size = 3;
    EXPECT_THROW(search_ranks(shape, &f, p), UsageError);
    p.group_size = 2;
    EXPECT_THROW(search_ranks(shape, nullptr, p), UsageError);
    f.v = {3};
    EXPECT_THROW(search_ranks(shape, &f, p), ShapeError);
    f.v = {3, std::nan("")};
    EXPECT_THROW(search_ranks(shape, &f, p), NumericalError);
    f.v = {0, 0};
    f.k = {0, 0};
    EXPECT_THROW(search_ranks(shape, &f, p), NumericalError);
    p.method = RankSearchMethod::Fisher;
    f.k = {1, 1};
    f.v = {1, 1};
    EXPECT_THROW(search_ranks(shape, &f, p), ShapeError);  // no group-level scalars
}

TEST(RankSearch, Json_RoundTripAndValidation) {
    KvShape shape{2, 4, 16};
    FisherScalars f;
    f.k = {1, 2};
    f.v = {3, 4};
    RankSearchParams p;
    p.group_size = 2;
    p.ratio = 0.5;
    const RankPlan plan = search_ranks(shape, &f, p);
    const nlohmann::json j = rank_plan_to_json(plan);
    EXPECT_EQ(j.at("method"), "fisher_uniform");
    EXPECT_EQ(j.at("achieved_ratio"), 0.5);
    const RankPlan back = rank_plan_from_json(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(back.k_ranks, plan.k_ranks);
    EXPECT_EQ(back.v_ranks, plan.v_ranks);
    EXPECT_EQ(back.rank_multiple, plan.rank_multiple);
    EXPECT_EQ(rank_plan_to_json(back).dump(), j.dump());
    const nlohmann::json hw = head_wise_ranks_json(plan);
    EXPECT_EQ(hw.at("model.layers.1.self_attn.v_proj"), (std::vector<int64_t>{24, 24}));

    nlohmann::json bad = j;
    bad["format_version"] = 7;
    EXPECT_THROW(rank_plan_from_json(bad), FormatError);
    bad = j;
    bad["layers"][1]["v"] = {24};
    try {
        rank_plan_from_json(bad);
        FAIL();
    } catch (const FormatError& e) {
        EXPECT_STREQ(e.what(), "rank: ranks.json: layers[1].v: expected 2 group ranks, got 1");
    }
    bad = j;
    bad.erase("method");
    EXPECT_THROW(rank_plan_from_json(bad), FormatError);
}

TEST(RankSearchFisher, ReduceRmsGradient_ModuleAndGroupMeans) {
    // rows 0-1 (group 0) hold 1 and 3, rows 2-3 (group 1) hold 5 and 7: means 2 and 6, module 4.
    RowMatrixXf rms(4, 3);
    rms << 1, 1, 1, 3, 3, 3, 5, 5, 5, 7, 7, 7;
    FisherReduction f = reduce_rms_gradient(rms, 2, "layer 0 k_proj");
    EXPECT_DOUBLE_EQ(f.module_mean, 4.0);
    EXPECT_EQ(f.group_means, (std::vector<double>{2.0, 6.0}));
    EXPECT_EQ(reduce_rms_gradient(rms, 4, "l").group_means, (std::vector<double>{4.0}));
    EXPECT_THROW(reduce_rms_gradient(rms, 3, "l"), ShapeError);
    rms(1, 1) = -1.0f;
    EXPECT_THROW(reduce_rms_gradient(rms, 2, "l"), NumericalError);
}

TEST(RankSearch, Json_RejectsNonIntegerAndHugeValues) {
    KvShape shape{1, 2, 4};
    RankSearchParams p;
    p.method = RankSearchMethod::Uniform;
    p.group_size = 1;
    p.ratio = 0.5;
    const nlohmann::json j = rank_plan_to_json(search_ranks(shape, nullptr, p));
    nlohmann::json bad = j;
    bad["d_head"] = 1e300;
    EXPECT_THROW(rank_plan_from_json(bad), FormatError);
    bad = j;
    bad["d_head"] = int64_t{1} << 40;
    EXPECT_THROW(rank_plan_from_json(bad), FormatError);
    bad = j;
    bad["layers"][0]["k"] = {2.5, 2};
    EXPECT_THROW(rank_plan_from_json(bad), FormatError);
    bad = j;
    bad["layers"][0] = 3;
    EXPECT_THROW(rank_plan_from_json(bad), FormatError);
    EXPECT_THROW(rank_plan_from_json(nlohmann::json::array()), FormatError);
}
