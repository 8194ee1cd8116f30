// palu model tests: make_random_weights, the one random model generator (benchmarks, the
// synthetic in-memory models, the tiny checkpoints): tensor list, determinism per (seed, name),
// and the distributions its options describe.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/hf_model.h"
#include "palu/model/random_weights.h"

namespace palu::test {
namespace {

ModelConfig small_config() {
    ModelConfig c;
    c.architecture = "llama";
    c.d_model = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_head = 16;
    c.d_ff = 96;
    c.n_vocab = 50;
    return c;
}

// The tiny checkpoint writer stores exactly formats' list of a dense checkpoint's tensors, so the
// generator must produce that list, with those shapes, for every bias / tying combination.
TEST(RandomWeights, TensorsAreTheDenseHfCheckpointTensors) {
    for (int variant = 0; variant < 4; ++variant) {
        ModelConfig c = small_config();
        c.tie_word_embeddings = variant % 2 == 1;
        c.qkv_bias = variant >= 2;
        c.o_bias = variant == 3;
        c.mlp_bias = variant == 3;
        const auto src = model::make_random_weights(c, 1);
        const auto want = formats::expected_hf_tensors(c, !c.tie_word_embeddings);
        const auto got = src->tensors();
        ASSERT_EQ(got.size(), want.size()) << "variant " << variant;
        for (size_t i = 0; i < want.size(); ++i) {
            EXPECT_EQ(got[i].name, want[i].name) << "variant " << variant;
            EXPECT_EQ(got[i].shape, want[i].shape) << want[i].name;
            EXPECT_TRUE(src->has_tensor(want[i].name));
            EXPECT_EQ(src->load_f32(want[i].name).shape(), want[i].shape) << want[i].name;
        }
    }
}

TEST(RandomWeights, ValuesDependOnSeedAndNameOnly) {
    const ModelConfig c = small_config();
    const auto a = model::make_random_weights(c, 7);
    const auto b = model::make_random_weights(c, 7);
    const std::string q = "model.layers.1.self_attn.q_proj.weight";
    const std::string k = "model.layers.1.self_attn.k_proj.weight";
    // Different load orders, same values.
    const Tensor qa = a->load_f32(q), ka = a->load_f32(k);
    const Tensor kb = b->load_f32(k), qb = b->load_f32(q);
    EXPECT_EQ(qa.vec(), qb.vec());
    EXPECT_EQ(ka.vec(), kb.vec());
    // Another seed or another tensor of the same shape: other values.
    EXPECT_NE(model::make_random_weights(c, 8)->load_f32(q).vec(), qa.vec());
    EXPECT_NE(a->load_f32("model.layers.0.self_attn.q_proj.weight").vec(), qa.vec());
    EXPECT_THROW(a->load_f32("model.layers.2.self_attn.q_proj.weight"), FormatError);
}

struct Moments {
    double mean = 0.0, stddev = 0.0;
};

// Values of tensor `name` pooled over seeds o.seed, o.seed + 1, ... until there are ≥ 4096 (one
// draw for the matrices, several for the 1-D norms and biases), with their sample moments.
Moments sample_moments(const ModelConfig& c, model::RandomWeightsOptions o,
                       const std::string& name) {
    std::vector<float> v;
    for (; v.size() < 4096; ++o.seed) {
        const Tensor t = model::make_random_weights(c, o)->load_f32(name);
        v.insert(v.end(), t.vec().begin(), t.vec().end());
    }
    double s = 0.0, s2 = 0.0;
    for (float x : v) s += x;
    const double n = static_cast<double>(v.size()), mean = s / n;
    for (float x : v) s2 += (x - mean) * (x - mean);
    return {mean, std::sqrt(s2 / (n - 1))};
}

// Sample moments over n ≥ 4096 values: the standard error of the std estimate is σ/√(2n) ≤ 1.1%
// of σ and that of the mean σ/√n ≤ 1.6% of σ; the bounds (5% of σ) are > 3 standard errors.
TEST(RandomWeights, DistributionsFollowOptions) {
    ModelConfig c = small_config();
    c.d_model = 256;
    c.d_ff = 512;
    c.n_vocab = 64;
    c.qkv_bias = true;
    model::RandomWeightsOptions o;
    o.seed = 3;
    o.embed_std = 0.5;
    o.lm_head_std = 0.0;  // fan-in
    o.norm_std = 0.1;
    o.bias_std = 0.3;
    o.qk_gain = 1.5;
    o.v_gain = 0.8;
    o.residual_gain = 0.7;
    o.mlp_gain = 1.2;
    struct Want {
        std::string name;
        double mean, stddev;
    };
    // fan-in scales: d_model 256 (q/k/v, gate/up), d_q = 4 × 16 = 64 (o_proj), d_ff 512 (down)
    const double in_d = 1.0 / std::sqrt(256.0), in_q = 1.0 / std::sqrt(64.0),
                 in_ff = 1.0 / std::sqrt(512.0);
    const std::vector<Want> wants = {
        {"model.embed_tokens.weight", 0.0, 0.5},
        {"lm_head.weight", 0.0, in_d},
        {"model.layers.0.input_layernorm.weight", 1.0, 0.1},
        {"model.layers.0.self_attn.q_proj.bias", 0.0, 0.3},
        {"model.layers.0.self_attn.q_proj.weight", 0.0, 1.5 * in_d},
        {"model.layers.0.self_attn.k_proj.weight", 0.0, 1.5 * in_d},
        {"model.layers.0.self_attn.v_proj.weight", 0.0, 0.8 * in_d},
        {"model.layers.0.self_attn.o_proj.weight", 0.0, 0.7 * in_q},
        {"model.layers.0.mlp.gate_proj.weight", 0.0, 1.2 * in_d},
        {"model.layers.0.mlp.up_proj.weight", 0.0, 1.2 * in_d},
        {"model.layers.0.mlp.down_proj.weight", 0.0, 0.7 * in_ff},
    };
    for (const Want& w : wants) {
        const Moments m = sample_moments(c, o, w.name);
        EXPECT_NEAR(m.mean, w.mean, 0.05 * w.stddev) << w.name;
        EXPECT_NEAR(m.stddev, w.stddev, 0.05 * w.stddev) << w.name;
    }
}

}  // namespace
}  // namespace palu::test
