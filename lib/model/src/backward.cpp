// palu model: backward pass of a window's mean next-token cross-entropy down to k_proj / v_proj.
// Only activation gradients flow through the other weights; weight gradients are formed for
// k_proj and v_proj alone (what Fisher-based rank allocation needs, Palu §3.3). Attention
// probabilities are recomputed from the kept post-RoPE q and the cached K instead of stored
// ([n_heads, n, n] per layer would not fit at n = 2048).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "activations.h"
#include "ops.h"
#include "palu/core/error.h"
#include "palu/model/transformer.h"

namespace palu::model {

namespace {

// y = w ∘ x · r, r = (mean(x²) + eps)^(-1/2):
// dx = r (w ∘ dy) - x r³ / d · Σ_i dy_i w_i x_i. Accumulates into dx (dx += ...).
void rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, int64_t n_rows,
                       int64_t d, double eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * d;
        const float* dyr = dy + r * d;
        float* dxr = dx + r * d;
        double ss = 0.0, dot = 0.0;
        for (int64_t i = 0; i < d; ++i) {
            ss += static_cast<double>(xr[i]) * xr[i];
            dot += static_cast<double>(dyr[i]) * w[i] * xr[i];
        }
        const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
        const double c = inv * inv * inv * dot / static_cast<double>(d);
        for (int64_t i = 0; i < d; ++i)
            dxr[i] += static_cast<float>(inv * w[i] * dyr[i] - c * xr[i]);
    }
}

// What the forward of kv_gradients keeps for the backward: the dense cache (post-RoPE K and V of
// every layer), each layer's activations, the final residual stream and the logits.
struct KeptForward {
    KvCache cache;
    std::vector<LayerActivations> acts;  // n_layers
    Tensor x;                            // [n, d_model] input of the final norm
    Tensor logits;                       // [n, n_vocab]
};

KeptForward forward_keeping_activations(const Transformer& m, const int32_t* tokens, int64_t n) {
    const ModelConfig& c = m.config();
    std::vector<std::unique_ptr<KvLayerCache>> layers;
    for (int64_t l = 0; l < c.n_layers; ++l)
        layers.push_back(std::make_unique<DenseKvLayerCache>(c, 1, n));
    KeptForward f{KvCache(std::move(layers), 1, n),
                  std::vector<LayerActivations>(static_cast<size_t>(c.n_layers)),
                  m.embed(tokens, n), Tensor()};
    for (int64_t l = 0; l < c.n_layers; ++l) {
        auto w = m.weights().layer(l);
        m.forward_layer(l, *w, f.x, 1, f.cache.layer(l), &f.acts[static_cast<size_t>(l)]);
    }
    f.logits = m.head(f.x);
    return f;
}

// dL/dlogits = (softmax - onehot(target)) / n_pred for the predicted positions t < n_pred, with
// target tokens[t + k_shift]; rows from n_pred on are left as they are (zero). Writes dlogits
// [n, n_vocab] and returns the mean NLL (nats) of the predicted positions.
double logits_gradient(const float* logits, const int32_t* tokens, int64_t n_pred, int64_t k_shift,
                       int64_t v, float* dlogits) {
    double loss = 0.0;
    for (int64_t t = 0; t < n_pred; ++t) {
        const float* row = logits + t * v;
        float* drow = dlogits + t * v;
        float mx = row[0];
        for (int64_t i = 1; i < v; ++i) mx = std::max(mx, row[i]);
        for (int64_t i = 0; i < v; ++i) drow[i] = row[i] - mx;
        ops::exp_inplace(drow, v);
        double sum = 0.0;
        for (int64_t i = 0; i < v; ++i) sum += drow[i];
        const int32_t y = tokens[t + k_shift];
        loss += std::log(sum) + mx - row[y];
        const float inv = static_cast<float>(1.0 / (sum * static_cast<double>(n_pred)));
        for (int64_t i = 0; i < v; ++i) drow[i] *= inv;
        drow[y] -= 1.0f / static_cast<float>(n_pred);
    }
    return loss / static_cast<double>(n_pred);
}

// Through the head and the final norm: dx_final = rmsnorm'(x, dlogits · W_head). Returns the
// gradient of the final residual stream x [n, d_model].
std::vector<float> head_backward(const ModelConfig& c, const GlobalWeights& g, const Tensor& x,
                                 const std::vector<float>& dlogits, int64_t n) {
    const int64_t d = c.d_model, v = c.n_vocab;
    std::vector<float> dxn(static_cast<size_t>(n * d));  // [n, d_model]
    ops::gemm_nn(n, d, v, dlogits.data(), v, g.head().data(), d, dxn.data(), d);
    std::vector<float> dx(static_cast<size_t>(n * d), 0.0f);  // [n, d_model] grad of residual
    rms_norm_backward(x.data(), g.final_norm.data(), dxn.data(), dx.data(), n, d, c.rms_norm_eps);
    return dx;
}

// MLP: out = h + act · W_downᵀ, act = silu(gate) ∘ up. From dx (grad of the layer output
// [n, d_model]) returns the grad of h [n, d_model]: the residual path plus the norm path.
std::vector<float> mlp_backward(const ModelConfig& c, const LayerWeights& w,
                                const LayerActivations& a, const std::vector<float>& dx,
                                int64_t n) {
    const int64_t d = c.d_model, f = c.d_ff;
    std::vector<float> dact(static_cast<size_t>(n * f));  // [n, d_ff]
    ops::gemm_nn(n, f, d, dx.data(), d, w.w_down.data(), f, dact.data(), f);
    std::vector<float> dgate(static_cast<size_t>(n * f)), dup(static_cast<size_t>(n * f));
    for (int64_t i = 0; i < n * f; ++i) {
        const float gt = a.gate[static_cast<size_t>(i)];
        const float sg = 1.0f / (1.0f + std::exp(-gt));
        dup[static_cast<size_t>(i)] = dact[static_cast<size_t>(i)] * gt * sg;
        dgate[static_cast<size_t>(i)] = dact[static_cast<size_t>(i)] *
                                        a.up[static_cast<size_t>(i)] * sg *
                                        (1.0f + gt * (1.0f - sg));
    }
    std::vector<float> dhn(static_cast<size_t>(n * d));  // [n, d_model]
    ops::gemm_nn(n, d, f, dgate.data(), f, w.w_gate.data(), d, dhn.data(), d);
    ops::gemm_nn(n, d, f, dup.data(), f, w.w_up.data(), d, dhn.data(), d, 1.0f);
    std::vector<float> dhres = dx;
    rms_norm_backward(a.h.data(), w.ffn_norm.data(), dhn.data(), dhres.data(), n, d,
                      c.rms_norm_eps);
    return dhres;
}

// Gradients of one layer's q/k/v_proj outputs (pre-RoPE, as the projections produce them).
struct QkvGradients {
    std::vector<float> dq;  // [n, n_heads*d_head]
    std::vector<float> dk;  // [n, n_kv*d_head]
    std::vector<float> dv;  // [n, n_kv*d_head]
};

// Attention: h = x_in + attn · W_oᵀ. From dh (grad of h [n, d_model]) returns the gradients of
// q, k and v, recomputing each head's probabilities P from the kept q and the cached K.
QkvGradients attention_backward(const ModelConfig& c, const Rope& rope, const LayerWeights& w,
                                const LayerActivations& a, KvLayerCache& lc,
                                const std::vector<float>& dh_res, int64_t n) {
    const int64_t d = c.d_model, dq = c.d_q(), dkv = c.d_kv(), dh = c.d_head;
    const int64_t group = c.n_heads / c.n_kv_heads;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
    std::vector<float> dattn(static_cast<size_t>(n * dq));  // [n, n_heads*d_head]
    ops::gemm_nn(n, dq, d, dh_res.data(), d, w.wo.data(), dq, dattn.data(), dq);
    QkvGradients g{std::vector<float>(static_cast<size_t>(n * dq), 0.0f),
                   std::vector<float>(static_cast<size_t>(n * dkv), 0.0f),
                   std::vector<float>(static_cast<size_t>(n * dkv), 0.0f)};
    std::vector<float> p(static_cast<size_t>(n * n)), dp(static_cast<size_t>(n * n));
    const KvView kk = lc.keys(0), vv = lc.values(0);
    for (int64_t h = 0; h < c.n_heads; ++h) {
        const int64_t gi = h / group;
        const float* k_g = kk.data + gi * kk.head_stride;  // [n, d_head]
        const float* v_g = vv.data + gi * vv.head_stride;  // [n, d_head]
        const float* q_h = a.q.data() + h * dh;            // [n, d_head], ld dq
        const float* do_h = dattn.data() + h * dh;         // [n, d_head], ld dq
        ops::gemm_nt(n, n, dh, q_h, dq, k_g, dh, p.data(), n);
        ops::causal_softmax(p.data(), n, n, 1, scale);            // P [n, n]
        ops::gemm_nt(n, n, dh, do_h, dq, v_g, dh, dp.data(), n);  // dP = dO · Vᵀ
        ops::gemm_tn(n, dh, n, p.data(), n, do_h, dq, g.dv.data() + gi * dh, dkv, 1.0f);
        // dS = P ∘ (dP - Σ_j P dP) · scale (softmax Jacobian, then the 1/sqrt(d_head) factor)
        for (int64_t i = 0; i < n; ++i) {
            float* pr = p.data() + i * n;
            float* dpr = dp.data() + i * n;
            double dot = 0.0;
            for (int64_t j = 0; j <= i; ++j) dot += static_cast<double>(pr[j]) * dpr[j];
            const float df = static_cast<float>(dot);
            for (int64_t j = 0; j < n; ++j) dpr[j] = j <= i ? pr[j] * (dpr[j] - df) * scale : 0.0f;
        }
        ops::gemm_nn(n, dh, n, dp.data(), n, k_g, dh, g.dq.data() + h * dh, dq);  // dQ = dS K
        ops::gemm_tn(n, dh, n, dp.data(), n, q_h, dq, g.dk.data() + gi * dh, dkv, 1.0f);
    }
    // Undo RoPE (its transpose is the rotation by -θ).
    std::vector<int64_t> pos(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = t;
    rope.apply(g.dq.data(), n, c.n_heads, dq, pos.data(), /*inverse=*/true);
    rope.apply(g.dk.data(), n, c.n_kv_heads, dkv, pos.data(), /*inverse=*/true);
    return g;
}

// dL/dW = dYᵀ · X for k_proj and v_proj, X = xn [n, d_model] the layer's normalized input.
void kv_weight_gradients(const ModelConfig& c, const QkvGradients& g, const LayerActivations& a,
                         int64_t n, Tensor& d_wk, Tensor& d_wv) {
    const int64_t d = c.d_model, dkv = c.d_kv();
    Tensor dwk({dkv, d}), dwv({dkv, d});  // [n_kv*d_head, d_model]
    ops::gemm_tn(dkv, d, n, g.dk.data(), dkv, a.xn.data(), d, dwk.data(), d);
    ops::gemm_tn(dkv, d, n, g.dv.data(), dkv, a.xn.data(), d, dwv.data(), d);
    d_wk = std::move(dwk);
    d_wv = std::move(dwv);
}

// Through q/k/v_proj and the input norm: returns the grad of the layer input x_in [n, d_model],
// the residual path (dh_res) plus the norm path.
std::vector<float> attention_input_backward(const ModelConfig& c, const LayerWeights& w,
                                            const LayerActivations& a, const QkvGradients& g,
                                            const std::vector<float>& dh_res, int64_t n) {
    const int64_t d = c.d_model, dq = c.d_q(), dkv = c.d_kv();
    std::vector<float> dxn(static_cast<size_t>(n * d));  // [n, d_model]
    ops::gemm_nn(n, d, dq, g.dq.data(), dq, w.wq.data(), d, dxn.data(), d);
    ops::gemm_nn(n, d, dkv, g.dk.data(), dkv, w.wk.data(), d, dxn.data(), d, 1.0f);
    ops::gemm_nn(n, d, dkv, g.dv.data(), dkv, w.wv.data(), d, dxn.data(), d, 1.0f);
    std::vector<float> dx = dh_res;
    rms_norm_backward(a.x_in.data(), w.attn_norm.data(), dxn.data(), dx.data(), n, d,
                      c.rms_norm_eps);
    return dx;
}

}  // namespace

KvGradients Transformer::kv_gradients(const int32_t* tokens, int64_t n, LabelShift shift) const {
    PALU_CHECK(!weights_.layer(0)->compressed(), UsageError,
               "model: kv_gradients: the model is a compressed palu checkpoint; hint: calibrate "
               "the original (dense) model");
    const ModelConfig& c = config();
    const int64_t k_shift = static_cast<int64_t>(shift);
    PALU_CHECK(n > k_shift, UsageError,
               "model: kv_gradients: window of %lld tokens has no prediction at label shift %lld",
               static_cast<long long>(n), static_cast<long long>(k_shift));

    KeptForward f = forward_keeping_activations(*this, tokens, n);
    KvGradients out;
    std::vector<float> dlogits(static_cast<size_t>(n * c.n_vocab), 0.0f);  // [n, n_vocab]
    out.loss =
        logits_gradient(f.logits.data(), tokens, n - k_shift, k_shift, c.n_vocab, dlogits.data());
    std::vector<float> dx = head_backward(c, weights_.globals(), f.x, dlogits, n);

    out.d_wk.resize(static_cast<size_t>(c.n_layers));
    out.d_wv.resize(static_cast<size_t>(c.n_layers));
    for (int64_t l = c.n_layers - 1; l >= 0; --l) {
        const LayerActivations& a = f.acts[static_cast<size_t>(l)];
        auto wp = weights_.layer(l);
        const LayerWeights& w = *wp;
        const std::vector<float> dh_res = mlp_backward(c, w, a, dx, n);
        const QkvGradients g = attention_backward(c, rope_, w, a, f.cache.layer(l), dh_res, n);
        kv_weight_gradients(c, g, a, n, out.d_wk[static_cast<size_t>(l)],
                            out.d_wv[static_cast<size_t>(l)]);
        if (l == 0) break;  // nothing below layer 0 needs a gradient
        dx = attention_input_backward(c, w, a, g, dh_res, n);
    }
    return out;
}

}  // namespace palu::model
