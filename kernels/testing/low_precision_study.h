// palu kernels testing: the accuracy cost of running the key reconstruction of the fused latent
// decode attention (latent_attention.h) on FP8 (e4m3) or INT8 tensor cores, measured on the CPU by
// emulation (issue #5: "explore reconstruction on FP8 or INT8 tensor cores and say what it costs in
// accuracy"). No kernel: this is the double reference with one step replaced.
//
// The emulated step is k_j[t] = B_k[g](j) · h_k[g][t] (B_k rows [d_head, r_k] of KV head j, h_k the
// key latent of token t). An FP8/INT8 MMA with f32 accumulation and per-row dequantization scales
// computes, for output row d of head j and token t,
//   k_j[t](d) = s_B(j, d) · s_h(t, g) · Σ_c Q(B_k(j·d_head + d, c) / s_B(j, d)) · Q(h_k[g][t](c) /
//   s_h(t, g))
// with s_B(j, d) = max_c |B_k(j·d_head + d, c)| / M, s_h(t, g) = max_c |h_k[g][t](c)| / M, and
// Q = round-to-nearest-even to e4m3 (M = 448) or to the int8 grid [−127, 127] (M = 127). The sum of
// products is taken exactly (double), so the emulated error is the operand rounding alone: exact
// for INT8 (s32 accumulation is exact), a lower bound for FP8 on Hopper, whose FP8 MMA is reported
// to keep fewer accumulator bits than f32 (not emulated here). Scales are kept in double (a
// kernel's f32 scales add a relative 2^-24, negligible next to e4m3's 2^-4). Quantized caches (bits
// < 16) are dequantized first, as the exact reference does ((code − zero)·scale), then rounded.
// Everything else (RoPE, softmax, P·h_v, B_v) is the exact double reference.
#pragma once

#include <cstdint>
#include <vector>

#include "latent_attention_reference.h"

namespace palu::cuda::testing {

/// Low-precision operand format of the emulated key reconstruction.
enum class LowpMode : int32_t {
    E4M3 = 0,  ///< OCP FP8 E4M3, per-row scale amax / 448
    INT8 = 1,  ///< symmetric int8 [−127, 127], per-row scale amax / 127
};

/// Which operands of k = B_k · h_k are rounded (the others stay exact); the study's breakdown.
enum class LowpOperands : int32_t {
    Both = 0,         ///< latents and B_k rows: what an FP8/INT8 MMA sees
    LatentsOnly = 1,  ///< only h_k rounded (B_k exact)
    UpOnly = 2,       ///< only B_k rounded (h_k exact): also the cost of a kernel that feeds a
                 ///< ≤ 4-bit cache's integer codes (code − zero, exact in e4m3 and int8) and
                 ///< applies the latent scale after the MMA
};

/// How the operands are scaled before rounding.
enum class LowpScaling : int32_t {
    PerRow = 0,  ///< one amax scale per latent row (token, group) and per B_k row (the study's
                 ///< subject; see the file comment)
    ChannelBalanced = 1,  ///< first h_k(c) / f_c and B_k(·, c) · f_c with f_c = sqrt(max |h_k(c)|)
                          ///< over every cached token of the group in the problem (a static
                          ///< per-layer, per-channel factor folded into B_k offline, SmoothQuant's
                          ///< α = 0.5; here an oracle taken from the problem itself), then PerRow
};

/// "e4m3" or "int8".
const char* lowp_mode_name(LowpMode mode);

/// Round-to-nearest-even of x to OCP FP8 E4M3 (bias 7, 3 mantissa bits, no infinities), returned
/// as a float. Normals down to 2^-6, subnormals k·2^-9 (k = 1 … 7), values of magnitude ≥ 448
/// (including ±inf) saturate to ±448 as NVIDIA's cvt.rn.satfinite.e4m3x2.f32 does; NaN stays NaN.
float round_e4m3(float x);

/// Round-to-nearest-even of x to an integer, saturated to the symmetric int8 range [−127, 127]
/// (−128 is never produced, so the grid is symmetric). NaN gives 0.
int32_t round_int8(float x);

/// Emulated low-precision keys of KV head j of sequence b, tokens 0 … len − 1, before RoPE:
/// [len, d_head] row-major (see the file comment for the formula). Plugs into
/// reference_latent_attention(pb, KeyReconstruction).
/// Throws UsageError on an unknown mode.
std::vector<double> reconstruct_keys_lowp(const HostProblem& pb, int32_t b, int32_t j, int32_t len,
                                          LowpMode mode, LowpOperands operands = LowpOperands::Both,
                                          LowpScaling scaling = LowpScaling::PerRow);

/// The double reference of latent_attention.h with the key reconstruction emulated in `mode`.
AttentionOutputs reference_latent_attention_lowp(const HostProblem& pb, LowpMode mode,
                                                 LowpOperands operands = LowpOperands::Both,
                                                 LowpScaling scaling = LowpScaling::PerRow);

}  // namespace palu::cuda::testing
