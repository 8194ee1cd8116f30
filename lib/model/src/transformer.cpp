// palu model: forward pass of a Llama-family decoder (HF LlamaModel semantics), f32 + BLAS.
#include "palu/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "activations.h"
#include "ops.h"
#include "palu/core/error.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/model/blas.h"
#include "palu/model/latent_cache.h"
#include "palu/model/mla_cache.h"
#include "thread_pool.h"

namespace palu::model {

namespace {
// Queries are processed in blocks so that a block only multiplies the keys it may attend to
// (causal): about half the attention FLOPs of a full square are skipped at long sequence lengths.
constexpr int64_t kQueryBlock = 256;
}  // namespace

namespace {
// MLA rotates only the qk_rope_head_dim part of q and the shared k_pe.
ModelConfig rope_config(const ModelConfig& c) {
    return c.is_mla() ? mla_rope_config(c) : c;
}
}  // namespace

Transformer::Transformer(const WeightSource& src, Residency residency)
    : weights_(src, residency), rope_(rope_config(weights_.config())) {
    set_threads(0);
    // An MLA model runs with its latent cache (normalised latent + rotated k_pe per token).
    if (config().is_mla()) cache_factory_ = mla_cache_factory(config());
    // A compressed checkpoint runs with a real latent cache by default (f32 latents: exact).
    if (formats::is_palu_checkpoint(src))
        cache_factory_ = latent_cache_factory(weights_, LatentCacheOptions{});
}

Transformer::~Transformer() = default;

void Transformer::set_threads(int n_threads) {
    const int n = n_threads > 0 ? n_threads : n_cpu_cores();
    if (!pool_ || pool_->size() != n) pool_ = std::make_unique<ThreadPool>(n);
    set_blas_threads(n);
}

int Transformer::n_threads() const {
    return pool_->size();
}

namespace {
// Runs row ranges of a row-wise kernel on the pool when the work is large enough to pay for the
// wake-up (~10 µs), inline otherwise.
void for_rows(ThreadPool& pool, int64_t n_rows, int64_t work,
              const std::function<void(int64_t, int64_t)>& fn) {
    if (work < (1 << 16) || pool.size() == 1)
        fn(0, n_rows);
    else
        pool.parallel_ranges(n_rows, fn);
}
}  // namespace

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
    const int64_t d = c.d_model, dq = c.d_q(), dh = c.d_head;
    const int64_t n_rows = x.dim(0), n_new = n_rows / n_batch;
    PALU_ASSERT(n_new * n_batch == n_rows);
    const int64_t n_past = cache.n_cached();
    const int64_t group = c.n_heads / c.n_kv_heads;
    if (keep) keep->x_in.assign(x.data(), x.data() + n_rows * d);

    // --- attention block ---
    std::vector<float> xn(static_cast<size_t>(n_rows * d));  // [n_rows, d_model]
    for_rows(*pool_, n_rows, n_rows * d, [&](int64_t r0, int64_t r1) {
        ops::rms_norm(x.data() + r0 * d, w.attn_norm.data(), xn.data() + r0 * d, r1 - r0, d,
                      c.rms_norm_eps);
    });
    notify(l, ObservePoint::KvInput, xn.data(), n_rows, d);
    if (c.is_mla()) {
        PALU_CHECK(keep == nullptr, UsageError,
                   "model: the backward pass does not support MLA attention yet");
        std::vector<float> attn;  // [n_rows, n_heads·v_head_dim]
        mla_attention(c, w, rope_, xn.data(), x.data(), n_batch, n_new, cache, attn);
        notify(l, ObservePoint::AttnOut, attn.data(), n_rows, c.n_heads * c.mla->v_head_dim);
        mlp_block(l, w, x, xn, nullptr);
        return;
    }

    std::vector<float> q(static_cast<size_t>(n_rows * dq));  // [n_rows, n_heads*d_head]
    ops::gemm_nt(n_rows, dq, d, xn.data(), d, w.wq.data(), d, q.data(), dq);
    if (w.bq.numel() > 0) ops::add_bias(q.data(), w.bq.data(), n_rows, dq, dq);
    std::vector<int64_t> pos(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) pos[static_cast<size_t>(r)] = n_past + r % n_new;
    for_rows(*pool_, n_rows, n_rows * dq * 4, [&](int64_t r0, int64_t r1) {
        rope_.apply(q.data() + r0 * dq, r1 - r0, c.n_heads, dq, pos.data() + r0);
    });

    cache.append(xn.data(), n_batch, n_new, w, rope_);  // K, V for positions [0, n_past + n_new)

    std::vector<float> attn(static_cast<size_t>(n_rows * dq));  // [n_rows, n_heads*d_head]
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
    const int64_t qb = std::min(kQueryBlock, n_new);
    const int64_t n_blocks = (n_new + qb - 1) / qb;
    // Views are taken on this thread (a cache may reconstruct lazily); workers only read them.
    std::vector<KvView> kv_k, kv_v;
    for (int64_t b = 0; b < n_batch; ++b) {
        kv_k.push_back(cache.keys(b));
        kv_v.push_back(cache.values(b));
        PALU_ASSERT(kv_k.back().n_ctx == n_past + n_new && kv_v.back().n_ctx == n_past + n_new);
    }
    // One task per (batch row, head, query block), largest blocks first; each task runs
    // single-threaded GEMMs, so OpenBLAS is set to one thread for the duration.
    const int n_threads = pool_->size();
    std::vector<std::vector<float>> scores(static_cast<size_t>(n_threads));  // [qb, n_kv] each
    auto task = [&](int64_t i, int th) {
        const int64_t blk = n_blocks - 1 - i % n_blocks;
        const int64_t h = (i / n_blocks) % c.n_heads, b = i / (n_blocks * c.n_heads);
        const int64_t i0 = blk * qb, m = std::min(qb, n_new - i0);
        const int64_t n_kv = n_past + i0 + m;  // keys this block may see (causal)
        const float* k_g =
            kv_k[static_cast<size_t>(b)].data +
            (h / group) * kv_k[static_cast<size_t>(b)].head_stride;  // [n_kv, d_head]
        const float* v_g =
            kv_v[static_cast<size_t>(b)].data +
            (h / group) * kv_v[static_cast<size_t>(b)].head_stride;  // [n_kv, d_head]
        std::vector<float>& s = scores[static_cast<size_t>(th)];
        s.resize(static_cast<size_t>(m * n_kv));
        const float* q_blk = q.data() + (b * n_new + i0) * dq + h * dh;  // [m, d_head], ld dq
        ops::gemm_nt(m, n_kv, dh, q_blk, dq, k_g, dh, s.data(), n_kv);
        ops::causal_softmax(s.data(), m, n_kv, n_past + i0 + 1, scale);
        float* o_blk = attn.data() + (b * n_new + i0) * dq + h * dh;  // [m, d_head], ld dq
        ops::gemm_nn(m, dh, n_kv, s.data(), n_kv, v_g, dh, o_blk, dq);
    };
    const int64_t n_tasks = n_batch * c.n_heads * n_blocks;
    if (n_threads > 1 && n_tasks > 1 && (n_past + n_new) * n_new * c.n_heads > (1 << 14)) {
        set_blas_threads(1);
        pool_->parallel_for(n_tasks, task);
        set_blas_threads(n_threads);
    } else {
        for (int64_t i = 0; i < n_tasks; ++i) task(i, 0);
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

    mlp_block(l, w, x, xn, keep);
}

void Transformer::mlp_block(int64_t l, const LayerWeights& w, Tensor& x, std::vector<float>& xn,
                            LayerActivations* keep) const {
    // --- MLP block: x += down(silu(gate(hn)) * up(hn)) ---
    const ModelConfig& c = config();
    const int64_t d = c.d_model, f = c.d_ff, n_rows = x.dim(0);
    std::vector<float>& hn = xn;  // reuse: [n_rows, d_model]
    for_rows(*pool_, n_rows, n_rows * d, [&](int64_t r0, int64_t r1) {
        ops::rms_norm(x.data() + r0 * d, w.ffn_norm.data(), hn.data() + r0 * d, r1 - r0, d,
                      c.rms_norm_eps);
    });
    notify(l, ObservePoint::MlpInput, hn.data(), n_rows, d);
    std::vector<float> gate(static_cast<size_t>(n_rows * f));  // [n_rows, d_ff]
    std::vector<float> up(static_cast<size_t>(n_rows * f));    // [n_rows, d_ff]
    ops::gemm_nt(n_rows, f, d, hn.data(), d, w.w_gate.data(), d, gate.data(), f);
    ops::gemm_nt(n_rows, f, d, hn.data(), d, w.w_up.data(), d, up.data(), f);
    std::vector<float> act(static_cast<size_t>(n_rows * f));  // [n_rows, d_ff]
    for_rows(*pool_, n_rows, n_rows * f * 4, [&](int64_t r0, int64_t r1) {
        ops::swiglu(gate.data() + r0 * f, up.data() + r0 * f, act.data() + r0 * f, (r1 - r0) * f);
    });
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
    for_rows(*pool_, n_rows, n_rows * d, [&](int64_t r0, int64_t r1) {
        ops::rms_norm(x.data() + r0 * d, g.final_norm.data(), xn.data() + r0 * d, r1 - r0, d,
                      c.rms_norm_eps);
    });
    Tensor logits({n_rows, c.n_vocab});  // [n_rows, n_vocab]
    ops::gemm_nt(n_rows, c.n_vocab, d, xn.data(), d, g.head().data(), d, logits.data(), c.n_vocab);
    return logits;
}

Tensor Transformer::run_layers(const int32_t* tokens, int64_t n_batch, int64_t n_new,
                               KvCache& cache) const {
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
    return x;
}

Tensor Transformer::forward(const int32_t* tokens, int64_t n_batch, int64_t n_new, KvCache& cache,
                            bool last_only) const {
    const ModelConfig& c = config();
    Tensor x = run_layers(tokens, n_batch, n_new, cache);  // [n_batch * n_new, d_model]
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

std::vector<double> Transformer::forward_nll(const int32_t* tokens, int64_t n_batch, int64_t n,
                                             KvCache& cache) const {
    PALU_CHECK(n >= 2, UsageError, "model: forward_nll: a sequence needs >= 2 tokens, got %lld",
               static_cast<long long>(n));
    const int64_t d = config().d_model;
    const Tensor x = run_layers(tokens, n_batch, n, cache);  // [n_batch * n, d_model]
    // Head in chunks of rows: 256 x n_vocab logits at a time (50 MB at a 49k vocabulary).
    constexpr int64_t kChunk = 256;
    std::vector<double> out;
    for (int64_t b = 0; b < n_batch; ++b) {
        double total = 0.0;
        for (int64_t t0 = 0; t0 < n - 1; t0 += kChunk) {
            const int64_t m = std::min(kChunk, n - 1 - t0);
            Tensor xc({m, d});  // [m, d_model]
            std::memcpy(xc.data(), x.data() + (b * n + t0) * d,
                        static_cast<size_t>(m * d) * sizeof(float));
            const Tensor logits = head(xc);  // [m, n_vocab]
            total += nll(logits.data(), tokens + b * n + t0 + 1, m) * static_cast<double>(m);
        }
        out.push_back(total / static_cast<double>(n - 1));
    }
    return out;
}

namespace {
double position_nll(const float* row, int64_t n_vocab, int32_t y, std::vector<float>& e) {
    const float mx = *std::max_element(row, row + n_vocab);
    e.assign(row, row + n_vocab);
    for (float& v : e) v -= mx;
    ops::exp_inplace(e.data(), n_vocab);
    double sum = 0.0;
    for (float v : e) sum += v;
    PALU_ASSERT(y >= 0 && y < n_vocab);
    return std::log(sum) + static_cast<double>(mx) - static_cast<double>(row[y]);
}
}  // namespace

double mean_nll(const float* logits, int64_t n_vocab, const int32_t* targets, int64_t n_pred) {
    double total = 0.0;
    std::vector<float> e;
    for (int64_t t = 0; t < n_pred; ++t)
        total += position_nll(logits + t * n_vocab, n_vocab, targets[t], e);
    return total / static_cast<double>(n_pred);
}

double Transformer::nll(const float* logits, const int32_t* targets, int64_t n_pred) const {
    const int64_t n_vocab = config().n_vocab;
    std::vector<double> per(static_cast<size_t>(n_pred));
    for_rows(*pool_, n_pred, n_pred * n_vocab, [&](int64_t t0, int64_t t1) {
        std::vector<float> e;
        for (int64_t t = t0; t < t1; ++t)
            per[static_cast<size_t>(t)] =
                position_nll(logits + t * n_vocab, n_vocab, targets[t], e);
    });
    double total = 0.0;
    for (double v : per) total += v;
    return total / static_cast<double>(n_pred);
}

}  // namespace palu::model
