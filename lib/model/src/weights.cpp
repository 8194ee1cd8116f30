// palu model: loading f32 weights per layer from a WeightSource, with shape checks.
#include "palu/model/weights.h"

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/palu_checkpoint.h"

namespace palu::model {

namespace {

Tensor load_checked(const WeightSource& src, const std::string& name,
                    const std::vector<int64_t>& expected) {
    Tensor t = src.load_f32(name);
    PALU_CHECK(t.shape() == expected, ShapeError,
               "model: %s: tensor '%s' has wrong shape; expected %s, got %s", src.path().c_str(),
               name.c_str(), shape_str(expected).c_str(), shape_str(t.shape()).c_str());
    return t;
}

Tensor load_optional(const WeightSource& src, const std::string& name,
                     const std::vector<int64_t>& expected, bool required) {
    if (!required && !src.has_tensor(name)) return Tensor();
    return load_checked(src, name, expected);
}

LowRankWeights load_low_rank(const WeightSource& src, const ModelConfig& c, int64_t layer,
                             formats::KvProj which, bool with_bias) {
    LowRankWeights lr;
    const std::string p = formats::kv_proj_prefix(layer, which);
    const std::string vt_name = formats::kv_vt_name(layer, which);
    lr.vt = src.load_f32(vt_name);
    PALU_CHECK(lr.vt.ndim() == 2 && lr.vt.dim(1) == c.d_model && lr.vt.dim(0) > 0, ShapeError,
               "model: %s: tensor '%s' has wrong shape; expected [sum of ranks, %lld], got %s",
               src.path().c_str(), vt_name.c_str(), static_cast<long long>(c.d_model),
               shape_str(lr.vt.shape()).c_str());
    int64_t total = 0;
    for (int64_t g = 0; src.has_tensor(formats::kv_u_name(layer, which, g)); ++g) {
        const std::string un = formats::kv_u_name(layer, which, g);
        Tensor u = src.load_f32(un);
        PALU_CHECK(u.ndim() == 2 && u.dim(1) > 0, ShapeError,
                   "model: %s: tensor '%s' has wrong shape; expected [s*d_head, r_g], got %s",
                   src.path().c_str(), un.c_str(), shape_str(u.shape()).c_str());
        if (g > 0)
            PALU_CHECK(u.dim(0) == lr.u[0].dim(0), ShapeError,
                       "model: %s: tensor '%s' has %lld rows, group 0 has %lld; expected equal "
                       "groups",
                       src.path().c_str(), un.c_str(), static_cast<long long>(u.dim(0)),
                       static_cast<long long>(lr.u[0].dim(0)));
        lr.ranks.push_back(u.dim(1));
        total += u.dim(1);
        const std::string bn = formats::kv_u_bias_name(layer, which, g);
        lr.bias.push_back(load_optional(src, bn, {u.dim(0)}, with_bias));
        lr.u.push_back(std::move(u));
    }
    PALU_CHECK(!lr.u.empty(), FormatError, "model: %s: '%s' exists but '%s.U.0.weight' is missing",
               src.path().c_str(), vt_name.c_str(), p.c_str());
    const int64_t rows = lr.u[0].dim(0);
    PALU_CHECK(rows % c.d_head == 0 && rows / c.d_head * lr.n_groups() == c.n_kv_heads, ShapeError,
               "model: %s: %s: %lld groups of %lld rows; expected groups of s*d_head rows covering "
               "num_key_value_heads=%lld x head_dim=%lld",
               src.path().c_str(), p.c_str(), static_cast<long long>(lr.n_groups()),
               static_cast<long long>(rows), static_cast<long long>(c.n_kv_heads),
               static_cast<long long>(c.d_head));
    lr.group_size = rows / c.d_head;
    PALU_CHECK(total == lr.vt.dim(0), ShapeError,
               "model: %s: tensor '%s' has %lld rows; expected the sum of the U.{g} ranks, %lld",
               src.path().c_str(), vt_name.c_str(), static_cast<long long>(lr.vt.dim(0)),
               static_cast<long long>(total));
    return lr;
}

}  // namespace

int64_t LowRankWeights::n_latent() const {
    int64_t n = 0;
    for (int64_t r : ranks) n += r;
    return n;
}

int64_t LowRankWeights::rank_offset(int64_t g) const {
    int64_t n = 0;
    for (int64_t i = 0; i < g; ++i) n += ranks[static_cast<size_t>(i)];
    return n;
}

int64_t LayerWeights::n_bytes() const {
    int64_t n = 0;
    for (const Tensor* t : {&attn_norm, &wq, &bq, &wk, &bk, &wv, &bv, &wo, &bo, &ffn_norm, &w_gate,
                            &w_up, &w_down, &w_kv_a, &kv_a_norm, &w_kv_b})
        n += t->numel();
    for (const LowRankWeights* lr : {&lk, &lv}) {
        n += lr->vt.numel();
        for (const Tensor& t : lr->u) n += t.numel();
        for (const Tensor& t : lr->bias) n += t.numel();
    }
    return n * static_cast<int64_t>(sizeof(float));
}

LayerWeights load_layer(const WeightSource& src, int64_t l) {
    const ModelConfig& c = src.config();
    const std::string p = strfmt("model.layers.%lld.", static_cast<long long>(l));
    const int64_t d = c.d_model, dq = c.d_q(), dkv = c.d_kv();
    LayerWeights w;
    w.attn_norm = load_checked(src, p + "input_layernorm.weight", {d});
    w.wq = load_checked(src, p + "self_attn.q_proj.weight", {dq, d});
    if (c.is_mla()) {
        const MlaConfig& m = *c.mla;
        const std::string a = p + "self_attn.";
        w.w_kv_a = load_checked(src, a + "kv_a_proj_with_mqa.weight",
                                {m.kv_lora_rank + m.qk_rope_head_dim, d});
        w.kv_a_norm = load_checked(src, a + "kv_a_layernorm.weight", {m.kv_lora_rank});
        w.w_kv_b = load_checked(src, a + "kv_b_proj.weight",
                                {c.n_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank});
        w.wo = load_checked(src, a + "o_proj.weight", {d, c.n_heads * m.v_head_dim});
    } else if (src.has_tensor(formats::kv_vt_name(l, formats::KvProj::K))) {
        w.lk = load_low_rank(src, c, l, formats::KvProj::K, c.qkv_bias);
        w.lv = load_low_rank(src, c, l, formats::KvProj::V, c.qkv_bias);
    } else {
        w.wk = load_checked(src, p + "self_attn.k_proj.weight", {dkv, d});
        w.wv = load_checked(src, p + "self_attn.v_proj.weight", {dkv, d});
        w.bk = load_optional(src, p + "self_attn.k_proj.bias", {dkv}, c.qkv_bias);
        w.bv = load_optional(src, p + "self_attn.v_proj.bias", {dkv}, c.qkv_bias);
    }
    if (!c.is_mla()) w.wo = load_checked(src, p + "self_attn.o_proj.weight", {d, dq});
    // Biases: required when the config says so, picked up when present otherwise.
    w.bq = load_optional(src, p + "self_attn.q_proj.bias", {dq}, c.qkv_bias);
    w.bo = load_optional(src, p + "self_attn.o_proj.bias", {d}, c.o_bias);
    w.ffn_norm = load_checked(src, p + "post_attention_layernorm.weight", {d});
    w.w_gate = load_checked(src, p + "mlp.gate_proj.weight", {c.d_ff, d});
    w.w_up = load_checked(src, p + "mlp.up_proj.weight", {c.d_ff, d});
    w.w_down = load_checked(src, p + "mlp.down_proj.weight", {d, c.d_ff});
    PALU_CHECK(!c.mlp_bias, UsageError, "model: %s: MLP biases (mlp_bias=true) are not supported",
               src.path().c_str());
    return w;
}

GlobalWeights load_globals(const WeightSource& src) {
    const ModelConfig& c = src.config();
    GlobalWeights g;
    g.embed = load_checked(src, "model.embed_tokens.weight", {c.n_vocab, c.d_model});
    g.final_norm = load_checked(src, "model.norm.weight", {c.d_model});
    // A stored lm_head is used even when tied (it then equals the embeddings).
    if (src.has_tensor("lm_head.weight"))
        g.lm_head = load_checked(src, "lm_head.weight", {c.n_vocab, c.d_model});
    else
        PALU_CHECK(c.tie_word_embeddings, FormatError,
                   "model: %s: tensor 'lm_head.weight' is missing and tie_word_embeddings is false",
                   src.path().c_str());
    return g;
}

ModelWeights::ModelWeights(const WeightSource& src, Residency residency)
    : src_(&src), config_(src.config()), residency_(residency) {
    config_.validate(src.path());
    globals_ = load_globals(src);
    if (residency_ == Residency::Resident) {
        layers_.reserve(static_cast<size_t>(config_.n_layers));
        for (int64_t l = 0; l < config_.n_layers; ++l)
            layers_.push_back(std::make_shared<const LayerWeights>(load_layer(src, l)));
    }
}

std::shared_ptr<const LayerWeights> ModelWeights::layer(int64_t l) const {
    PALU_ASSERT(l >= 0 && l < config_.n_layers);
    if (residency_ == Residency::Resident) return layers_[static_cast<size_t>(l)];
    return std::make_shared<const LayerWeights>(load_layer(*src_, l));
}

}  // namespace palu::model
