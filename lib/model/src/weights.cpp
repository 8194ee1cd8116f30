// palu model: loading f32 weights per layer from a WeightSource, with shape checks.
#include "palu/model/weights.h"

#include "palu/core/error.h"
#include "palu/core/format.h"

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

}  // namespace

int64_t LayerWeights::n_bytes() const {
    int64_t n = 0;
    for (const Tensor* t :
         {&attn_norm, &wq, &bq, &wk, &bk, &wv, &bv, &wo, &bo, &ffn_norm, &w_gate, &w_up, &w_down})
        n += t->numel() * static_cast<int64_t>(sizeof(float));
    return n;
}

LayerWeights load_layer(const WeightSource& src, int64_t l) {
    const ModelConfig& c = src.config();
    const std::string p = strfmt("model.layers.%lld.", static_cast<long long>(l));
    const int64_t d = c.d_model, dq = c.d_q(), dkv = c.d_kv();
    LayerWeights w;
    w.attn_norm = load_checked(src, p + "input_layernorm.weight", {d});
    w.wq = load_checked(src, p + "self_attn.q_proj.weight", {dq, d});
    w.wk = load_checked(src, p + "self_attn.k_proj.weight", {dkv, d});
    w.wv = load_checked(src, p + "self_attn.v_proj.weight", {dkv, d});
    w.wo = load_checked(src, p + "self_attn.o_proj.weight", {d, dq});
    // Biases: required when the config says so, picked up when present otherwise.
    w.bq = load_optional(src, p + "self_attn.q_proj.bias", {dq}, c.qkv_bias);
    w.bk = load_optional(src, p + "self_attn.k_proj.bias", {dkv}, c.qkv_bias);
    w.bv = load_optional(src, p + "self_attn.v_proj.bias", {dkv}, c.qkv_bias);
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
