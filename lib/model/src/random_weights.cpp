// palu model: seeded random weights (benchmarks, tests).
#include "palu/model/random_weights.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "palu/core/error.h"
#include "palu/core/format.h"

namespace palu::model {

namespace {

class RandomWeightSource final : public WeightSource {
   public:
    RandomWeightSource(const ModelConfig& c, uint64_t seed) : c_(c), seed_(seed) {
        const int64_t d = c.d_model;
        add("model.embed_tokens.weight", {c.n_vocab, d});
        add("model.norm.weight", {d});
        if (!c.tie_word_embeddings) add("lm_head.weight", {c.n_vocab, d});
        for (int64_t l = 0; l < c.n_layers; ++l) {
            const std::string p = strfmt("model.layers.%lld.", static_cast<long long>(l));
            add(p + "input_layernorm.weight", {d});
            add(p + "post_attention_layernorm.weight", {d});
            add(p + "self_attn.q_proj.weight", {c.d_q(), d});
            add(p + "self_attn.k_proj.weight", {c.d_kv(), d});
            add(p + "self_attn.v_proj.weight", {c.d_kv(), d});
            add(p + "self_attn.o_proj.weight", {d, c.d_q()});
            if (c.qkv_bias) {
                add(p + "self_attn.q_proj.bias", {c.d_q()});
                add(p + "self_attn.k_proj.bias", {c.d_kv()});
                add(p + "self_attn.v_proj.bias", {c.d_kv()});
            }
            add(p + "mlp.gate_proj.weight", {c.d_ff, d});
            add(p + "mlp.up_proj.weight", {c.d_ff, d});
            add(p + "mlp.down_proj.weight", {d, c.d_ff});
        }
        std::sort(infos_.begin(), infos_.end(),
                  [](const auto& a, const auto& b) { return a.name < b.name; });
    }
    const ModelConfig& config() const override { return c_; }
    std::string format_name() const override { return "random"; }
    std::string path() const override { return "<random>"; }
    std::vector<StoredTensorInfo> tensors() const override { return infos_; }
    bool has_tensor(const std::string& name) const override { return find(name) != nullptr; }
    Tensor load_f32(const std::string& name) const override {
        const StoredTensorInfo* info = find(name);
        PALU_CHECK(info, FormatError, "model: random weights: no tensor '%s'", name.c_str());
        Tensor t(info->shape);
        std::mt19937_64 rng(seed_ ^ std::hash<std::string>{}(name));
        std::normal_distribution<float> nd(0.0f, 1.0f);
        const bool is_norm = info->shape.size() == 1 && name.find("norm") != std::string::npos;
        const float scale = info->shape.size() == 2 && name.find("embed") == std::string::npos
                                ? 1.0f / std::sqrt(static_cast<float>(info->shape[1]))
                                : (is_norm ? 0.05f : 1.0f);
        for (float& v : t.vec()) v = (is_norm ? 1.0f : 0.0f) + scale * nd(rng);
        return t;
    }

   private:
    void add(const std::string& name, std::vector<int64_t> shape) {
        int64_t n = 1;
        for (auto s : shape) n *= s;
        infos_.push_back({name, std::move(shape), "F32", static_cast<uint64_t>(n) * 4});
    }
    const StoredTensorInfo* find(const std::string& name) const {
        auto it = std::lower_bound(infos_.begin(), infos_.end(), name,
                                   [](const auto& a, const std::string& b) { return a.name < b; });
        return it != infos_.end() && it->name == name ? &*it : nullptr;
    }
    ModelConfig c_;
    uint64_t seed_;
    std::vector<StoredTensorInfo> infos_;
};

}  // namespace

std::unique_ptr<WeightSource> make_random_weights(const ModelConfig& config, uint64_t seed) {
    config.validate("<random>");
    return std::make_unique<RandomWeightSource>(config, seed);
}

ModelConfig smollm2_135m_config() {
    ModelConfig c;
    c.architecture = "llama";
    c.d_model = 576;
    c.n_layers = 30;
    c.n_heads = 9;
    c.n_kv_heads = 3;
    c.d_head = 64;
    c.d_ff = 1536;
    c.n_vocab = 49152;
    c.max_position_embeddings = 8192;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 100000.0;
    c.tie_word_embeddings = true;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
}

}  // namespace palu::model
