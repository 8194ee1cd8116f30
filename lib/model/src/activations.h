// palu model (private): what a forward keeps of one layer for the backward pass (batch 1).
#pragma once

#include <vector>

#include "palu/model/transformer.h"

namespace palu::model {

struct LayerActivations {
    std::vector<float> x_in;  // [n, d_model] residual stream entering the layer
    std::vector<float> xn;    // [n, d_model] post input_layernorm (k/v_proj input)
    std::vector<float> q;     // [n, n_heads*d_head] post-RoPE queries (unscaled)
    std::vector<float> attn;  // [n, n_heads*d_head] attention output (o_proj input)
    std::vector<float> h;     // [n, d_model] residual after attention
    std::vector<float> hn;    // [n, d_model] post post_attention_layernorm
    std::vector<float> gate;  // [n, d_ff] gate_proj output
    std::vector<float> up;    // [n, d_ff] up_proj output
};

}  // namespace palu::model
