// palu tests: tiny random checkpoint writer (uses the formats writer under test elsewhere); the
// weights come from palu::model::make_random_weights, the project's one random model generator.
#include "tiny_model.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "palu/core/error.h"
#include "palu/formats/hf_model.h"
#include "palu/formats/safetensors.h"
#include "palu/model/random_weights.h"

namespace palu::test {

model::RandomWeightsOptions tiny_weight_options(const TinyConfig& t) {
    model::RandomWeightsOptions o;
    o.seed = t.seed;
    o.embed_std = 0.0;  // fan-in 1/√d_model, as the linear weights
    o.lm_head_std = 0.0;
    o.norm_std = 0.1;
    o.bias_std = 0.02;
    return o;
}

ModelConfig write_tiny_checkpoint(const std::filesystem::path& dir, const TinyConfig& t) {
    ModelConfig c;
    c.architecture = t.qkv_bias ? "qwen2" : "llama";
    c.d_model = t.d_model;
    c.n_layers = t.n_layers;
    c.n_heads = t.n_heads;
    c.n_kv_heads = t.n_kv_heads;
    c.d_head = t.d_head;
    c.d_ff = t.d_ff;
    c.n_vocab = t.n_vocab;
    c.max_position_embeddings = 256;
    c.rms_norm_eps = t.rms_norm_eps;
    c.rope_theta = t.rope_theta;
    c.tie_word_embeddings = t.tie_word_embeddings;
    c.qkv_bias = t.qkv_bias;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    c.validate("tiny_model");

    // Stored tensors are exactly the ones formats expects of a dense checkpoint, in its order.
    const auto random = model::make_random_weights(c, tiny_weight_options(t));
    std::vector<std::vector<uint8_t>> storage;
    std::vector<formats::TensorToWrite> tensors;
    for (const auto& e : formats::expected_hf_tensors(c, !c.tie_word_embeddings)) {
        const Tensor w = random->load_f32(e.name);
        PALU_ASSERT(w.shape() == e.shape);
        const int64_t n = w.numel();
        std::vector<uint8_t> bytes(static_cast<size_t>(n) * dtype_size(t.dtype));
        for (int64_t i = 0; i < n; ++i) {
            const float v = w.data()[i];
            switch (t.dtype) {
                case DType::F32: std::memcpy(bytes.data() + 4 * i, &v, 4); break;
                case DType::F16: {
                    uint16_t h = f32_to_f16(v);
                    std::memcpy(bytes.data() + 2 * i, &h, 2);
                    break;
                }
                case DType::BF16: {
                    uint16_t h = f32_to_bf16(v);
                    std::memcpy(bytes.data() + 2 * i, &h, 2);
                    break;
                }
                default:
                    PALU_THROW(UsageError, "tiny_model: dtype %s not supported",
                               dtype_name(t.dtype));
            }
        }
        storage.push_back(std::move(bytes));
        tensors.push_back({e.name, t.dtype, e.shape, storage.back()});
    }

    nlohmann::json j = {
        {"architectures", {t.qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
        {"model_type", c.architecture},
        {"hidden_size", c.d_model},
        {"intermediate_size", c.d_ff},
        {"num_hidden_layers", c.n_layers},
        {"num_attention_heads", c.n_heads},
        {"num_key_value_heads", c.n_kv_heads},
        {"head_dim", c.d_head},
        {"vocab_size", c.n_vocab},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rms_norm_eps", c.rms_norm_eps},
        {"rope_theta", c.rope_theta},
        {"rope_scaling", nullptr},
        {"hidden_act", "silu"},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"bos_token_id", c.bos_token_id},
        {"eos_token_id", c.eos_token_ids.front()},
        {"torch_dtype", t.dtype == DType::F32   ? "float32"
                        : t.dtype == DType::F16 ? "float16"
                                                : "bfloat16"},
    };
    if (!t.qkv_bias) j["attention_bias"] = false;
    std::filesystem::create_directories(dir);
    formats::write_safetensors(dir, std::move(tensors),
                               {{"format", "pt"}, {"source", "palu tiny_model"}},
                               t.max_shard_bytes);
    std::ofstream f(dir / "config.json");
    f << j.dump(2) << "\n";
    PALU_CHECK(f.good(), IoError, "tiny_model: cannot write %s",
               (dir / "config.json").string().c_str());
    return c;
}

}  // namespace palu::test
