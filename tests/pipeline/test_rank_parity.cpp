// palu pipeline tests: calibration collectors against the HF golden statistics, the calibrate stage
// (stats file, reuse, refusal) and the stories260K rank parity with the Palu reference
// (../shared/data/golden/palu-reference-stories260K.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "../model/golden_file.h"
#include "palu/calib/collect.h"
#include "palu/calib/sampling.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/stats_store.h"
#include "palu/model/transformer.h"
#include "palu/pipeline/calibrate.h"
#include "palu/pipeline/rank_search.h"
#include "stories260k_parity.h"
#include "test_data.h"

namespace palu::test {
namespace {

namespace fs = std::filesystem;

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / strfmt("palu_calib_test_%d", static_cast<int>(getpid()));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

// Windows 0..15 of the golden token stream, 256 tokens each, exactly as the golden sums use them.
calib::CalibWindows golden_windows(const std::map<std::string, GoldenTensor>& g) {
    std::vector<int32_t> stream;
    for (double v : g.at("tokens").values) stream.push_back(static_cast<int32_t>(v));
    calib::SamplingParams sp;
    sp.kind = calib::SamplerKind::Contiguous;
    sp.n_samples = 16;
    sp.seqlen = 256;
    return calib::sample_windows(stream, sp);
}

struct MatrixError {
    double rel_fro = 0.0;  // ‖got − ref‖_F / ‖ref‖_F
    double rel_max = 0.0;  // max |got − ref| / max |ref|
};
MatrixError compare(const std::vector<double>& got, const std::vector<double>& ref) {
    double num = 0, den = 0, mx = 0, max_err = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
        mx = std::max(mx, std::abs(ref[i]));
        max_err = std::max(max_err, std::abs(got[i] - ref[i]));
    }
    return {std::sqrt(num / den), max_err / mx};
}

// Gram = Σ x xᵀ over 4096 tokens of the post-RMSNorm hidden state. The engine computes x in f32
// (a few ulp, ~1e-7 relative, off the f64 golden after 5 layers of f32 GEMMs) and the collector
// converts to f64 before multiplying and summing, so no f32 summation error over the 4096 tokens
// adds to that: measured 4e-8..8e-8 (Frobenius and max-entry, relative). Bound: 1e-6 for both.
TEST(CollectGram, MatchesGolden_Data) {
    PALU_REQUIRE_DATA(gpath, "golden/stories260K.hf-transformers.safetensors");
    PALU_REQUIRE_DATA(model_dir, "models/stories260K/hf");
    const auto g = read_golden_safetensors(gpath);
    auto src = formats::open_model(model_dir);
    model::Transformer engine(*src);
    engine.set_threads(1);
    calib::CollectOptions opts;
    opts.progress = false;
    opts.n_batch = 5;  // uneven last batch on purpose
    const calib::GramStats got = calib::collect_gram(engine, golden_windows(g), opts);
    EXPECT_EQ(got.n_tokens, 16 * 256);
    ASSERT_EQ(got.gram.size(), 5u);
    for (size_t l = 0; l < got.gram.size(); ++l) {
        const auto& ref = g.at(strfmt("gram.%zu", l)).values;
        ASSERT_EQ(got.gram[l].size(), ref.size());
        const MatrixError e = compare(got.gram[l], ref);
        std::printf("gram layer %zu: rel fro %.3g, rel max %.3g\n", l, e.rel_fro, e.rel_max);
        EXPECT_LE(e.rel_fro, 1e-6) << "layer " << l;
        EXPECT_LE(e.rel_max, 1e-6) << "layer " << l;
    }
}

// Fisher = Σ over windows 0..15 of (∂L/∂W)², single shift. The engine's per-window gradients are
// checked in tests/model; this checks the collector's accumulation (f64 sum of squares over the
// windows, layer/module bookkeeping). The f32 gradients carry ~1e-6 relative error (mean loss over
// 255 positions, 5 layers of f32 GEMMs backwards), their squares ~2e-6; measured 6e-7..1.7e-6
// (Frobenius) and 3e-7..2.5e-6 (max entry / largest entry). Bound: 2e-5 for both (tighter than the
// engine test's 1e-4 / 1e-3; 8x the largest measured).
TEST(CollectFisher, MatchesGolden_Data) {
    PALU_REQUIRE_DATA(gpath, "golden/stories260K.hf-transformers.safetensors");
    PALU_REQUIRE_DATA(model_dir, "models/stories260K/hf");
    const auto g = read_golden_safetensors(gpath);
    auto src = formats::open_model(model_dir);
    model::Transformer engine(*src);
    engine.set_threads(1);
    calib::CollectOptions opts;
    opts.progress = false;
    const calib::FisherStats f =
        calib::collect_fisher(engine, golden_windows(g), model::LabelShift::Single, opts);
    EXPECT_EQ(f.n_samples, 16);
    EXPECT_EQ(f.n_out, 32);
    EXPECT_EQ(f.d, 64);
    double ref_loss = 0;
    for (int w = 0; w < 16; ++w) ref_loss += g.at("nll_windows").values[static_cast<size_t>(w)];
    EXPECT_NEAR(f.mean_loss, ref_loss / 16, 1e-5);
    for (size_t l = 0; l < 5; ++l) {
        for (int which = 0; which < 2; ++which) {
            const auto& ref =
                g.at(strfmt("%s.%zu", which == 0 ? "fisher_k" : "fisher_v", l)).values;
            const auto& got = which == 0 ? f.k[l] : f.v[l];
            ASSERT_EQ(got.size(), ref.size());
            const MatrixError e = compare(got, ref);
            std::printf("fisher_%c layer %zu: rel fro %.3g, rel max %.3g\n", which == 0 ? 'k' : 'v',
                        l, e.rel_fro, e.rel_max);
            EXPECT_LE(e.rel_fro, 2e-5) << which << " layer " << l;
            EXPECT_LE(e.rel_max, 2e-5) << which << " layer " << l;
        }
    }
}

// The reference's setting: 256 windows [BOS] + tokens[o : o+255] at the offsets of the golden
// offsets file, double label shift; ratio 0.5, rounding block 4. Ranks must match EXACTLY.
TEST(RankParity, Stories260KReference_Data) {
    PALU_REQUIRE_DATA(model_dir, "models/stories260K/hf");
    PALU_REQUIRE_DATA(tokens, "golden/stories260K.tinystories.i32");
    PALU_REQUIRE_DATA(offsets, "golden/stories260K.calib256x256.offsets.txt");
    TempDir tmp;
    pipeline::CalibrateParams cp;
    cp.model_path = model_dir.string();
    cp.calib.tokens_path = tokens.string();
    cp.calib.sampler = calib::SamplerKind::Offsets;
    cp.calib.offsets_path = offsets.string();
    cp.calib.n_samples = 256;
    cp.calib.seqlen = 256;
    cp.calib.fisher_shift = model::LabelShift::Double;
    cp.calib.stats_path = (tmp.path / "stats.h5").string();
    cp.run.progress = false;
    cp.run.n_threads =
        1;  // the fastest on a loaded 2-core machine (spinning threads oversubscribe it)
    const pipeline::CalibrateResult r = pipeline::run_calibrate(cp);
    EXPECT_FALSE(r.reused);
    EXPECT_EQ(r.n_samples, 256);
    EXPECT_EQ(r.n_tokens, 256 * 256);

    const auto stats = formats::StatsStore::open(cp.calib.stats_path);
    for (int l = 0; l < 5; ++l) {
        EXPECT_TRUE(stats.has(strfmt("gram/layer_%d", l)));
        EXPECT_TRUE(stats.has(strfmt("fisher/k/layer_%d", l)));
        EXPECT_TRUE(stats.has(strfmt("fisher/v/layer_%d", l)));
    }
    EXPECT_EQ(stats.read("fisher/n_samples").values.at(0), 256.0);
    const compress::KvShape shape{5, 4, 8};
    const pipeline::CalibrationStats loaded = pipeline::load_stats(
        cp.calib.stats_path, "", formats::open_model(model_dir)->config(), /*with_gram=*/false);
    ASSERT_TRUE(loaded.fisher.has_value());
    const compress::FisherScalars fisher = pipeline::fisher_scalars(*loaded.fisher, shape, 4);
    for (int l = 0; l < 5; ++l)
        std::printf("fisher layer %d: k %.9g v %.9g\n", l, fisher.k[static_cast<size_t>(l)],
                    fisher.v[static_cast<size_t>(l)]);
    expect_stories260k_reference_ranks(fisher);

    // The same through the stage driver (ranks.json written).
    pipeline::RankSearchParams rp;
    rp.stats_path = cp.calib.stats_path;
    rp.model_path = cp.model_path;
    rp.rank.ratio = 0.5;
    rp.rank.round_to = 4;
    rp.rank.group_size = 2;
    rp.out_path = (tmp.path / "ranks.json").string();
    const auto rs = pipeline::run_rank_search(rp);
    EXPECT_EQ(rs.plan.k_ranks, (Ranks(5, {4, 4})));
    EXPECT_EQ(rs.plan.v_ranks, (Ranks{{8, 8}, {12, 12}, {12, 12}, {12, 12}, {12, 12}}));
    EXPECT_NEAR(rs.plan.achieved_ratio(), 152.0 / 320.0, 1e-12);
    EXPECT_TRUE(fs::exists(rp.out_path));

    // Same inputs again: reused, not recomputed.
    EXPECT_TRUE(pipeline::run_calibrate(cp).reused);
    // Other settings: refused, file untouched.
    pipeline::CalibrateParams other = cp;
    other.calib.fisher_shift = model::LabelShift::Single;
    EXPECT_THROW(pipeline::run_calibrate(other), UsageError);
    EXPECT_TRUE(pipeline::run_calibrate(cp).reused);
}

}  // namespace
}  // namespace palu::test
