// palu calibration tests: Gram / Fisher collectors on a synthetic in-memory model (no data files).
// The HF golden comparisons on stories260K are in tests/pipeline/test_rank_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "../model/synthetic_model.h"
#include "palu/calib/collect.h"
#include "palu/calib/sampling.h"
#include "palu/core/error.h"

namespace palu::calib {
namespace {

struct Fixture {
    test::MemoryWeightSource src;
    CalibWindows windows;
    Fixture() {
        test::SynthSpec spec;
        spec.n_layers = 3;
        src = test::make_synthetic_model(spec);
        SamplingParams sp{SamplerKind::Random, 5, 12, 7, 1, {}};
        windows = sample_windows(test::random_tokens(200, spec.n_vocab, 3), sp);
    }
};

CollectOptions quiet(int64_t n_batch) {
    CollectOptions o;
    o.n_batch = n_batch;
    o.progress = false;
    return o;
}

// Layer 0's k/v input is RMSNorm(embedding) ⊙ w_ln: its Gram can be formed independently of the
// engine, in double. f32 activations: relative error ~1e-7; bound 1e-5.
TEST(CollectGramSynthetic, Layer0MatchesDirectSum) {
    Fixture f;
    model::Transformer engine(f.src);
    engine.set_threads(1);
    const GramStats g = collect_gram(engine, f.windows, quiet(2));
    const int64_t d = f.src.cfg.d_model;
    ASSERT_EQ(g.gram.size(), 3u);
    EXPECT_EQ(g.d, d);
    EXPECT_EQ(g.n_tokens, 5 * 12);
    const Tensor emb = f.src.load_f32("model.embed_tokens.weight");
    const Tensor w = f.src.load_f32("model.layers.0.input_layernorm.weight");
    std::vector<double> ref(static_cast<size_t>(d * d), 0.0), x(static_cast<size_t>(d));
    for (int32_t tok : f.windows.tokens) {
        double ss = 0;
        for (int64_t i = 0; i < d; ++i)
            ss += std::pow(static_cast<double>(emb.data()[tok * d + i]), 2);
        const double r = 1.0 / std::sqrt(ss / static_cast<double>(d) + f.src.cfg.rms_norm_eps);
        for (int64_t i = 0; i < d; ++i)
            x[static_cast<size_t>(i)] = emb.data()[tok * d + i] * r * w.data()[i];
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j < d; ++j)
                ref[static_cast<size_t>(i * d + j)] +=
                    x[static_cast<size_t>(i)] * x[static_cast<size_t>(j)];
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += std::pow(g.gram[0][i] - ref[i], 2);
        den += ref[i] * ref[i];
    }
    EXPECT_LE(std::sqrt(num / den), 1e-5);
    // Exactly symmetric, every layer; the observer is removed afterwards.
    for (const auto& m : g.gram)
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j < i; ++j)
                ASSERT_EQ(m[static_cast<size_t>(i * d + j)], m[static_cast<size_t>(j * d + i)]);
    auto cache = engine.make_cache(1, 4);
    engine.forward(f.windows.window(0), 1, 4, *cache,
                   true);  // a leftover observer would write into freed sums (ASan)
}

// Batching windows into one forward must not change the sums (beyond f32 GEMM blocking noise).
// A relative change δ of the activations moves G_ij = Σ x_i x_j by about 2δ·√(G_ii G_jj) (Cauchy-
// Schwarz), whatever G_ij itself is, so entries are compared on that scale: f32 hidden states of
// layers 1-2 differ by ~1e-7 between the batchings, measured ≤ 3.6e-7 (layer 0: exact). Bound 1e-5.
// (A bound relative to |G_ij| fails for entries near 0 in rows of large norm.)
TEST(CollectGramSynthetic, BatchInvariant) {
    Fixture f;
    model::Transformer engine(f.src);
    engine.set_threads(1);
    const GramStats a = collect_gram(engine, f.windows, quiet(1));
    const GramStats b = collect_gram(engine, f.windows, quiet(3));  // batches of 3 + 2
    const auto d = static_cast<size_t>(a.d);
    for (size_t l = 0; l < a.gram.size(); ++l)
        for (size_t i = 0; i < d; ++i)
            for (size_t j = 0; j < d; ++j) {
                const double scale = std::sqrt(a.gram[l][i * d + i] * a.gram[l][j * d + j]);
                ASSERT_NEAR(a.gram[l][i * d + j], b.gram[l][i * d + j], 1e-5 * scale)
                    << "layer " << l << " entry (" << i << ", " << j << ")";
            }
}

// The collector's sums are Σ_windows g² of the engine's per-window gradients, for both shifts.
TEST(CollectFisherSynthetic, SumsSquaredGradients) {
    Fixture f;
    model::Transformer engine(f.src);
    engine.set_threads(1);
    for (auto shift : {model::LabelShift::Single, model::LabelShift::Double}) {
        const FisherStats fs = collect_fisher(engine, f.windows, shift, quiet(1));
        EXPECT_EQ(fs.n_samples, 5);
        EXPECT_EQ(fs.n_out, f.src.cfg.n_kv_heads * f.src.cfg.d_head);
        EXPECT_EQ(fs.d, f.src.cfg.d_model);
        std::vector<std::vector<double>> k(3), v(3);
        double loss = 0;
        for (int64_t i = 0; i < 5; ++i) {
            const auto gr = engine.kv_gradients(f.windows.window(i), 12, shift);
            loss += gr.loss;
            for (size_t l = 0; l < 3; ++l) {
                k[l].resize(static_cast<size_t>(gr.d_wk[l].numel()));
                v[l].resize(static_cast<size_t>(gr.d_wv[l].numel()));
                for (size_t j = 0; j < k[l].size(); ++j)
                    k[l][j] += std::pow(static_cast<double>(gr.d_wk[l].data()[j]), 2);
                for (size_t j = 0; j < v[l].size(); ++j)
                    v[l][j] += std::pow(static_cast<double>(gr.d_wv[l].data()[j]), 2);
            }
        }
        EXPECT_NEAR(fs.mean_loss, loss / 5, 1e-12);
        for (size_t l = 0; l < 3; ++l) {
            ASSERT_EQ(fs.k[l].size(), k[l].size());
            for (size_t j = 0; j < k[l].size(); ++j) {
                ASSERT_NEAR(fs.k[l][j], k[l][j], 1e-12 * (1 + k[l][j]));
                ASSERT_NEAR(fs.v[l][j], v[l][j], 1e-12 * (1 + v[l][j]));
            }
        }
    }
    CalibWindows tiny;
    tiny.seqlen = 2;
    tiny.tokens = {1, 2};
    EXPECT_THROW(collect_fisher(engine, tiny, model::LabelShift::Double, quiet(1)), UsageError);
}

}  // namespace
}  // namespace palu::calib
