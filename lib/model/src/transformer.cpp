// palu model: forward pass of a Llama-family decoder (HF LlamaModel semantics), f32 + BLAS.
#include "palu/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "activations.h"
#include "ops.h"
#include "palu/core/error.h"

namespace palu::model {

namespace {
// Queries are processed in blocks so that a block only multiplies the keys it may attend to
// (causal): about half the attention FLOPs of a full square are skipped at long sequence lengths.
constexpr int64_t kQueryBlock = 256;
}  // namespace

Transformer::Transformer(const WeightSource& src, Residency residency)
    : weights_(src, residency), rope_(weights_.config()) {}

Transformer::~Transformer() = default;

std::unique_ptr<KvCache> Transformer::make_cache(int64_t n_batch, int64_t n_ctx_max) const {
    std::vector<std::unique_ptr<KvLayerCache>> layers;
    const ModelConfig& c = config();
    for (int64_t l = 0; l < c.n_layers; ++l) {
        if (cache_factory_)
            layers.push_back(cache_factory_(l, n_batch, n_ctx_max));
        else
            layers.push_back(std::make_unique<DenseKvLayerCache>(c, n_batch, n_ctx_max));
    }
    return std::make_unique<KvCache>(std::move(layers), n_batch, n_ctx_max);
}

void Transformer::notify(int64_t l, ObservePoint p, float* data, int64_t n_rows,
                         int64_t width) const {
    if (observers_.empty()) return;
    const TensorView view{data, {n_rows, width}};
    for (const auto& obs : observers_) obs(l, p, view);
}

Tensor Transformer::embed(const int32_t* tokens, int64_t n_rows) const {
    const ModelConfig& c = config();
    const Tensor& e = weights_.globals().embed;  // [n_vocab, d_model]
    Tensor x({n_rows, c.d_model});               // [n_rows, d_model]
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t id = tokens[r];
        PALU_CHECK(id >= 0 && id < c.n_vocab, UsageError,
                   "model: token id %lld at position %lld is outside the vocabulary [0, %lld)",
                   static_cast<long long>(id), static_cast<long long>(r),
                   static_cast<long long>(c.n_vocab));
        std::memcpy(x.data() + r * c.d_model, e.data() + id * c.d_model,
                    static_cast<size_t>(c.d_model) * sizeof(float));
    }
    return x;
}

void Transformer::forward_layer(int64_t l, const LayerWeights& w, Tensor& x, int64_t n_batch,
                                KvLayerCache& cache, LayerActivations* keep) const {
    const ModelConfig& c = config();
    const int64_t d = c.d_model, dq = c.d_q(), dh = c.d_head, f = c.d_ff;
    const int64_t n_rows = x.dim(0), n_new = n_rows / n_batch;
    PALU_ASSERT(n_new * n_batch == n_rows);
    const int64_t n_past = cache.n_cached();
    const int64_t group = c.n_heads / c.n_kv_heads;
    if (keep) keep->x_in.assign(x.data(), x.data() + n_rows * d);

    // --- attention block ---
    std::vector<float> xn(static_cast<size_t>(n_rows * d));  // [n_rows, d_model]
    ops::rms_norm(x.data(), w.attn_norm.data(), xn.data(), n_rows, d, c.rms_norm_eps);
    notify(l, ObservePoint::KvInput, xn.data(), n_rows, d);

    std::vector<float> q(static_cast<size_t>(n_rows * dq));  // [n_rows, n_heads*d_head]
    ops::gemm_nt(n_rows, dq, d, xn.data(), d, w.wq.data(), d, q.data(), dq);
    if (w.bq.numel() > 0) ops::add_bias(q.data(), w.bq.data(), n_rows, dq, dq);
    std::vector<int64_t> pos(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) pos[static_cast<size_t>(r)] = n_past + r % n_new;
    rope_.apply(q.data(), n_rows, c.n_heads, dq, pos.data());

    cache.append(xn.data(), n_batch, n_new, w, rope_);  // K, V for positions [0, n_past + n_new)

    std::vector<float> attn(static_cast<size_t>(n_rows * dq));  // [n_rows, n_heads*d_head]
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
    const int64_t qb = std::min(kQueryBlock, n_new);
    std::vector<float> s(static_cast<size_t>(qb * (n_past + n_new)));  // [qb, n_kv] scores
    for (int64_t b = 0; b < n_batch; ++b) {
        const KvView kv_k = cache.keys(b), kv_v = cache.values(b);
        PALU_ASSERT(kv_k.n_ctx == n_past + n_new && kv_v.n_ctx == n_past + n_new);
        for (int64_t h = 0; h < c.n_heads; ++h) {
            const float* k_g = kv_k.data + (h / group) * kv_k.head_stride;  // [n_kv, d_head]
            const float* v_g = kv_v.data + (h / group) * kv_v.head_stride;  // [n_kv, d_head]
            for (int64_t i0 = 0; i0 < n_new; i0 += qb) {
                const int64_t m = std::min(qb, n_new - i0);
                const int64_t n_kv = n_past + i0 + m;  // keys this block may see
                const float* q_blk = q.data() + (b * n_new + i0) * dq + h * dh;  // [m, d_head]
                ops::gemm_nt(m, n_kv, dh, q_blk, dq, k_g, dh, s.data(), n_kv);
                ops::causal_softmax(s.data(), m, n_kv, n_past + i0 + 1, scale);
                float* o_blk = attn.data() + (b * n_new + i0) * dq + h * dh;  // [m, d_head]
                ops::gemm_nn(m, dh, n_kv, s.data(), n_kv, v_g, dh, o_blk, dq);
            }
        }
    }
    notify(l, ObservePoint::AttnOut, attn.data(), n_rows, dq);
    // x += attn · Woᵀ + bo (residual)
    ops::gemm_nt(n_rows, d, dq, attn.data(), dq, w.wo.data(), dq, x.data(), d, 1.0f);
    if (w.bo.numel() > 0) ops::add_bias(x.data(), w.bo.data(), n_rows, d, d);
    if (keep) {
        keep->xn = xn;
        keep->q = std::move(q);
        keep->attn = std::move(attn);
        keep->h.assign(x.data(), x.data() + n_rows * d);
    }

    // --- MLP block: x += down(silu(gate(hn)) * up(hn)) ---
    std::vector<float>& hn = xn;  // reuse: [n_rows, d_model]
    ops::rms_norm(x.data(), w.ffn_norm.data(), hn.data(), n_rows, d, c.rms_norm_eps);
    notify(l, ObservePoint::MlpInput, hn.data(), n_rows, d);
    std::vector<float> gate(static_cast<size_t>(n_rows * f));  // [n_rows, d_ff]
    std::vector<float> up(static_cast<size_t>(n_rows * f));    // [n_rows, d_ff]
    ops::gemm_nt(n_rows, f, d, hn.data(), d, w.w_gate.data(), d, gate.data(), f);
    ops::gemm_nt(n_rows, f, d, hn.data(), d, w.w_up.data(), d, up.data(), f);
    std::vector<float> act(static_cast<size_t>(n_rows * f));   // [n_rows, d_ff]
    ops::swiglu(gate.data(), up.data(), act.data(), n_rows * f);
    notify(l, ObservePoint::DownInput, act.data(), n_rows, f);
    ops::gemm_nt(n_rows, d, f, act.data(), f, w.w_down.data(), f, x.data(), d, 1.0f);
    if (keep) {
        keep->hn = hn;
        keep->gate = std::move(gate);
        keep->up = std::move(up);
    }
}

Tensor Transformer::head(const Tensor& x) const {
    const ModelConfig& c = config();
    const int64_t n_rows = x.dim(0), d = c.d_model;
    const GlobalWeights& g = weights_.globals();
    std::vector<float> xn(static_cast<size_t>(n_rows * d));  // [n_rows, d_model]
    ops::rms_norm(x.data(), g.final_norm.data(), xn.data(), n_rows, d, c.rms_norm_eps);
    Tensor logits({n_rows, c.n_vocab});                      // [n_rows, n_vocab]
    ops::gemm_nt(n_rows, c.n_vocab, d, xn.data(), d, g.head().data(), d, logits.data(), c.n_vocab);
    return logits;
}

Tensor Transformer::forward(const int32_t* tokens, int64_t n_batch, int64_t n_new, KvCache& cache,
                            bool last_only) const {
    const ModelConfig& c = config();
    PALU_CHECK(n_batch == cache.n_batch(), UsageError,
               "model: forward: batch of %lld sequences, cache made for %lld",
               static_cast<long long>(n_batch), static_cast<long long>(cache.n_batch()));
    PALU_CHECK(n_new > 0, UsageError, "model: forward: no tokens");
    PALU_CHECK(cache.n_layers() == c.n_layers, UsageError,
               "model: forward: cache has %lld layers, model %lld",
               static_cast<long long>(cache.n_layers()), static_cast<long long>(c.n_layers));
    Tensor x = embed(tokens, n_batch * n_new);  // [n_batch * n_new, d_model]
    for (int64_t l = 0; l < c.n_layers; ++l) {
        auto w = weights_.layer(l);
        forward_layer(l, *w, x, n_batch, cache.layer(l));
    }
    if (last_only) {
        Tensor last({n_batch, c.d_model});  // [n_batch, d_model]
        for (int64_t b = 0; b < n_batch; ++b)
            std::memcpy(last.data() + b * c.d_model, x.data() + ((b + 1) * n_new - 1) * c.d_model,
                        static_cast<size_t>(c.d_model) * sizeof(float));
        Tensor logits = head(last);
        logits.reshape({n_batch, 1, c.n_vocab});
        return logits;
    }
    Tensor logits = head(x);
    logits.reshape({n_batch, n_new, c.n_vocab});
    return logits;
}

double mean_nll(const float* logits, int64_t n_vocab, const int32_t* targets, int64_t n_pred) {
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (n_pred * n_vocab > 1000000)
    for (int64_t t = 0; t < n_pred; ++t) {
        const float* row = logits + t * n_vocab;
        const float mx = *std::max_element(row, row + n_vocab);
        std::vector<float> e(row, row + n_vocab);
        for (float& v : e) v -= mx;
        ops::exp_inplace(e.data(), n_vocab);
        double sum = 0.0;
        for (float v : e) sum += v;
        const int32_t y = targets[t];
        PALU_ASSERT(y >= 0 && y < n_vocab);
        total += std::log(sum) + static_cast<double>(mx) - static_cast<double>(row[y]);
    }
    return total / static_cast<double>(n_pred);
}

}  // namespace palu::model
