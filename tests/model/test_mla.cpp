// Golden test of the MLA (DeepSeek-V3) engine against transformers: tests/reference/mla_tiny is a
// tiny random DeepseekV3ForCausalLM saved by tests/reference/make_mla_reference.py, and
// mla_tiny_logits.json holds its transformers logits (full forward and incremental decode).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "palu/formats/model_loader.h"
#include "palu/model/mla_cache.h"
#include "palu/model/transformer.h"
#include "test_data.h"

namespace palu::model {
namespace {

struct Golden {
    std::vector<int32_t> ids;
    int64_t n_prefill = 0;
    std::vector<std::vector<float>> full;  // [n_tokens][n_vocab]
    std::vector<float> last_decode;        // [n_vocab]
};

std::filesystem::path fixture_dir() {
    return palu::test::source_root() / "tests" / "reference";
}

Golden load_golden() {
    std::ifstream in(fixture_dir() / "mla_tiny_logits.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    Golden g;
    g.ids = j.at("ids").get<std::vector<int32_t>>();
    g.n_prefill = j.at("n_prefill").get<int64_t>();
    g.full = j.at("logits_full").get<std::vector<std::vector<float>>>();
    g.last_decode = j.at("logits_last_decode").get<std::vector<float>>();
    return g;
}

// f32 against f32 with a different summation order (BLAS blocking vs torch's kernels): relative
// differences of a few ulps per product accumulate to ~1e-6 relative; 1e-4 of the logit scale
// leaves a wide margin while a wrong rope layout or a missing norm is off by O(1).
float tolerance(const std::vector<float>& ref) {
    float mx = 0.0f;
    for (float v : ref) mx = std::max(mx, std::fabs(v));
    return 1e-4f * (1.0f + mx);
}

float max_abs_diff(const float* a, const std::vector<float>& b) {
    float d = 0.0f;
    for (size_t i = 0; i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

class MlaGolden : public ::testing::Test {
   protected:
    void SetUp() override {
        src_ = formats::open_model(fixture_dir() / "mla_tiny");
        model_ = std::make_unique<Transformer>(*src_);
        model_->set_threads(1);
        golden_ = load_golden();
    }
    std::unique_ptr<WeightSource> src_;
    std::unique_ptr<Transformer> model_;
    Golden golden_;
};

TEST_F(MlaGolden, Config_IsMla) {
    const ModelConfig& c = model_->config();
    ASSERT_TRUE(c.is_mla());
    EXPECT_EQ(c.architecture, "deepseek_v3");
    EXPECT_EQ(c.mla->kv_lora_rank, 16);
    EXPECT_EQ(c.mla->qk_rope_head_dim, 8);
    EXPECT_EQ(c.d_head, 24);
}

TEST_F(MlaGolden, Prefill_MatchesTransformers) {
    const int64_t n = static_cast<int64_t>(golden_.ids.size());
    auto cache = model_->make_cache(1, n);
    const Tensor logits = model_->forward(golden_.ids.data(), 1, n, *cache);
    const int64_t n_vocab = model_->config().n_vocab;
    float worst = 0.0f;
    for (int64_t t = 0; t < n; ++t) {
        const auto& ref = golden_.full[static_cast<size_t>(t)];
        const float diff = max_abs_diff(logits.data() + t * n_vocab, ref);
        EXPECT_LE(diff, tolerance(ref)) << "position " << t;
        worst = std::max(worst, diff);
    }
    RecordProperty("max_abs_diff_prefill", std::to_string(worst));
    std::printf("mla prefill max |diff| = %.3g\n", worst);
}

TEST_F(MlaGolden, IncrementalDecode_MatchesTransformers) {
    const int64_t n = static_cast<int64_t>(golden_.ids.size()), n0 = golden_.n_prefill;
    auto cache = model_->make_cache(1, n);
    model_->forward(golden_.ids.data(), 1, n0, *cache, true);
    Tensor logits;
    for (int64_t t = n0; t < n; ++t) logits = model_->forward(golden_.ids.data() + t, 1, 1, *cache);
    const float diff = max_abs_diff(logits.data(), golden_.last_decode);
    EXPECT_LE(diff, tolerance(golden_.last_decode));
    std::printf("mla decode max |diff| = %.3g\n", diff);
}

TEST_F(MlaGolden, PrefillVsDecode_SameLastLogits) {
    const int64_t n = static_cast<int64_t>(golden_.ids.size()), n0 = golden_.n_prefill;
    auto cache = model_->make_cache(1, n);
    model_->forward(golden_.ids.data(), 1, n0, *cache, true);
    Tensor logits;
    for (int64_t t = n0; t < n; ++t) logits = model_->forward(golden_.ids.data() + t, 1, 1, *cache);
    auto cache_full = model_->make_cache(1, n);
    const Tensor full = model_->forward(golden_.ids.data(), 1, n, *cache_full, true);
    std::vector<float> ref(full.data(), full.data() + full.numel());
    EXPECT_LE(max_abs_diff(logits.data(), ref), tolerance(ref));
}

TEST_F(MlaGolden, Cache_StoresLatentAndRopeKeyOnly) {
    const ModelConfig& c = model_->config();
    const int64_t n_ctx = 12;
    auto cache = model_->make_cache(2, n_ctx);
    const int64_t per_layer = c.mla->kv_lora_rank + c.mla->qk_rope_head_dim;
    EXPECT_EQ(cache->bytes_per_token(), 4 * c.n_layers * per_layer);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        auto* mla = dynamic_cast<MlaKvLayerCache*>(&cache->layer(l));
        ASSERT_NE(mla, nullptr) << "layer " << l;
        EXPECT_EQ(mla->floats_per_token(), per_layer);
        EXPECT_EQ(mla->n_stored_floats(), 2 * n_ctx * per_layer);
        // The decompressed K/V would be n_heads·(qk_nope + qk_rope + v_head) floats per token.
        EXPECT_LT(per_layer, c.n_heads * (c.d_head + c.mla->v_head_dim));
    }
}

}  // namespace
}  // namespace palu::model
