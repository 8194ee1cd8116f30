// palu model: the CPU forward and backward pass of a Llama-family decoder (f32, BLAS).
//   tokens [n_batch, n_new] -> embed -> n_layers x (RMSNorm -> attention(q, KvLayerCache K/V, RoPE,
//   causal softmax, GQA) -> o_proj -> residual -> RMSNorm -> SwiGLU MLP -> residual) -> RMSNorm ->
//   LM head -> logits [n_batch, n_new, n_vocab]
// Equations as in Hugging Face transformers' LlamaModel / Qwen2Model (Touvron et al. 2023).
// The backward pass computes the gradient of the mean next-token cross-entropy of one window with
// respect to every k_proj / v_proj weight (for Fisher information, Palu §3.3).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "palu/core/tensor.h"
#include "palu/core/weight_source.h"
#include "palu/model/kv_cache.h"
#include "palu/model/rope.h"
#include "palu/model/weights.h"

namespace palu::model {

/// Where an observer sees the forward pass. Every view is [n_rows, width] row-major with
/// n_rows = n_batch * n_new (batch-major).
enum class ObservePoint {
    KvInput,    // post input_layernorm hidden state, input of q/k/v_proj: width d_model
    AttnOut,    // input of o_proj: width n_heads * d_head
    MlpInput,   // post post_attention_layernorm, input of gate/up_proj: width d_model
    DownInput,  // input of down_proj: width d_ff
};
using Observer = std::function<void(int64_t layer, ObservePoint point, const TensorView& x)>;

/// Which token each position predicts in the loss: t -> t+1 (correct) or t -> t+2 (the Palu
/// reference's double shift: it shifts labels itself and HF shifts again).
enum class LabelShift { Single = 1, Double = 2 };

/// Gradients of a window's mean cross-entropy w.r.t. k_proj / v_proj weights, per layer.
struct KvGradients {
    double loss = 0.0;         // mean NLL of the predicted positions (nats)
    std::vector<Tensor> d_wk;  // n_layers x [n_kv_heads*d_head, d_model]
    std::vector<Tensor> d_wv;  // n_layers x [n_kv_heads*d_head, d_model]
};

/// Per-layer activations kept by a forward for the backward pass (batch 1, n tokens).
struct LayerActivations;
class ThreadPool;

class Transformer {
   public:
    /// Converts weights to f32 (all layers now when Resident, per use when Streaming).
    /// Throws ShapeError on inconsistent config/tensors, FormatError on missing tensors.
    Transformer(const WeightSource& src, Residency residency = Residency::Resident);
    ~Transformer();
    const ModelConfig& config() const { return weights_.config(); }
    const ModelWeights& weights() const { return weights_; }
    const Rope& rope() const { return rope_; }

    /// Threads for attention, norms and softmax, and for OpenBLAS (<= 0: all cores). Default: all
    /// cores. A Transformer runs one forward at a time (not safe for concurrent calls).
    void set_threads(int n_threads);
    int n_threads() const;

    /// Replaces how layer caches are made (default: DenseKvLayerCache; LatentKvLayerCache with f32
    /// latents for a compressed checkpoint, see latent_cache.h).
    void set_cache_factory(KvLayerCacheFactory factory) { cache_factory_ = std::move(factory); }
    std::unique_ptr<KvCache> make_cache(int64_t n_batch, int64_t n_ctx_max) const;

    /// Observers are called in registration order, synchronously, during forward().
    void add_observer(Observer observer) { observers_.push_back(std::move(observer)); }
    void clear_observers() { observers_.clear(); }

    /// Runs tokens [n_batch, n_new] (row-major) at positions cache.n_past() ... and appends them to
    /// the cache. Returns logits [n_batch, n_new, n_vocab], or [n_batch, 1, n_vocab] for the last
    /// position only when `last_only`. Throws UsageError on bad token ids, batch mismatch or
    /// capacity overflow.
    Tensor forward(const int32_t* tokens, int64_t n_batch, int64_t n_new, KvCache& cache,
                   bool last_only = false) const;

    /// Mean next-token NLL of each of n_batch sequences tokens [n_batch, n] (n - 1 predictions
    /// each), run at positions cache.n_past() ...; the LM head is applied in row chunks, so the
    /// [n_batch, n, n_vocab] logits are never materialized. Returns [n_batch] values (nats).
    std::vector<double> forward_nll(const int32_t* tokens, int64_t n_batch, int64_t n,
                                    KvCache& cache) const;

    // Step-wise API for layer-streaming drivers (calibration runs each layer over all samples):
    /// x [n_batch * n_new, d_model] embeddings of tokens.
    Tensor embed(const int32_t* tokens, int64_t n_rows) const;
    /// One decoder layer in place on x [n_batch, n_new, d_model]; positions from cache.n_cached().
    void forward_layer(int64_t l, const LayerWeights& w, Tensor& x, int64_t n_batch,
                       KvLayerCache& cache, LayerActivations* keep = nullptr) const;
    /// Final norm + head: x [n_rows, d_model] -> logits [n_rows, n_vocab].
    Tensor head(const Tensor& x) const;

    /// Gradient of the mean next-token NLL of one window tokens[0, n) w.r.t. k/v_proj weights.
    /// n - shift positions are predicted. Throws UsageError when n <= shift.
    KvGradients kv_gradients(const int32_t* tokens, int64_t n, LabelShift shift) const;

    /// Mean NLL of one sequence's logits [n_pred.., n_vocab] against targets[0, n_pred) (threaded
    /// mean_nll; the sum runs in position order, so the result does not depend on the thread
    /// count).
    double nll(const float* logits, const int32_t* targets, int64_t n_pred) const;

   private:
    ModelWeights weights_;
    Rope rope_;
    KvLayerCacheFactory cache_factory_;
    std::vector<Observer> observers_;
    std::unique_ptr<ThreadPool> pool_;
    Tensor run_layers(const int32_t* tokens, int64_t n_batch, int64_t n_new, KvCache& cache) const;
    // x += MLP(post_attention_layernorm(x)); xn [n_rows, d_model] is scratch.
    void mlp_block(int64_t l, const LayerWeights& w, Tensor& x, std::vector<float>& xn,
                   LayerActivations* keep) const;
    void notify(int64_t l, ObservePoint p, float* data, int64_t n_rows, int64_t width) const;
};

/// Mean NLL (nats) of each window: logits [n_new, n_vocab] of one sequence, targets[t] predicted by
/// position t for t < n_pred. Computed with a max-shifted log-sum-exp in double.
double mean_nll(const float* logits, int64_t n_vocab, const int32_t* targets, int64_t n_pred);

}  // namespace palu::model
