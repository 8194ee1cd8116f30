// palu pipeline tests: the stories260K rank-parity check against the reference implementation
// (../shared/data/golden/palu-reference-stories260K.md), called by
// RankParity.Stories260KReference_Data with the Fisher scalars that calibration produces.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "palu/compress/rank_search.h"

namespace palu::test {

using Ranks = std::vector<std::vector<int64_t>>;

/// Checks that `fisher` (module-level Fisher scalars of stories260K's 5 k_proj / v_proj, from the
/// reference's calibration: double label shift, 256×256 windows) reproduces the reference's ranks
/// at ρ = 0.5 with rounding block 4: fisher_uniform s=4 → K 8×5, V 16,28,24,28,24; s=2 → K 4/4 ×5,
/// V 8/8, 12/12 ×4; uniform s=2 → 8/8 everywhere.
inline void expect_stories260k_reference_ranks(const compress::FisherScalars& fisher) {
    const compress::KvShape shape{5, 4, 8};
    compress::RankSearchParams p;
    p.ratio = 0.5;
    p.rank_multiple = 4;
    p.method = compress::RankSearchMethod::FisherUniform;
    p.group_size = 4;
    compress::RankPlan g4 = compress::search_ranks(shape, &fisher, p);
    EXPECT_EQ(g4.k_ranks, (Ranks{{8}, {8}, {8}, {8}, {8}}));
    EXPECT_EQ(g4.v_ranks, (Ranks{{16}, {28}, {24}, {28}, {24}}));
    EXPECT_EQ(g4.n_kept(), 160);
    p.group_size = 2;
    compress::RankPlan g2 = compress::search_ranks(shape, &fisher, p);
    EXPECT_EQ(g2.k_ranks, (Ranks{{4, 4}, {4, 4}, {4, 4}, {4, 4}, {4, 4}}));
    EXPECT_EQ(g2.v_ranks, (Ranks{{8, 8}, {12, 12}, {12, 12}, {12, 12}, {12, 12}}));
    EXPECT_EQ(g2.n_kept(), 152);
    p.method = compress::RankSearchMethod::Uniform;
    compress::RankPlan u2 = compress::search_ranks(shape, &fisher, p);
    EXPECT_EQ(u2.k_ranks, (Ranks(5, {8, 8})));
    EXPECT_EQ(u2.v_ranks, (Ranks(5, {8, 8})));
}

}  // namespace palu::test
