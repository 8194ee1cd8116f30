// palu model: f32 weights of a Llama-family decoder, loaded from a WeightSource one layer at a
// time. Every matrix is [n_out, n_in] row-major, as stored in safetensors (docs/conventions.md).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "palu/core/tensor.h"
#include "palu/core/weight_source.h"

namespace palu::model {

/// The low-rank k_proj or v_proj of a compressed palu checkpoint (docs/checkpoint.md): head groups
/// of `group_size` consecutive KV heads, latent h = x·VTᵀ, group g's output rows
/// [g·s·d_head, (g+1)·s·d_head) = h_g·U_gᵀ + bias_g.
struct LowRankWeights {
    int64_t group_size = 0;      // KV heads per group s
    std::vector<int64_t> ranks;  // [n_groups] r_g
    Tensor vt;                   // [Σ r_g, d_model]   {k,v}_proj.VT.weight
    std::vector<Tensor> u;       // n_groups × [s·d_head, r_g]   {k,v}_proj.U.{g}.weight
    std::vector<Tensor>
        bias;  // n_groups × [s·d_head] ({k,v}_proj.U.{g}.bias), empty tensors if none
    bool present() const { return !ranks.empty(); }
    int64_t n_groups() const { return static_cast<int64_t>(ranks.size()); }
    int64_t n_latent() const;  // Σ r_g
    int64_t rank_offset(int64_t g) const;
};

/// One decoder layer. Optional biases are empty tensors (numel() == 0) when absent. A compressed
/// layer has empty wk/bk/wv/bv and the low-rank factors lk/lv instead.
struct LayerWeights {
    Tensor attn_norm;  // [d_model]            input_layernorm.weight
    Tensor wq, bq;     // [n_heads*d_head, d_model], [n_heads*d_head]
    Tensor wk, bk;     // [n_kv_heads*d_head, d_model], [n_kv_heads*d_head]
    Tensor wv, bv;     // [n_kv_heads*d_head, d_model], [n_kv_heads*d_head]
    Tensor wo, bo;     // [d_model, n_heads*d_head], [d_model]
    Tensor ffn_norm;   // [d_model]            post_attention_layernorm.weight
    Tensor w_gate;     // [d_ff, d_model]
    Tensor w_up;       // [d_ff, d_model]
    Tensor w_down;     // [d_model, d_ff]
    // MLA (DeepSeek-V3) layers: wq is [n_heads·(qk_nope+qk_rope), d_model], wo is
    // [d_model, n_heads·v_head_dim], wk/wv are empty.
    Tensor w_kv_a;      // [kv_lora_rank + qk_rope, d_model]  kv_a_proj_with_mqa.weight
    Tensor kv_a_norm;   // [kv_lora_rank]                     kv_a_layernorm.weight
    Tensor w_kv_b;      // [n_heads·(qk_nope + v_head), kv_lora_rank]  kv_b_proj.weight
    LowRankWeights lk;  // compressed k_proj (present() only for palu checkpoints)
    LowRankWeights lv;  // compressed v_proj
    bool compressed() const { return lk.present(); }
    int64_t n_bytes() const;
};

/// Embeddings, final norm and LM head.
struct GlobalWeights {
    Tensor embed;       // [n_vocab, d_model]
    Tensor final_norm;  // [d_model]
    Tensor lm_head;     // [n_vocab, d_model]; empty when tied (then embed is used)
    const Tensor& head() const { return lm_head.numel() > 0 ? lm_head : embed; }
};

/// Loads layer `l`, checking every shape against the config (ShapeError naming the tensor).
/// Compressed sources: k_proj/v_proj come as VT + U.{g} (+ U.{g}.bias); the groups are counted
/// from the U.{g} tensors present, every shape is checked (s·n_groups = n_kv_heads, Σ r_g = VT
/// rows).
LayerWeights load_layer(const WeightSource& src, int64_t l);
GlobalWeights load_globals(const WeightSource& src);

/// Whether all layers stay in memory as f32 (fast repeated forwards) or are converted on every use
/// (peak memory = globals + one layer; for models larger than RAM in f32).
enum class Residency { Resident, Streaming };

/// The weights a Transformer uses: globals always resident, layers resident or streamed.
class ModelWeights {
   public:
    ModelWeights(const WeightSource& src, Residency residency);
    const ModelConfig& config() const { return config_; }
    const GlobalWeights& globals() const { return globals_; }
    Residency residency() const { return residency_; }
    /// Layer l: a reference to the resident copy, or a freshly converted one (Streaming).
    std::shared_ptr<const LayerWeights> layer(int64_t l) const;

   private:
    const WeightSource* src_;
    ModelConfig config_;
    Residency residency_;
    GlobalWeights globals_;
    std::vector<std::shared_ptr<const LayerWeights>> layers_;  // filled when Resident
};

}  // namespace palu::model
