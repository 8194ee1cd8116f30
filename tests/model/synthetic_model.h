// palu tests: synthetic Llama-family models held in memory (weights from the one random generator,
// palu::model::make_random_weights), and an independent slow reference implementation (naive
// loops, double precision) of the same forward pass and loss.
// The reference follows the Hugging Face LlamaModel equations directly; it shares no code with
// lib/model (its own RoPE, norm, attention, softmax), so agreement checks the engine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/weight_source.h"
#include "palu/model/random_weights.h"

namespace palu::test {

/// A WeightSource over tensors in memory.
class MemoryWeightSource : public WeightSource {
   public:
    ModelConfig cfg;
    std::map<std::string, Tensor> tensors_by_name;

    const ModelConfig& config() const override { return cfg; }
    std::string format_name() const override { return "memory"; }
    std::string path() const override { return "<memory>"; }
    std::vector<StoredTensorInfo> tensors() const override {
        std::vector<StoredTensorInfo> out;
        for (const auto& [name, t] : tensors_by_name)
            out.push_back({name, t.shape(), "F32", static_cast<uint64_t>(t.numel()) * 4});
        return out;
    }
    bool has_tensor(const std::string& name) const override {
        return tensors_by_name.count(name) > 0;
    }
    Tensor load_f32(const std::string& name) const override {
        auto it = tensors_by_name.find(name);
        PALU_CHECK(it != tensors_by_name.end(), FormatError, "memory: no tensor '%s'",
                   name.c_str());
        return it->second;
    }
};

struct SynthSpec {
    int64_t n_layers = 2, d_model = 64, n_heads = 4, n_kv_heads = 2, d_head = 16, d_ff = 96;
    int64_t n_vocab = 97;
    bool qkv_bias = false, tied = true;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;
    uint32_t seed = 1;
    float weight_scale = 0.7f;  // gain of o_proj / down_proj (residual branches)
};

/// The distributions the engine-vs-reference comparisons are tuned for: linear weights
/// ~ N(0, gain² / n_in) (fan-in scaling) with gains q/k 1.5, v 1.0, gate/up 1.0 and
/// `weight_scale` for the residual branches keep activations and logits O(1-10), so the
/// comparisons measure the engine, not the conditioning of a random network; embeddings and lm_head
/// ~ N(0, 0.5²), norms ~ 1 + N(0, 0.1²), biases ~ N(0, 0.3²).
inline model::RandomWeightsOptions synthetic_weight_options(const SynthSpec& s) {
    model::RandomWeightsOptions o;
    o.seed = s.seed;
    o.embed_std = 0.5;
    o.lm_head_std = 0.5;
    o.norm_std = 0.1;
    o.bias_std = 0.3;
    o.qk_gain = 1.5;
    o.v_gain = 1.0;
    o.residual_gain = s.weight_scale;
    o.mlp_gain = 1.0;
    return o;
}

/// The model of `s` in memory, its tensors from palu::model::make_random_weights.
inline MemoryWeightSource make_synthetic_model(const SynthSpec& s) {
    MemoryWeightSource m;
    ModelConfig& c = m.cfg;
    c.d_model = s.d_model;
    c.n_layers = s.n_layers;
    c.n_heads = s.n_heads;
    c.n_kv_heads = s.n_kv_heads;
    c.d_head = s.d_head;
    c.d_ff = s.d_ff;
    c.n_vocab = s.n_vocab;
    c.max_position_embeddings = 4096;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = s.rope_theta;
    c.rope_scaling = s.rope_scaling;
    c.tie_word_embeddings = s.tied;
    c.qkv_bias = s.qkv_bias;
    const auto random = model::make_random_weights(c, synthetic_weight_options(s));
    for (const StoredTensorInfo& info : random->tensors())
        m.tensors_by_name[info.name] = random->load_f32(info.name);
    return m;
}

/// The model's weights in double, by HF name (the reference's own copy, so tests can perturb it).
using RefWeights = std::map<std::string, std::vector<double>>;

inline RefWeights to_ref_weights(const MemoryWeightSource& m) {
    RefWeights w;
    for (const auto& [name, t] : m.tensors_by_name)
        w[name] = std::vector<double>(t.vec().begin(), t.vec().end());
    return w;
}

/// inv_freq in double, scaled as transformers does (default, linear, llama3).
inline std::vector<double> ref_inv_freq(const ModelConfig& c) {
    std::vector<double> f(static_cast<size_t>(c.d_head / 2));
    for (size_t i = 0; i < f.size(); ++i)
        f[i] = 1.0 /
               std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(c.d_head));
    const RopeScaling& r = c.rope_scaling;
    for (double& x : f) {
        if (r.type == "linear") {
            x /= r.factor;
        } else if (r.type == "llama3") {
            const double wavelen = 2 * M_PI / x;
            const double lo_w = r.original_max_position_embeddings / r.low_freq_factor;
            const double hi_w = r.original_max_position_embeddings / r.high_freq_factor;
            if (wavelen > lo_w) {
                x /= r.factor;
            } else if (wavelen >= hi_w) {
                const double sm =
                    (r.original_max_position_embeddings / wavelen - r.low_freq_factor) /
                    (r.high_freq_factor - r.low_freq_factor);
                x = (1 - sm) * x / r.factor + sm * x;
            }
        }
    }
    return f;
}

/// Reference forward of one sequence: logits [n][n_vocab] in double.
inline std::vector<std::vector<double>> ref_forward(const ModelConfig& c, const RefWeights& W,
                                                    const std::vector<int32_t>& toks) {
    const int64_t n = static_cast<int64_t>(toks.size()), d = c.d_model, dh = c.d_head;
    const int64_t H = c.n_heads, G = c.n_heads / c.n_kv_heads, dq = H * dh, dkv = c.n_kv_heads * dh;
    auto get = [&](const std::string& k) -> const std::vector<double>& { return W.at(k); };
    auto has = [&](const std::string& k) { return W.count(k) > 0; };
    // y[t][o] = Σ_i x[t][i] w[o][i] (+ b[o])
    auto linear = [&](const std::vector<std::vector<double>>& x, const std::string& name,
                      int64_t n_out, int64_t n_in, const std::string& bias) {
        const auto& w = get(name);
        std::vector<std::vector<double>> y(x.size(),
                                           std::vector<double>(static_cast<size_t>(n_out)));
        for (size_t t = 0; t < x.size(); ++t)
            for (int64_t o = 0; o < n_out; ++o) {
                double s = has(bias) ? get(bias)[static_cast<size_t>(o)] : 0.0;
                for (int64_t i = 0; i < n_in; ++i)
                    s += x[t][static_cast<size_t>(i)] * w[static_cast<size_t>(o * n_in + i)];
                y[t][static_cast<size_t>(o)] = s;
            }
        return y;
    };
    auto rmsnorm = [&](const std::vector<std::vector<double>>& x, const std::string& name) {
        const auto& w = get(name);
        auto y = x;
        for (auto& row : y) {
            double ss = 0;
            for (double v : row) ss += v * v;
            const double r = 1.0 / std::sqrt(ss / static_cast<double>(d) + c.rms_norm_eps);
            for (size_t i = 0; i < row.size(); ++i) row[i] = row[i] * r * w[i];
        }
        return y;
    };
    const auto inv_freq = ref_inv_freq(c);
    auto rope = [&](std::vector<std::vector<double>>& x, int64_t n_h) {
        for (int64_t t = 0; t < n; ++t)
            for (int64_t h = 0; h < n_h; ++h)
                for (int64_t i = 0; i < dh / 2; ++i) {
                    const double a = static_cast<double>(t) * inv_freq[static_cast<size_t>(i)];
                    double& x1 = x[static_cast<size_t>(t)][static_cast<size_t>(h * dh + i)];
                    double& x2 =
                        x[static_cast<size_t>(t)][static_cast<size_t>(h * dh + i + dh / 2)];
                    const double u = x1, v = x2;
                    x1 = u * std::cos(a) - v * std::sin(a);
                    x2 = v * std::cos(a) + u * std::sin(a);
                }
    };
    std::vector<std::vector<double>> x(static_cast<size_t>(n));
    const auto& emb = get("model.embed_tokens.weight");
    for (int64_t t = 0; t < n; ++t)
        x[static_cast<size_t>(t)].assign(emb.begin() + toks[static_cast<size_t>(t)] * d,
                                         emb.begin() + (toks[static_cast<size_t>(t)] + 1) * d);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string p = strfmt("model.layers.%lld.", static_cast<long long>(l));
        auto xn = rmsnorm(x, p + "input_layernorm.weight");
        auto q = linear(xn, p + "self_attn.q_proj.weight", dq, d, p + "self_attn.q_proj.bias");
        auto k = linear(xn, p + "self_attn.k_proj.weight", dkv, d, p + "self_attn.k_proj.bias");
        auto v = linear(xn, p + "self_attn.v_proj.weight", dkv, d, p + "self_attn.v_proj.bias");
        rope(q, H);
        rope(k, c.n_kv_heads);
        std::vector<std::vector<double>> o(static_cast<size_t>(n),
                                           std::vector<double>(static_cast<size_t>(dq), 0.0));
        for (int64_t h = 0; h < H; ++h) {
            const int64_t g = h / G;
            for (int64_t i = 0; i < n; ++i) {
                std::vector<double> s(static_cast<size_t>(i + 1));
                double mx = -1e300;
                for (int64_t j = 0; j <= i; ++j) {
                    double dot = 0;
                    for (int64_t e = 0; e < dh; ++e)
                        dot += q[static_cast<size_t>(i)][static_cast<size_t>(h * dh + e)] *
                               k[static_cast<size_t>(j)][static_cast<size_t>(g * dh + e)];
                    s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(dh));
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                }
                double z = 0;
                for (double& e : s) z += (e = std::exp(e - mx));
                for (int64_t j = 0; j <= i; ++j)
                    for (int64_t e = 0; e < dh; ++e)
                        o[static_cast<size_t>(i)][static_cast<size_t>(h * dh + e)] +=
                            s[static_cast<size_t>(j)] / z *
                            v[static_cast<size_t>(j)][static_cast<size_t>(g * dh + e)];
            }
        }
        auto ao = linear(o, p + "self_attn.o_proj.weight", d, dq, p + "self_attn.o_proj.bias");
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < d; ++i)
                x[static_cast<size_t>(t)][static_cast<size_t>(i)] +=
                    ao[static_cast<size_t>(t)][static_cast<size_t>(i)];
        auto hn = rmsnorm(x, p + "post_attention_layernorm.weight");
        auto gt = linear(hn, p + "mlp.gate_proj.weight", c.d_ff, d, "");
        auto up = linear(hn, p + "mlp.up_proj.weight", c.d_ff, d, "");
        for (size_t t = 0; t < gt.size(); ++t)
            for (size_t i = 0; i < gt[t].size(); ++i)
                gt[t][i] = gt[t][i] / (1.0 + std::exp(-gt[t][i])) * up[t][i];
        auto dn = linear(gt, p + "mlp.down_proj.weight", d, c.d_ff, "");
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < d; ++i)
                x[static_cast<size_t>(t)][static_cast<size_t>(i)] +=
                    dn[static_cast<size_t>(t)][static_cast<size_t>(i)];
    }
    auto xf = rmsnorm(x, "model.norm.weight");
    const std::string head = has("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
    return linear(xf, head, c.n_vocab, d, "");
}

/// Reference mean next-token NLL with label shift `shift` (t predicts t + shift).
inline double ref_loss(const ModelConfig& c, const RefWeights& W, const std::vector<int32_t>& toks,
                       int64_t shift) {
    auto logits = ref_forward(c, W, toks);
    const int64_t n_pred = static_cast<int64_t>(toks.size()) - shift;
    double total = 0;
    for (int64_t t = 0; t < n_pred; ++t) {
        const auto& row = logits[static_cast<size_t>(t)];
        const double mx = *std::max_element(row.begin(), row.end());
        double z = 0;
        for (double v : row) z += std::exp(v - mx);
        total += std::log(z) + mx - row[static_cast<size_t>(toks[static_cast<size_t>(t + shift)])];
    }
    return total / static_cast<double>(n_pred);
}

inline std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> u(0, static_cast<int32_t>(n_vocab - 1));
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& v : t) v = u(rng);
    return t;
}

}  // namespace palu::test
