// palu model: backward pass of a window's mean next-token cross-entropy down to k_proj / v_proj.
// Only activation gradients flow through the other weights; weight gradients are formed for
// k_proj and v_proj alone (what Fisher-based rank allocation needs, Palu §3.3). Attention
// probabilities are recomputed from the kept post-RoPE q and the cached K instead of stored
// ([n_heads, n, n] per layer would not fit at n = 2048).
#include <cmath>
#include <cstring>

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
    const int64_t d = c.d_model, dq = c.d_q(), dkv = c.d_kv(), dh = c.d_head, f = c.d_ff;
    const int64_t v = c.n_vocab, group = c.n_heads / c.n_kv_heads;
    const int64_t n_pred = n - k_shift;

    // Forward, keeping activations; a dense cache holds post-RoPE K and V of every layer.
    std::vector<std::unique_ptr<KvLayerCache>> layers;
    for (int64_t l = 0; l < c.n_layers; ++l)
        layers.push_back(std::make_unique<DenseKvLayerCache>(c, 1, n));
    KvCache cache(std::move(layers), 1, n);
    std::vector<LayerActivations> acts(static_cast<size_t>(c.n_layers));
    Tensor x = embed(tokens, n);  // [n, d_model]
    for (int64_t l = 0; l < c.n_layers; ++l) {
        auto w = weights_.layer(l);
        forward_layer(l, *w, x, 1, cache.layer(l), &acts[static_cast<size_t>(l)]);
    }
    Tensor logits = head(x);  // [n, n_vocab]

    // dL/dlogits = (softmax - onehot(target)) / n_pred for the predicted positions, 0 elsewhere.
    KvGradients out;
    std::vector<float> dlogits(static_cast<size_t>(n * v), 0.0f);  // [n, n_vocab]
    double loss = 0.0;
    for (int64_t t = 0; t < n_pred; ++t) {
        const float* row = logits.data() + t * v;
        float* drow = dlogits.data() + t * v;
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
    out.loss = loss / static_cast<double>(n_pred);

    // Through the head and the final norm: dx_final = rmsnorm'(x, dlogits · W_head).
    const GlobalWeights& g = weights_.globals();
    std::vector<float> dxn(static_cast<size_t>(n * d));  // [n, d_model]
    ops::gemm_nn(n, d, v, dlogits.data(), v, g.head().data(), d, dxn.data(), d);
    std::vector<float> dx(static_cast<size_t>(n * d), 0.0f);  // [n, d_model] grad of residual
    rms_norm_backward(x.data(), g.final_norm.data(), dxn.data(), dx.data(), n, d, c.rms_norm_eps);

    out.d_wk.resize(static_cast<size_t>(c.n_layers));
    out.d_wv.resize(static_cast<size_t>(c.n_layers));
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
    std::vector<int64_t> pos(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = t;

    for (int64_t l = c.n_layers - 1; l >= 0; --l) {
        const LayerActivations& a = acts[static_cast<size_t>(l)];
        auto wp = weights_.layer(l);
        const LayerWeights& w = *wp;

        // MLP: out = h + act · W_downᵀ, act = silu(gate) ∘ up.
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
        std::vector<float> dhres = dx;  // grad of h: residual path + norm path
        rms_norm_backward(a.h.data(), w.ffn_norm.data(), dhn.data(), dhres.data(), n, d,
                          c.rms_norm_eps);

        // Attention: h = x_in + attn · W_oᵀ.
        std::vector<float> dattn(static_cast<size_t>(n * dq));  // [n, n_heads*d_head]
        ops::gemm_nn(n, dq, d, dhres.data(), d, w.wo.data(), dq, dattn.data(), dq);
        std::vector<float> dqv(static_cast<size_t>(n * dq), 0.0f);  // [n, n_heads*d_head]
        std::vector<float> dk(static_cast<size_t>(n * dkv), 0.0f);  // [n, n_kv*d_head]
        std::vector<float> dv(static_cast<size_t>(n * dkv), 0.0f);  // [n, n_kv*d_head]
        std::vector<float> p(static_cast<size_t>(n * n)), dp(static_cast<size_t>(n * n));
        KvLayerCache& lc = cache.layer(l);
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
            ops::gemm_tn(n, dh, n, p.data(), n, do_h, dq, dv.data() + gi * dh, dkv, 1.0f);
            // dS = P ∘ (dP - Σ_j P dP) · scale (softmax Jacobian, then the 1/sqrt(d_head) factor)
            for (int64_t i = 0; i < n; ++i) {
                float* pr = p.data() + i * n;
                float* dpr = dp.data() + i * n;
                double dot = 0.0;
                for (int64_t j = 0; j <= i; ++j) dot += static_cast<double>(pr[j]) * dpr[j];
                const float df = static_cast<float>(dot);
                for (int64_t j = 0; j < n; ++j)
                    dpr[j] = j <= i ? pr[j] * (dpr[j] - df) * scale : 0.0f;
            }
            ops::gemm_nn(n, dh, n, dp.data(), n, k_g, dh, dqv.data() + h * dh, dq);  // dQ = dS K
            ops::gemm_tn(n, dh, n, dp.data(), n, q_h, dq, dk.data() + gi * dh, dkv, 1.0f);
        }
        // Undo RoPE (its transpose is the rotation by -θ).
        rope_.apply(dqv.data(), n, c.n_heads, dq, pos.data(), /*inverse=*/true);
        rope_.apply(dk.data(), n, c.n_kv_heads, dkv, pos.data(), /*inverse=*/true);

        Tensor dwk({dkv, d}), dwv({dkv, d});  // [n_kv*d_head, d_model]
        ops::gemm_tn(dkv, d, n, dk.data(), dkv, a.xn.data(), d, dwk.data(), d);
        ops::gemm_tn(dkv, d, n, dv.data(), dkv, a.xn.data(), d, dwv.data(), d);
        out.d_wk[static_cast<size_t>(l)] = std::move(dwk);
        out.d_wv[static_cast<size_t>(l)] = std::move(dwv);

        if (l == 0) break;  // nothing below layer 0 needs a gradient
        std::vector<float> dxn_l(static_cast<size_t>(n * d));  // [n, d_model]
        ops::gemm_nn(n, d, dq, dqv.data(), dq, w.wq.data(), d, dxn_l.data(), d);
        ops::gemm_nn(n, d, dkv, dk.data(), dkv, w.wk.data(), d, dxn_l.data(), d, 1.0f);
        ops::gemm_nn(n, d, dkv, dv.data(), dkv, w.wv.data(), d, dxn_l.data(), d, 1.0f);
        dx = dhres;
        rms_norm_backward(a.x_in.data(), w.attn_norm.data(), dxn_l.data(), dx.data(), n, d,
                          c.rms_norm_eps);
    }
    return out;
}

}  // namespace palu::model
