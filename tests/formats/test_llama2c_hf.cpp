// palu formats tests: the same model as a llama2.c .bin and as an HF directory (converted by
// others with the HF permutation) gives identical f32 weights in the HF convention.
#include <gtest/gtest.h>

#include "palu/formats/llama2c.h"
#include "palu/formats/model_loader.h"
#include "test_data.h"

using namespace palu;
using namespace palu::formats;

TEST(Llama2c, MatchesHfDirectory_Data) {
    PALU_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
    PALU_REQUIRE_DATA(hf_dir, "models/stories260K/hf");
    auto a = open_llama2c_model(bin);
    auto b = open_hf_model(hf_dir);
    const ModelConfig &ca = a->config(), &cb = b->config();
    EXPECT_EQ(ca.architecture, cb.architecture);
    EXPECT_EQ(ca.d_model, cb.d_model);
    EXPECT_EQ(ca.n_layers, cb.n_layers);
    EXPECT_EQ(ca.n_heads, cb.n_heads);
    EXPECT_EQ(ca.n_kv_heads, cb.n_kv_heads);
    EXPECT_EQ(ca.d_head, cb.d_head);
    EXPECT_EQ(ca.d_ff, cb.d_ff);
    EXPECT_EQ(ca.n_vocab, cb.n_vocab);
    EXPECT_EQ(ca.max_position_embeddings, cb.max_position_embeddings);
    EXPECT_EQ(ca.rms_norm_eps, cb.rms_norm_eps);
    EXPECT_EQ(ca.rope_theta, cb.rope_theta);
    EXPECT_EQ(ca.tie_word_embeddings, cb.tie_word_embeddings);
    EXPECT_EQ(ca.bos_token_id, cb.bos_token_id);
    EXPECT_EQ(ca.eos_token_ids, cb.eos_token_ids);

    // Every tensor of the .bin exists in the HF dir with the same shape and bit-identical values.
    auto infos = a->tensors();
    ASSERT_EQ(infos.size(), size_t(1 + 5 * 9 + 1));
    for (const auto& ti : infos) {
        ASSERT_TRUE(b->has_tensor(ti.name)) << ti.name;
        Tensor ta = a->load_f32(ti.name), tb = b->load_f32(ti.name);
        ASSERT_EQ(ta.shape(), tb.shape()) << ti.name;
        EXPECT_EQ(ta.vec(), tb.vec()) << ti.name;
    }
    // The HF dir writes lm_head.weight out although tied: it must equal the embedding.
    for (const auto& ti : b->tensors())
        if (!a->has_tensor(ti.name)) {
            EXPECT_EQ(ti.name, "lm_head.weight");
            EXPECT_EQ(b->load_f32(ti.name).vec(), a->load_f32("model.embed_tokens.weight").vec());
        }
    // The dispatcher picks the llama2.c reader for a .bin.
    auto c = open_model(bin);
    EXPECT_EQ(c->format_name(), "llama2c");
}
