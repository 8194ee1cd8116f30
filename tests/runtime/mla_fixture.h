// palu tests (runtime): a tiny random MLA checkpoint (dense DeepSeek-V3 HF directory, as
// palu-compress --layout mla writes) generated on the fly, and a tiny llama2.c tokenizer file,
// for the GGUF export and llama.cpp tests. Weights: palu::model::make_random_weights.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "palu/core/model_config.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/safetensors.h"
#include "palu/model/random_weights.h"
#include "tiny_model.h"

namespace palu::test {

struct TinyMlaConfig {
    int64_t n_layers = 2;
    int64_t d_model = 64;
    int64_t n_heads = 4;
    int64_t kv_lora_rank = 16;
    int64_t qk_rope = 8;
    int64_t qk_nope = 16;
    int64_t v_head = 16;
    int64_t d_ff = 128;
    int64_t n_vocab = 300;
    bool tie_word_embeddings = false;
    bool rope_interleave = true;
    double rms_norm_eps = 1e-6;  // llama.cpp applies it to kv_a_layernorm too (1e-6 in HF)
    double lm_head_std = 0.0;    // 0: fan-in scaling (logits of order 1)
    uint64_t seed = 77;
};

inline ModelConfig tiny_mla_model_config(const TinyMlaConfig& t) {
    ModelConfig c;
    c.architecture = "deepseek_v3";
    c.d_model = t.d_model;
    c.n_layers = t.n_layers;
    c.n_heads = t.n_heads;
    c.n_kv_heads = t.n_heads;
    c.d_head = t.qk_nope + t.qk_rope;
    c.d_ff = t.d_ff;
    c.n_vocab = t.n_vocab;
    c.max_position_embeddings = 1024;
    c.rms_norm_eps = t.rms_norm_eps;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = t.tie_word_embeddings;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    MlaConfig m;
    m.kv_lora_rank = t.kv_lora_rank;
    m.qk_rope_head_dim = t.qk_rope;
    m.qk_nope_head_dim = t.qk_nope;
    m.v_head_dim = t.v_head;
    m.rope_interleave = t.rope_interleave;
    c.mla = m;
    return c;
}

/// Writes config.json + model.safetensors (F32) of a random MLA model into `dir` (created).
inline ModelConfig write_tiny_mla_checkpoint(const std::filesystem::path& dir,
                                             const TinyMlaConfig& t = {}) {
    const ModelConfig c = tiny_mla_model_config(t);
    std::filesystem::create_directories(dir);
    TinyConfig tc;
    tc.seed = t.seed;
    model::RandomWeightsOptions o = tiny_weight_options(tc);
    o.lm_head_std = t.lm_head_std;
    const auto random = model::make_random_weights(c, o);
    formats::TensorWriteList list;
    std::vector<Tensor> keep;
    for (const auto& info : random->tensors()) {
        keep.push_back(random->load_f32(info.name));
        const Tensor& x = keep.back();
        list.add_f32(info.name, DType::F32, x.shape(), x.data(), static_cast<size_t>(x.numel()),
                     "test");
    }
    formats::write_safetensors(dir, list.take(), {{"format", "pt"}});
    std::ofstream(dir / "config.json") << formats::hf_config_json(c, "float32").dump(2) << "\n";
    return c;
}

/// A llama2.c tokenizer file: <unk>, "\n<s>\n", "\n</s>\n", the 256 byte pieces, then `pieces`
/// with scores -1, -2, ... (llama2.c's layout; max_token_length 16).
inline void write_llama2c_tokenizer(const std::filesystem::path& path,
                                    const std::vector<std::string>& pieces) {
    std::ofstream f(path, std::ios::binary);
    auto put_i32 = [&](int32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
    auto put = [&](const std::string& s, float score) {
        f.write(reinterpret_cast<const char*>(&score), 4);
        put_i32(static_cast<int32_t>(s.size()));
        f.write(s.data(), static_cast<std::streamsize>(s.size()));
    };
    put_i32(16);
    put("<unk>", 0.0f);
    put("\n<s>\n", 0.0f);
    put("\n</s>\n", 0.0f);
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        put(buf, 0.0f);
    }
    for (size_t i = 0; i < pieces.size(); ++i) put(pieces[i], -static_cast<float>(i + 1));
}

}  // namespace palu::test
