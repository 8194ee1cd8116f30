// palu model tests: the latent KV cache of compressed checkpoints (lib/model latent_cache.h).
// Properties (issue #4): full rank ⇒ the compressed model's logits equal the original's; decode
// through the latent cache = prefill; quantized latents are stored as the quantizer makes them; the
// cache's byte count is its real storage; malformed factor sets are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "palu/compress/decompose.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/model/latent_cache.h"
#include "palu/model/transformer.h"
#include "palu/quant/latent_quant.h"
#include "synthetic_model.h"

namespace palu::test {
namespace {

// Replaces every k_proj / v_proj of `dense` by low-rank factors (plain SVD, `rank` per group of
// `s` KV heads; rank = s·d_head is exact up to f32 rounding).
MemoryWeightSource compress_synthetic(const MemoryWeightSource& dense, int64_t s, int64_t rank,
                                      bool hadamard = false) {
    MemoryWeightSource m = dense;
    const ModelConfig& c = dense.cfg;
    for (int64_t l = 0; l < c.n_layers; ++l) {
        for (const char* proj : {"k_proj", "v_proj"}) {
            const std::string p =
                strfmt("model.layers.%lld.self_attn.%s", static_cast<long long>(l), proj);
            const Tensor w = dense.load_f32(p + ".weight");
            const bool has_bias = dense.has_tensor(p + ".bias");
            const Tensor b = has_bias ? dense.load_f32(p + ".bias") : Tensor();
            const RowMatrixXf wm = Eigen::Map<const RowMatrixXf>(w.data(), w.dim(0), w.dim(1));
            std::vector<int64_t> ranks(static_cast<size_t>(c.n_kv_heads / s), rank);
            compress::LowRankKV kv = compress::decompose_projection(
                wm, std::span<const float>(b.data(), static_cast<size_t>(b.numel())), ranks,
                c.d_head, s, compress::DecomposeMethod::Plain, nullptr, p);
            if (hadamard) compress::fuse_hadamard(kv, 7);
            m.tensors_by_name.erase(p + ".weight");
            m.tensors_by_name.erase(p + ".bias");
            Tensor vt({kv.vt.rows(), kv.vt.cols()});
            std::copy(kv.vt.data(), kv.vt.data() + kv.vt.size(), vt.data());
            m.tensors_by_name[p + ".VT.weight"] = vt;
            for (int64_t g = 0; g < kv.n_groups(); ++g) {
                const RowMatrixXf& u = kv.u[static_cast<size_t>(g)];
                Tensor ut({u.rows(), u.cols()});
                std::copy(u.data(), u.data() + u.size(), ut.data());
                m.tensors_by_name[strfmt("%s.U.%lld.weight", p.c_str(),
                                         static_cast<long long>(g))] = ut;
                if (has_bias) {
                    const auto& bg = kv.bias[static_cast<size_t>(g)];
                    m.tensors_by_name[strfmt("%s.U.%lld.bias", p.c_str(),
                                             static_cast<long long>(g))] =
                        Tensor({static_cast<int64_t>(bg.size())}, bg);
                }
            }
        }
    }
    return m;
}

double max_abs(const Tensor& t) {
    double m = 0;
    for (int64_t i = 0; i < t.numel(); ++i)
        m = std::max(m, std::abs(static_cast<double>(t.data()[i])));
    return m;
}

double max_diff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape());
    double m = 0;
    for (int64_t i = 0; i < a.numel(); ++i)
        m = std::max(m, std::abs(static_cast<double>(a.data()[i]) - b.data()[i]));
    return m;
}

Tensor prefill_logits(const model::Transformer& e, const std::vector<int32_t>& toks) {
    auto cache = e.make_cache(1, static_cast<int64_t>(toks.size()));
    return e.forward(toks.data(), 1, static_cast<int64_t>(toks.size()), *cache);
}

struct FullRankCase {
    int64_t n_heads, n_kv_heads, d_head, s;
    bool bias;
};

class LatentFullRank : public ::testing::TestWithParam<FullRankCase> {};

// Full rank (r_g = s·d_head) ⇒ U_g·VT_g = W_g up to the f32 storage of the f64 SVD factors
// (~1e-7 relative per weight), so the logits agree to float rounding: bound 1e-5 relative to the
// largest logit (measured ≤ 2e-6).
TEST_P(LatentFullRank, LogitsEqualDense) {
    const FullRankCase k = GetParam();
    SynthSpec spec;
    spec.n_heads = k.n_heads;
    spec.n_kv_heads = k.n_kv_heads;
    spec.d_head = k.d_head;
    spec.qkv_bias = k.bias;
    spec.n_layers = 3;
    const MemoryWeightSource dense = make_synthetic_model(spec);
    const MemoryWeightSource comp = compress_synthetic(dense, k.s, k.s * k.d_head);
    model::Transformer ed(dense), ec(comp);
    ed.set_threads(1);
    ec.set_threads(1);
    EXPECT_TRUE(ec.weights().layer(0)->compressed());
    const auto toks = random_tokens(40, spec.n_vocab, 5);
    const Tensor ld = prefill_logits(ed, toks), lc = prefill_logits(ec, toks);
    EXPECT_LE(max_diff(ld, lc), 1e-5 * max_abs(ld));
    auto cache = ec.make_cache(1, 8);
    // f32 latents by default: 4 bytes per latent dim, K and V, every layer.
    EXPECT_EQ(cache->bytes_per_token(), 3 * 2 * 4 * k.n_kv_heads * k.d_head);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LatentFullRank,
                         ::testing::Values(FullRankCase{4, 2, 16, 1, false},   // GQA, M-LRD
                                           FullRankCase{4, 2, 16, 2, true},    // GQA, J-LRD, biases
                                           FullRankCase{4, 4, 16, 2, false},   // MHA, G-LRD
                                           FullRankCase{2, 2, 64, 1, true}));  // d_head 64

// Truncated ranks, every storage format: token-by-token decode through the latent cache gives the
// logits of one prefill over the same tokens (latents are quantized per token, so both paths store
// identical codes; the remaining difference is f32 summation order, bound 1e-5 relative).
class LatentDecode : public ::testing::TestWithParam<int> {};

TEST_P(LatentDecode, EqualsPrefill) {
    SynthSpec spec;
    spec.qkv_bias = true;
    const MemoryWeightSource comp = compress_synthetic(make_synthetic_model(spec), 2, 12, true);
    model::Transformer e(comp);
    e.set_threads(1);
    model::LatentCacheOptions opts;
    opts.bits = GetParam();
    if (opts.bits == 3) opts.quant.group_size = 4;  // chunks of 4 channels
    e.set_cache_factory(model::latent_cache_factory(e.weights(), opts));
    const auto toks = random_tokens(24, spec.n_vocab, 9);
    const Tensor full = prefill_logits(e, toks);
    auto cache = e.make_cache(1, 24);
    const int64_t nv = spec.n_vocab;
    double worst = 0;
    for (size_t t = 0; t < toks.size(); ++t) {
        const Tensor step = e.forward(&toks[t], 1, 1, *cache);
        for (int64_t i = 0; i < nv; ++i)
            worst = std::max(worst, std::abs(static_cast<double>(step.data()[i]) -
                                             full.data()[static_cast<int64_t>(t) * nv + i]));
    }
    EXPECT_LE(worst, 1e-5 * max_abs(full)) << "bits " << opts.bits;
    // Bytes: per layer, K and V each one group of rank 12 (n_kv 2 / s 2).
    quant::LatentQuantSpec q = opts.quant;
    q.bits = opts.bits == 32 ? 16 : opts.bits;
    const int64_t per_group = opts.bits == 32 ? 48 : quant::latent_token_bytes(12, q);
    EXPECT_EQ(cache->bytes_per_token(), spec.n_layers * 2 * per_group);
}

INSTANTIATE_TEST_SUITE_P(Bits, LatentDecode, ::testing::Values(32, 16, 8, 4, 3, 2));

// The stored latents are exactly the quantizer's output for x·VTᵀ (checked through the cache's
// dequantized read-back against quant::fake_quantize_rows on the same latent row), and batch
// rows are independent.
TEST(LatentCache, StoresQuantizedLatentsPerTokenAndGroup) {
    SynthSpec spec;
    spec.n_kv_heads = 4;
    spec.n_heads = 4;
    const MemoryWeightSource comp = compress_synthetic(make_synthetic_model(spec), 2, 8, true);
    model::Transformer e(comp);
    e.set_threads(1);
    const auto lw = e.weights().layer(0);
    model::LatentCacheOptions opts;
    opts.bits = 4;
    auto ws = std::make_shared<model::LatentWorkspace>();
    model::LatentKvLayerCache cache(e.config(), *lw, 2, 6, opts, ws);
    const int64_t d = spec.d_model;
    std::vector<float> x(static_cast<size_t>(2 * 3 * d));
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
    cache.append(x.data(), 2, 3, *lw, e.rope());
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t t = 0; t < 3; ++t)
            for (int which = 0; which < 2; ++which) {
                const model::LowRankWeights& lr = which == 0 ? lw->lk : lw->lv;
                std::vector<float> h(static_cast<size_t>(lr.n_latent()));
                for (int64_t j = 0; j < lr.n_latent(); ++j) {
                    double acc = 0;
                    for (int64_t i = 0; i < d; ++i)
                        acc += static_cast<double>(lr.vt.data()[j * d + i]) *
                               x[static_cast<size_t>((b * 3 + t) * d + i)];
                    h[static_cast<size_t>(j)] = static_cast<float>(acc);
                }
                quant::LatentQuantSpec q;
                q.bits = 4;
                for (int64_t g = 0; g < lr.n_groups(); ++g)
                    quant::fake_quantize_rows(h.data() + lr.rank_offset(g), 1,
                                              lr.ranks[static_cast<size_t>(g)], q);
                const std::vector<float> got = cache.latent(b, t, which);
                ASSERT_EQ(got.size(), h.size());
                for (size_t j = 0; j < h.size(); ++j)
                    EXPECT_NEAR(got[j], h[j], 2e-3 * (std::abs(h[j]) + 1))
                        << b << " " << t << " " << j;
            }
    // 2 groups of rank 8 per K/V: 4 bytes of codes + f16 scale + f16 zero each.
    EXPECT_EQ(cache.bytes_per_token(), 2 * 2 * (4 + 2 + 2));
}

TEST(LatentCache, RefusesBadOptionsAndGradients) {
    SynthSpec spec;
    const MemoryWeightSource comp = compress_synthetic(make_synthetic_model(spec), 1, 8);
    model::Transformer e(comp);
    model::LatentCacheOptions opts;
    opts.bits = 5;
    auto ws = std::make_shared<model::LatentWorkspace>();
    EXPECT_THROW(model::LatentKvLayerCache(e.config(), *e.weights().layer(0), 1, 4, opts, ws),
                 UsageError);
    opts.bits = 4;
    opts.quant.group_size = 3;  // does not divide rank 8
    EXPECT_THROW(model::LatentKvLayerCache(e.config(), *e.weights().layer(0), 1, 4, opts, ws),
                 UsageError);
    const auto toks = random_tokens(8, spec.n_vocab, 1);
    EXPECT_THROW(e.kv_gradients(toks.data(), 8, model::LabelShift::Single), UsageError);
    // A dense model has no latent cache.
    const MemoryWeightSource dense = make_synthetic_model(spec);
    model::Transformer ed(dense);
    EXPECT_THROW(model::latent_cache_factory(ed.weights(), {}), UsageError);
}

TEST(LatentCache, MalformedFactorsAreRefused) {
    SynthSpec spec;
    MemoryWeightSource comp = compress_synthetic(make_synthetic_model(spec), 1, 8);
    MemoryWeightSource missing = comp;
    missing.tensors_by_name.erase("model.layers.1.self_attn.v_proj.U.0.weight");
    missing.tensors_by_name.erase("model.layers.1.self_attn.v_proj.U.1.weight");
    EXPECT_THROW(model::Transformer{missing}, FormatError);
    MemoryWeightSource wrong = comp;
    wrong.tensors_by_name["model.layers.0.self_attn.k_proj.VT.weight"] = Tensor({15, spec.d_model});
    EXPECT_THROW(model::Transformer{wrong}, ShapeError);
    MemoryWeightSource one_group = comp;  // one group of d_head rows cannot cover 2 KV heads
    one_group.tensors_by_name.erase("model.layers.0.self_attn.k_proj.U.1.weight");
    one_group.tensors_by_name["model.layers.0.self_attn.k_proj.VT.weight"] =
        Tensor({8, spec.d_model});
    EXPECT_THROW(model::Transformer{one_group}, ShapeError);
}

}  // namespace
}  // namespace palu::test
