// palu model: seeded random weights (benchmarks, tests).
// Each tensor has its own generator seeded from (seed, name), so a tensor's values do not depend
// on the set of tensors of the model or on the order of the loads.
#include "palu/model/random_weights.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "palu/core/error.h"
#include "palu/core/format.h"

namespace palu::model {

namespace {

// What a tensor is, for its distribution.
enum class Kind { Embed, LmHead, Norm, Bias, QK, V, Residual, Mlp };

// FNV-1a over the name, then splitmix64 over name hash + seed: a per-tensor seed that is the same
// with every standard library (std::hash is not) and differs for nearby seeds.
uint64_t tensor_seed(uint64_t seed, const std::string& name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
    uint64_t z = h + seed * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

class RandomWeightSource final : public WeightSource {
   public:
    RandomWeightSource(const ModelConfig& c, const RandomWeightsOptions& o) : c_(c), o_(o) {
        const int64_t d = c.d_model;
        add("model.embed_tokens.weight", {c.n_vocab, d}, Kind::Embed);
        add("model.norm.weight", {d}, Kind::Norm);
        if (!c.tie_word_embeddings) add("lm_head.weight", {c.n_vocab, d}, Kind::LmHead);
        for (int64_t l = 0; l < c.n_layers; ++l) {
            const std::string p = strfmt("model.layers.%lld.", static_cast<long long>(l));
            add(p + "input_layernorm.weight", {d}, Kind::Norm);
            add(p + "post_attention_layernorm.weight", {d}, Kind::Norm);
            add(p + "self_attn.q_proj.weight", {c.d_q(), d}, Kind::QK);
            if (c.is_mla()) {  // DeepSeek-V3 MLA (model_config.h MlaConfig shapes)
                const MlaConfig& m = *c.mla;
                const int64_t r = m.kv_lora_rank;
                add(p + "self_attn.kv_a_proj_with_mqa.weight", {r + m.qk_rope_head_dim, d},
                    Kind::QK);
                add(p + "self_attn.kv_a_layernorm.weight", {r}, Kind::Norm);
                add(p + "self_attn.kv_b_proj.weight",
                    {c.n_heads * (m.qk_nope_head_dim + m.v_head_dim), r}, Kind::V);
                add(p + "self_attn.o_proj.weight", {d, c.n_heads * m.v_head_dim}, Kind::Residual);
            } else {
                add(p + "self_attn.k_proj.weight", {c.d_kv(), d}, Kind::QK);
                add(p + "self_attn.v_proj.weight", {c.d_kv(), d}, Kind::V);
                add(p + "self_attn.o_proj.weight", {d, c.d_q()}, Kind::Residual);
            }
            if (c.qkv_bias) {
                add(p + "self_attn.q_proj.bias", {c.d_q()}, Kind::Bias);
                add(p + "self_attn.k_proj.bias", {c.d_kv()}, Kind::Bias);
                add(p + "self_attn.v_proj.bias", {c.d_kv()}, Kind::Bias);
            }
            if (c.o_bias) add(p + "self_attn.o_proj.bias", {d}, Kind::Bias);
            add(p + "mlp.gate_proj.weight", {c.d_ff, d}, Kind::Mlp);
            add(p + "mlp.up_proj.weight", {c.d_ff, d}, Kind::Mlp);
            add(p + "mlp.down_proj.weight", {d, c.d_ff}, Kind::Residual);
            if (c.mlp_bias) {
                add(p + "mlp.gate_proj.bias", {c.d_ff}, Kind::Bias);
                add(p + "mlp.up_proj.bias", {c.d_ff}, Kind::Bias);
                add(p + "mlp.down_proj.bias", {d}, Kind::Bias);
            }
        }
        std::sort(entries_.begin(), entries_.end(),
                  [](const Entry& a, const Entry& b) { return a.info.name < b.info.name; });
    }
    const ModelConfig& config() const override { return c_; }
    std::string format_name() const override { return "random"; }
    std::string path() const override { return "<random>"; }
    std::vector<StoredTensorInfo> tensors() const override {
        std::vector<StoredTensorInfo> out;
        for (const Entry& e : entries_) out.push_back(e.info);
        return out;
    }
    bool has_tensor(const std::string& name) const override { return find(name) != nullptr; }
    Tensor load_f32(const std::string& name) const override {
        const Entry* e = find(name);
        PALU_CHECK(e, FormatError, "model: random weights: no tensor '%s'", name.c_str());
        const StoredTensorInfo& info = e->info;
        const Kind kind = e->kind;
        const double fan_in = 1.0 / std::sqrt(static_cast<double>(info.shape.back()));
        double mean = 0.0, stddev = 0.0;
        switch (kind) {
            case Kind::Embed: stddev = o_.embed_std > 0 ? o_.embed_std : fan_in; break;
            case Kind::LmHead: stddev = o_.lm_head_std > 0 ? o_.lm_head_std : fan_in; break;
            case Kind::Norm:
                mean = 1.0;
                stddev = o_.norm_std;
                break;
            case Kind::Bias: stddev = o_.bias_std; break;
            case Kind::QK: stddev = o_.qk_gain * fan_in; break;
            case Kind::V: stddev = o_.v_gain * fan_in; break;
            case Kind::Residual: stddev = o_.residual_gain * fan_in; break;
            case Kind::Mlp: stddev = o_.mlp_gain * fan_in; break;
        }
        Tensor t(info.shape);
        std::mt19937_64 rng(tensor_seed(o_.seed, name));
        std::normal_distribution<double> nd(0.0, 1.0);
        for (float& v : t.vec()) v = static_cast<float>(mean + stddev * nd(rng));
        return t;
    }

   private:
    struct Entry {
        StoredTensorInfo info;
        Kind kind;
    };
    void add(const std::string& name, std::vector<int64_t> shape, Kind kind) {
        int64_t n = 1;
        for (auto s : shape) n *= s;
        entries_.push_back({{name, std::move(shape), "F32", static_cast<uint64_t>(n) * 4}, kind});
    }
    const Entry* find(const std::string& name) const {
        auto it =
            std::lower_bound(entries_.begin(), entries_.end(), name,
                             [](const Entry& a, const std::string& b) { return a.info.name < b; });
        return it != entries_.end() && it->info.name == name ? &*it : nullptr;
    }
    ModelConfig c_;
    RandomWeightsOptions o_;
    std::vector<Entry> entries_;  // sorted by name
};

}  // namespace

std::unique_ptr<WeightSource> make_random_weights(const ModelConfig& config,
                                                  const RandomWeightsOptions& options) {
    config.validate("<random>");
    return std::make_unique<RandomWeightSource>(config, options);
}

std::unique_ptr<WeightSource> make_random_weights(const ModelConfig& config, uint64_t seed) {
    RandomWeightsOptions o;
    o.seed = seed;
    return make_random_weights(config, o);
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
