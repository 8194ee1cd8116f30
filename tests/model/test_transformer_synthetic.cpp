// palu tests: the CPU engine against an independent double-precision reference on synthetic
// models (MHA, GQA, head_dim 64/128, q/k/v biases, linear and llama3 RoPE scaling), batch > 1,
// decode through the KV cache == prefill, observers, and k/v gradients vs central differences.
#include <gtest/gtest.h>

#include <cmath>

#include "palu/model/perplexity.h"
#include "palu/model/transformer.h"
#include "synthetic_model.h"

namespace palu::test {
namespace {

using model::Transformer;

struct Case {
    const char* name;
    SynthSpec spec;
};

SynthSpec spec_with(std::function<void(SynthSpec&)> f) {
    SynthSpec s;
    f(s);
    return s;
}

std::vector<Case> cases() {
    return {
        {"mha_d16", spec_with([](SynthSpec& s) { s.n_kv_heads = 4; })},
        {"gqa_d16_untied", spec_with([](SynthSpec& s) { s.tied = false; })},
        {"gqa_d64", spec_with([](SynthSpec& s) {
             s.n_heads = 4;
             s.n_kv_heads = 2;
             s.d_head = 64;
             s.d_model = 96;
         })},
        {"mha_d128_bias", spec_with([](SynthSpec& s) {
             s.n_heads = 2;
             s.n_kv_heads = 2;
             s.d_head = 128;
             s.d_model = 64;
             s.qkv_bias = true;
         })},
        {"gqa_linear_rope", spec_with([](SynthSpec& s) {
             s.rope_scaling.type = "linear";
             s.rope_scaling.factor = 4.0;
             s.rope_theta = 500000;
         })},
        {"gqa_llama3_rope", spec_with([](SynthSpec& s) {
             s.d_head = 64;
             s.d_model = 64;
             s.n_heads = 4;
             s.n_kv_heads = 1;
             s.rope_theta = 500000;
             s.rope_scaling.type = "llama3";
             s.rope_scaling.factor = 8.0;
             s.rope_scaling.low_freq_factor = 1.0;
             s.rope_scaling.high_freq_factor = 4.0;
             // small original context so that all three frequency bands occur at d_head 64
             s.rope_scaling.original_max_position_embeddings = 64;
         })},
    };
}

class EngineVsReference : public ::testing::TestWithParam<Case> {};

// f32 engine vs double reference. With these random weights the logits reach |z| ~ 30-60, and f32
// rounding through n_layers of GEMMs, norms and sharp softmaxes gives errors of a few 1e-6 of the
// largest logit; we require max error <= 1e-5 * max|logit| (a wrong RoPE frequency, mask or bias
// shows up as errors of order 1e-2 of the logit scale, 1000x above this).
constexpr double kLogitRelTol = 1e-5;

double max_abs(const float* p, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::abs(p[i])));
    return m;
}

TEST_P(EngineVsReference, PrefillBatchMatchesReference) {
    const Case& cs = GetParam();
    MemoryWeightSource src = make_synthetic_model(cs.spec);
    Transformer engine(src);
    const int64_t n_batch = 3, n = 37;  // n not a multiple of anything, batch > 1
    std::vector<int32_t> toks;
    for (int64_t b = 0; b < n_batch; ++b) {
        auto t = random_tokens(n, cs.spec.n_vocab, 100 + static_cast<uint32_t>(b));
        toks.insert(toks.end(), t.begin(), t.end());
    }
    auto cache = engine.make_cache(n_batch, n);
    Tensor logits = engine.forward(toks.data(), n_batch, n, *cache);
    ASSERT_EQ(logits.shape(), (std::vector<int64_t>{n_batch, n, cs.spec.n_vocab}));
    const RefWeights W = to_ref_weights(src);
    for (int64_t b = 0; b < n_batch; ++b) {
        std::vector<int32_t> seq(toks.begin() + b * n, toks.begin() + (b + 1) * n);
        auto ref = ref_forward(src.cfg, W, seq);
        double max_err = 0;
        for (int64_t t = 0; t < n; ++t)
            for (int64_t v = 0; v < cs.spec.n_vocab; ++v)
                max_err =
                    std::max(max_err, std::abs(ref[static_cast<size_t>(t)][static_cast<size_t>(v)] -
                                               logits.data()[(b * n + t) * cs.spec.n_vocab + v]));
        const double zmax = max_abs(logits.data() + b * n * cs.spec.n_vocab, n * cs.spec.n_vocab);
        EXPECT_LT(max_err, kLogitRelTol * zmax)
            << cs.name << " batch row " << b << ", max|logit| " << zmax;
    }
}

TEST_P(EngineVsReference, DecodeWithCacheMatchesPrefill) {
    const Case& cs = GetParam();
    MemoryWeightSource src = make_synthetic_model(cs.spec);
    Transformer engine(src);
    const int64_t n_batch = 2, n = 21, n_prompt = 5;
    auto toks = random_tokens(n_batch * n, cs.spec.n_vocab, 7);
    auto full = engine.make_cache(n_batch, n);
    Tensor ref = engine.forward(toks.data(), n_batch, n, *full);
    // Prompt of n_prompt tokens, then one token at a time through the cache.
    auto cache = engine.make_cache(n_batch, n);
    std::vector<int32_t> prompt, step(static_cast<size_t>(n_batch));
    for (int64_t b = 0; b < n_batch; ++b)
        prompt.insert(prompt.end(), toks.begin() + b * n, toks.begin() + b * n + n_prompt);
    Tensor lp = engine.forward(prompt.data(), n_batch, n_prompt, *cache, /*last_only=*/true);
    const int64_t V = cs.spec.n_vocab;
    double max_err = 0;
    for (int64_t b = 0; b < n_batch; ++b)
        for (int64_t v = 0; v < V; ++v)
            max_err = std::max(
                max_err, static_cast<double>(std::abs(lp.data()[b * V + v] -
                                                      ref.data()[(b * n + n_prompt - 1) * V + v])));
    for (int64_t t = n_prompt; t < n; ++t) {
        for (int64_t b = 0; b < n_batch; ++b)
            step[static_cast<size_t>(b)] = toks[static_cast<size_t>(b * n + t)];
        Tensor l1 = engine.forward(step.data(), n_batch, 1, *cache);
        for (int64_t b = 0; b < n_batch; ++b)
            for (int64_t v = 0; v < V; ++v)
                max_err = std::max(
                    max_err, static_cast<double>(
                                 std::abs(l1.data()[b * V + v] - ref.data()[(b * n + t) * V + v])));
    }
    EXPECT_EQ(cache->n_past(), n);
    // Same f32 arithmetic in a different order (GEMM vs GEMV blocking): a few 1e-7 relative to the
    // largest logit; 2e-6 * max|logit| bounds it.
    const double zmax = max_abs(ref.data(), ref.numel());
    EXPECT_LT(max_err, 2e-6 * zmax) << cs.name << ", max|logit| " << zmax;
}

INSTANTIATE_TEST_SUITE_P(Synthetic, EngineVsReference, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(EngineKvCache, BytesPerTokenFromCache) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    Transformer engine(src);
    auto cache = engine.make_cache(1, 8);
    // 2 (K,V) x n_layers x n_kv_heads x d_head x 4 bytes
    EXPECT_EQ(cache->bytes_per_token(), 2 * s.n_layers * s.n_kv_heads * s.d_head * 4);
}

TEST(EngineKvCache, OverflowIsUsageError) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    Transformer engine(src);
    auto cache = engine.make_cache(1, 4);
    auto toks = random_tokens(5, s.n_vocab, 3);
    EXPECT_THROW(engine.forward(toks.data(), 1, 5, *cache), UsageError);
}

TEST(EngineInput, BadTokenIsUsageError) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    Transformer engine(src);
    auto cache = engine.make_cache(1, 4);
    std::vector<int32_t> toks{1, static_cast<int32_t>(s.n_vocab)};
    try {
        engine.forward(toks.data(), 1, 2, *cache);
        FAIL() << "expected UsageError";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos)
            << e.what();
    }
}

TEST(EngineWeights, WrongShapeIsShapeErrorNamingTensor) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    src.tensors_by_name["model.layers.1.self_attn.k_proj.weight"] = Tensor({s.d_model, s.d_model});
    try {
        Transformer engine(src);
        FAIL() << "expected ShapeError";
    } catch (const ShapeError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("model.layers.1.self_attn.k_proj.weight"), std::string::npos) << m;
        EXPECT_NE(m.find("expected [32,64]"), std::string::npos) << m;
        EXPECT_NE(m.find("got [64,64]"), std::string::npos) << m;
    }
}

TEST(EngineObserver, SeesKvInputOfEveryLayer) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    Transformer engine(src);
    std::vector<int64_t> seen;
    double first_row_sq = 0;
    engine.add_observer([&](int64_t l, model::ObservePoint p, const TensorView& x) {
        if (p != model::ObservePoint::KvInput) return;
        seen.push_back(l);
        ASSERT_EQ(x.shape, (std::vector<int64_t>{2 * 6, s.d_model}));
        if (l == 0)
            for (int64_t i = 0; i < s.d_model; ++i) first_row_sq += x.data[i] * x.data[i];
    });
    auto toks = random_tokens(12, s.n_vocab, 5);
    auto cache = engine.make_cache(2, 6);
    engine.forward(toks.data(), 2, 6, *cache);
    EXPECT_EQ(seen, (std::vector<int64_t>{0, 1}));
    // The k/v input of layer 0 is rmsnorm(embedding) * w: its mean square is ~ mean(w²) ~ 1.
    EXPECT_GT(first_row_sq / static_cast<double>(s.d_model), 0.5);
}

TEST(EngineStreaming, StreamingEqualsResident) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    Transformer a(src, model::Residency::Resident), b(src, model::Residency::Streaming);
    auto toks = random_tokens(16, s.n_vocab, 9);
    auto ca = a.make_cache(1, 16), cb = b.make_cache(1, 16);
    Tensor la = a.forward(toks.data(), 1, 16, *ca), lb = b.forward(toks.data(), 1, 16, *cb);
    EXPECT_EQ(la.vec(), lb.vec());
}

TEST(EnginePerplexity, WindowsAndBatchingAgree) {
    SynthSpec s;
    MemoryWeightSource src = make_synthetic_model(s);
    Transformer engine(src);
    auto toks = random_tokens(5 * 16 + 3, s.n_vocab, 11);
    auto r1 = model::compute_perplexity(engine, toks, 16, 0, 1);
    auto r3 = model::compute_perplexity(engine, toks, 16, 0, 3);
    ASSERT_EQ(r1.n_windows, 5);
    EXPECT_EQ(r1.n_tokens, 80);
    const RefWeights W = to_ref_weights(src);
    double mean = 0;
    for (int64_t w = 0; w < 5; ++w) {
        std::vector<int32_t> win(toks.begin() + w * 16, toks.begin() + (w + 1) * 16);
        const double ref = ref_loss(src.cfg, W, win, 1);
        EXPECT_NEAR(r1.window_nll[static_cast<size_t>(w)], ref, 1e-5);
        EXPECT_NEAR(r3.window_nll[static_cast<size_t>(w)], ref, 1e-5);
        mean += ref / 5;
    }
    EXPECT_NEAR(r1.nll, mean, 1e-5);
    EXPECT_NEAR(r1.ppl, std::exp(mean), 1e-4 * std::exp(mean));
    auto r2 = model::compute_perplexity(engine, toks, 16, 2, 1);
    EXPECT_EQ(r2.n_windows, 2);
}

// Gradients of the f32 engine vs central differences of the double reference loss:
// (L(w+ε) - L(w-ε)) / 2ε with ε = 1e-4 has truncation error ~ε²·L''' ~ 1e-8 and rounding error
// ~1e-16/ε ~ 1e-12, so the reference derivative is exact to ~1e-7; the f32 engine's backward is
// accurate to ~1e-6 relative of the largest gradient entry. We require |g - fd| <= 2e-4·max|fd|
// + 1e-7.
void check_gradients(const SynthSpec& spec, model::LabelShift shift) {
    MemoryWeightSource src = make_synthetic_model(spec);
    Transformer engine(src);
    const int64_t n = 11;
    auto toks = random_tokens(n, spec.n_vocab, 21);
    const model::KvGradients g = engine.kv_gradients(toks.data(), n, shift);
    RefWeights W = to_ref_weights(src);
    const int64_t k_shift = static_cast<int64_t>(shift);
    EXPECT_NEAR(g.loss, ref_loss(src.cfg, W, toks, k_shift), 1e-5);
    const double eps = 1e-4;
    std::mt19937 rng(5);
    for (int64_t l = 0; l < spec.n_layers; ++l) {
        for (int which = 0; which < 2; ++which) {
            const std::string name = strfmt("model.layers.%lld.self_attn.%s_proj.weight",
                                            static_cast<long long>(l), which == 0 ? "k" : "v");
            const Tensor& grad =
                which == 0 ? g.d_wk[static_cast<size_t>(l)] : g.d_wv[static_cast<size_t>(l)];
            std::vector<double>& w = W[name];
            ASSERT_EQ(static_cast<size_t>(grad.numel()), w.size());
            std::vector<double> fd, eng;
            std::uniform_int_distribution<size_t> pick(0, w.size() - 1);
            for (int s = 0; s < 24; ++s) {
                const size_t i = pick(rng);
                const double w0 = w[i];
                w[i] = w0 + eps;
                const double lp = ref_loss(src.cfg, W, toks, k_shift);
                w[i] = w0 - eps;
                const double lm = ref_loss(src.cfg, W, toks, k_shift);
                w[i] = w0;
                fd.push_back((lp - lm) / (2 * eps));
                eng.push_back(grad.data()[i]);
            }
            double scale = 0;
            for (double v : fd) scale = std::max(scale, std::abs(v));
            EXPECT_GT(scale, 1e-5) << name << ": gradients too small to test";
            for (size_t j = 0; j < fd.size(); ++j)
                EXPECT_NEAR(eng[j], fd[j], 2e-4 * scale + 1e-7) << name << " sample " << j;
        }
    }
}

TEST(EngineBackward, KvGradientsMatchFiniteDifferences_Gqa) {
    SynthSpec s;
    s.n_vocab = 31;
    check_gradients(s, model::LabelShift::Single);
}

TEST(EngineBackward, KvGradientsMatchFiniteDifferences_BiasDoubleShift) {
    SynthSpec s;
    s.n_vocab = 31;
    s.qkv_bias = true;
    s.n_kv_heads = 4;
    s.tied = false;
    check_gradients(s, model::LabelShift::Double);
}

}  // namespace
}  // namespace palu::test
