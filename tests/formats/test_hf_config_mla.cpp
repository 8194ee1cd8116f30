// DeepSeek-V3 (MLA) config.json parsing: the dense form palu runs, and what it refuses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "palu/core/error.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/hf_model.h"

using namespace palu;
using namespace palu::formats;
using nlohmann::json;
using ::testing::HasSubstr;

namespace {

json deepseek_dense() {
    return json{{"model_type", "deepseek_v3"},
                {"hidden_size", 64},
                {"num_hidden_layers", 2},
                {"num_attention_heads", 4},
                {"num_key_value_heads", 4},
                {"head_dim", 8},
                {"intermediate_size", 128},
                {"vocab_size", 96},
                {"kv_lora_rank", 16},
                {"q_lora_rank", nullptr},
                {"qk_rope_head_dim", 8},
                {"qk_nope_head_dim", 16},
                {"v_head_dim", 16},
                {"n_routed_experts", 4},
                {"first_k_dense_replace", 2},
                {"rope_interleave", true},
                {"rope_parameters", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}};
}

std::string error_of(const json& j) {
    try {
        parse_hf_config(j, "config.json");
    } catch (const FormatError& e) {
        return e.what();
    }
    return "no FormatError";
}

TEST(HfConfigMla, DenseDeepseekV3_Parsed) {
    const ModelConfig c = parse_hf_config(deepseek_dense(), "config.json").model;
    ASSERT_TRUE(c.is_mla());
    EXPECT_EQ(c.architecture, "deepseek_v3");
    EXPECT_EQ(c.d_head, 24);  // qk_nope + qk_rope, not the file's head_dim
    EXPECT_EQ(c.n_kv_heads, 4);
    EXPECT_EQ(c.mla->kv_lora_rank, 16);
    EXPECT_EQ(c.mla->v_head_dim, 16);
    EXPECT_TRUE(c.mla->rope_interleave);
}

TEST(HfConfigMla, NullExperts_Dense) {
    json j = deepseek_dense();
    j["n_routed_experts"] = nullptr;
    j["first_k_dense_replace"] = 0;
    EXPECT_TRUE(parse_hf_config(j, "config.json").model.is_mla());
}

TEST(HfConfigMla, QLora_NotSupported) {
    json j = deepseek_dense();
    j["q_lora_rank"] = 32;
    const std::string msg = error_of(j);
    EXPECT_THAT(msg, HasSubstr("q_lora_rank"));
    EXPECT_THAT(msg, HasSubstr("not supported yet"));
}

TEST(HfConfigMla, MoeLayers_NotSupported) {
    json j = deepseek_dense();
    j["first_k_dense_replace"] = 1;
    const std::string msg = error_of(j);
    EXPECT_THAT(msg, HasSubstr("first_k_dense_replace"));
    EXPECT_THAT(msg, HasSubstr("not supported yet"));
}

TEST(HfConfigMla, RopeScaling_NotSupported) {
    json j = deepseek_dense();
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 40.0}};
    EXPECT_THAT(error_of(j), HasSubstr("not supported yet"));
}

TEST(HfConfigMla, ExpectedTensors_ListMlaNames) {
    const ModelConfig c = parse_hf_config(deepseek_dense(), "config.json").model;
    bool kv_a = false, kv_b = false, k_proj = false;
    for (const auto& e : expected_hf_tensors(c, true)) {
        if (e.name == "model.layers.1.self_attn.kv_a_proj_with_mqa.weight") {
            kv_a = true;
            EXPECT_EQ(e.shape, (std::vector<int64_t>{24, 64}));
        }
        if (e.name == "model.layers.1.self_attn.kv_b_proj.weight") {
            kv_b = true;
            EXPECT_EQ(e.shape, (std::vector<int64_t>{4 * 32, 16}));
        }
        if (e.name.find("k_proj") != std::string::npos) k_proj = true;
    }
    EXPECT_TRUE(kv_a && kv_b);
    EXPECT_FALSE(k_proj);
}

}  // namespace
