// palu kernels: fused latent decode attention (issue #5), CUDA side.
//
// Inputs: RoPE-free query, Palu key/value latents (f16/bf16 or 2/3/4-bit packed), per-group key and
// value up-projections. Output: the attention output per query head (value up-projection applied
// once, after the softmax-weighted sum of value latents). See latent_attention.h for the layouts.
//
// Two kernels (flash-decoding, Dao et al. 2023):
//  1. split_kernel, grid (head block, token split, batch·group): one block owns s' KV heads of one
//     latent group and a contiguous token range. Their key up-projection rows B_k[g](j) stay in
//     shared memory for the whole range; 64-token latent tiles stream through a 2- or 3-deep
//     cp.async ring (2/3/4-bit tiles are dequantized shared→shared). Keys are rebuilt on tensor
//     cores (mma.sync m16n8k16, f32 accumulate) one (16 tokens × d_head) fragment per warp; RoPE
//     and the q·k dot run on the accumulators in registers (the rotate-half pair (i, i+d/2) lands
//     in the same lane), so the reconstructed keys never leave registers. Online softmax (base 2)
//     and the P·h_v product in latent space follow; the block writes (max, sum, o_lat) partials.
//  2. reduce_kernel, grid (head, batch): merges the split partials and applies B_v[g](j) once.
// No exceptions here: errors are returned as cudaError_t to latent_attention.cpp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdint>

#include "latent_attention_device.cuh"
#include "latent_attention_launch.h"

namespace palu::cuda::detail {
namespace {

// Shared-memory carve-up, identical on host and device.
struct SmemLayout {
    // Tiles and stages are ring buffers of `n_stages` entries (a 16-bit cache is copied straight
    // into its tile ring; a quantized one goes through a stage ring and one dequantized tile).
    size_t b_up, k_tile0, k_tile_step, v_tile0, v_tile_step, stage0, stage_step, sk, q, s, f, o,
        stats, c8, total;
    __host__ __device__ size_t k_tile(int i) const { return k_tile0 + i * k_tile_step; }
    __host__ __device__ size_t v_tile(int i) const { return v_tile0 + i * v_tile_step; }
    __host__ __device__ size_t k_stage(int i) const { return stage0 + i * stage_step; }
    __host__ __device__ size_t v_stage(int i) const { return stage0 + i * stage_step + sk; }
};

__host__ __device__ inline size_t stage_bytes(int r, int bits, int tt) {
    return align16(size_t(tt) * row_bytes(r, bits)) + 2 * size_t(tt) * 2;  // codes, scales, zeros
}

__host__ __device__ inline SmemLayout make_layout(int d, int r_k, int r_v, int bits_k, int bits_v,
                                                  int sp, int n_rep, int ns, int tt) {
    const int TT = tt;
    SmemLayout L{};
    size_t off = 0;
    const size_t pk = size_t(r_k + 8) * 2, pv = size_t(r_v + 8) * 2;  // padded row pitch, bytes
    L.b_up = off;
    off += align16(size_t(sp) * d * pk);
    const size_t tk = align16(TT * pk), tv = align16(TT * pv);
    L.k_tile0 = off;
    L.k_tile_step = bits_k == 16 ? tk : 0;
    off += bits_k == 16 ? ns * tk : tk;
    L.v_tile0 = off;
    L.v_tile_step = bits_v == 16 ? tv : 0;
    off += bits_v == 16 ? ns * tv : tv;
    const size_t sk = bits_k != 16 ? stage_bytes(r_k, bits_k, tt) : 0,
                 sv = bits_v != 16 ? stage_bytes(r_v, bits_v, tt) : 0;
    L.stage0 = off;
    L.sk = sk;
    L.stage_step = sk + sv;
    off += ns * (sk + sv);
    const int mq = sp * n_rep;
    L.q = off;
    off += align16(size_t(mq) * d * 4);
    L.s = off;
    off += align16(2 * size_t(mq) * TT * 4);  // two column halves of partial scores
    L.f = off;
    off += align16(size_t(d / 2) * 4);
    L.o = off;  // P tile [16, TT + 8] in the latent dtype (A operand of the P·h_v mma)
    off += align16(size_t(16) * (TT + 8) * 2);
    L.stats = off;  // m_run[mq], l_run[mq], alpha[16]
    off += align16((size_t(mq) * 2 + 16) * 4);
    L.c8 = off;  // cos/sin(8 · inv_freq[i]) for the row-(r0+8) rotation
    off += align16(size_t(d / 2) * 8);
    L.total = off;
    return L;
}

// Issues the cp.async copies of the latent tile [t0, t0 + n_valid) of one cache into `tile`
// (bits 16, padded rows) or `stage` (packed rows, scales, zeros; flat).
__device__ inline void load_latent_tile(uint8_t* tile, uint8_t* stage, const uint8_t* data,
                                        const uint16_t* scales, const uint16_t* zeros, int64_t row0,
                                        int n_valid, int r, int bits, int tid, int TT) {
    if (bits == 16) {
        // Walk (row, 16-byte column) without a division per chunk: the stride kThreads is a fixed
        // (rows, columns) step.
        const int cpr = r / 8;
        const int d_row = kThreads / cpr, d_col = kThreads % cpr;
        int row = tid / cpr, col = tid % cpr;
        const size_t pitch = size_t(r + 8) * 2;
        const uint8_t* src = data + row0 * r * 2;
        while (row < n_valid) {
            cp_async16(tile + row * pitch + col * 16, src + (size_t(row) * r + col * 8) * 2);
            row += d_row;
            col += d_col;
            if (col >= cpr) {
                col -= cpr;
                ++row;
            }
        }
    } else {
        const int64_t rb = row_bytes(r, bits);
        const int n_chunks = static_cast<int>((n_valid * rb + 15) / 16);
        const uint8_t* src = data + row0 * rb;
        for (int c = tid; c < n_chunks; c += kThreads) cp_async16(stage + c * 16, src + c * 16);
        const size_t codes = align16(size_t(TT) * rb);
        const int n_sc = (n_valid * 2 + 15) / 16;
        for (int c = tid; c < 2 * n_sc; c += kThreads) {
            const bool z = c >= n_sc;
            const int cc = z ? c - n_sc : c;
            const uint16_t* base = z ? zeros : scales;
            cp_async16(stage + codes + (z ? TT * 2 : 0) + cc * 16,
                       reinterpret_cast<const uint8_t*>(base + row0) + cc * 16);
        }
    }
}

// Packed stage → padded T tile: x = code − zero, 8 codes per work item. These small integers are
// exact in f16 and bf16; the per-token scale is applied afterwards (to the key's score, and folded
// into P for the values), so dequantization adds no rounding (v8).
template <typename T>
__device__ inline void dequant_tile(uint8_t* tile, const uint8_t* stage, int n_valid, int r,
                                    int bits, int tid, int TT) {
    const int64_t rb = row_bytes(r, bits);
    const size_t codes = align16(size_t(TT) * rb);
    const __half* zr = reinterpret_cast<const __half*>(stage + codes + TT * 2);
    const int groups = r / 8;
    const size_t pitch = size_t(r + 8) * 2;
    const int d_row = kThreads / groups, d_col = kThreads % groups;
    int row = tid / groups, grp = tid % groups;
    for (; row < n_valid;) {
        const uint4 outv = dequant8<T>(stage + row * rb, grp, bits, zr[row]);
        *reinterpret_cast<uint4*>(tile + row * pitch + grp * 16) = outv;
        row += d_row;
        grp += d_col;
        if (grp >= groups) {
            grp -= groups;
            ++row;
        }
    }
}

template <typename T, int D, int TT>
__global__ void __launch_bounds__(kThreads, 2) split_kernel(const KernelArgs a) {
    extern __shared__ __align__(16) uint8_t smem[];
    const int hb = blockIdx.x, split = blockIdx.y;
    const int b = blockIdx.z / a.n_groups, g = blockIdx.z % a.n_groups;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int sp = a.kv_per_block, n_rep = a.n_rep, mq = sp * n_rep;
    const int j0 = g * a.group_size + hb * sp;  // first KV head of this block
    const int h0 = j0 * n_rep;                  // first query head
    const int len = a.seq_lens[b];
    const int t_begin = split * a.tokens_per_split;
    const int t_end = min(t_begin + a.tokens_per_split, len);
    const size_t part = size_t(split) * a.batch + b;
    float* ws_ml = a.ws_ml + (part * a.n_heads + h0) * 2;
    float* ws_o = a.ws_o + (part * a.n_heads + h0) * a.r_v;
    if (t_begin >= t_end) {
        for (int i = tid; i < mq; i += kThreads) {
            ws_ml[2 * i] = -INFINITY;
            ws_ml[2 * i + 1] = 0.0f;
        }
        return;
    }
    const int r_k = a.r_k, r_v = a.r_v;
    const SmemLayout L = make_layout(D, r_k, r_v, a.bits_k, a.bits_v, sp, n_rep, a.n_stages, TT);
    const int pk = r_k + 8, pv = r_v + 8;  // padded pitches in elements
    T* b_up = reinterpret_cast<T*>(smem + L.b_up);
    float* qs = reinterpret_cast<float*>(smem + L.q);
    float* ss = reinterpret_cast<float*>(smem + L.s);
    float* fs = reinterpret_cast<float*>(smem + L.f);
    T* ps = reinterpret_cast<T*>(smem + L.o);
    float* m_run = reinterpret_cast<float*>(smem + L.stats);
    float* l_run = m_run + mq;
    float* alpha = l_run + mq;
    float2* c8s = reinterpret_cast<float2*>(smem + L.c8);
    constexpr int PP = TT + 8;  // P tile pitch (elements)

    const int64_t cache_row0 = (int64_t(b) * a.n_groups + g) * a.capacity;
    const int kp0 = a.k_pos0 ? a.k_pos0[b] : 0;
    const int qp = a.q_pos ? a.q_pos[b] : kp0 + len - 1;

    // Prologue: this block's rows of B_k[g] (KV heads j0 .. j0+s'-1), then the first tile.
    {
        const T* src = reinterpret_cast<const T*>(a.k_up) + size_t(j0) * D * r_k;
        const int chunks_per_row = r_k / 8, n_chunks = sp * D * chunks_per_row;
        for (int c = tid; c < n_chunks; c += kThreads) {
            const int row = c / chunks_per_row, col = c % chunks_per_row;
            cp_async16(b_up + size_t(row) * pk + col * 8, src + size_t(row) * r_k + col * 8);
        }
    }
    auto load = [&](int t0, int buf) {
        const int nv = min(TT, t_end - t0);
        load_latent_tile(smem + L.k_tile(buf), smem + L.k_stage(buf), a.k_data, a.k_scales,
                         a.k_zeros, cache_row0 + t0, nv, r_k, a.bits_k, tid, TT);
        load_latent_tile(smem + L.v_tile(buf), smem + L.v_stage(buf), a.v_data, a.v_scales,
                         a.v_zeros, cache_row0 + t0, nv, r_v, a.bits_v, tid, TT);
    };
    const int ns = a.n_stages;
    for (int i = 0; i < ns - 1; ++i) {  // prologue: the first ns − 1 tiles in flight
        if (t_begin + i * TT < t_end) load(t_begin + i * TT, i);
        cp_async_commit();
    }

    // RoPE(q) · scale · log2(e) for the block's query heads, f32 in shared memory.
    {
        const T* q = reinterpret_cast<const T*>(a.q) + (size_t(b) * a.n_heads + h0) * D;
        for (int i = tid; i < mq * (D / 2); i += kThreads) {
            const int hl = i / (D / 2), d = i % (D / 2);
            const float x0 = Ops<T>::to_f(q[hl * D + d]), x1 = Ops<T>::to_f(q[hl * D + d + D / 2]);
            float sn, cs;
            rope_sincos(qp, a.inv_freq[d], &sn, &cs);
            qs[hl * D + d] = (x0 * cs - x1 * sn) * a.scale_log2;
            qs[hl * D + d + D / 2] = (x1 * cs + x0 * sn) * a.scale_log2;
        }
        for (int i = tid; i < 16 * PP; i += kThreads) ps[i] = Ops<T>::from_f(0.0f);
        for (int i = tid; i < 16; i += kThreads) alpha[i] = 1.0f;
        for (int i = tid; i < D / 2; i += kThreads) {
            fs[i] = a.inv_freq[i];
            float sn, cs;
            sincosf(8.0f * a.inv_freq[i], &sn, &cs);
            c8s[i] = make_float2(cs, sn);
        }
        for (int i = tid; i < mq; i += kThreads) {
            m_run[i] = -INFINITY;
            l_run[i] = 0.0f;
        }
    }

    constexpr int NT = D / 8;   // n8 tiles per head
    constexpr int NQ = NT / 4;  // n8 tiles per quarter: a column half = quarters (ch, ch + 2)
    constexpr int NW = kThreads / 32;
    constexpr int kMaxVTiles = 8;  // r_v <= 512: 64 n8 tiles over 8 warps
    const int n_vtiles = r_v / 8;
    float oacc[kMaxVTiles][4];
#pragma unroll
    for (int i = 0; i < kMaxVTiles; ++i) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.0f;
    int buf = 0;
    for (int t0 = t_begin; t0 < t_end; t0 += TT, buf = buf + 1 == ns ? 0 : buf + 1) {
        const int n_valid = min(TT, t_end - t0);
        const int ahead = t0 + (ns - 1) * TT;  // refills the slot used by the previous tile
        if (ahead < t_end) load(ahead, buf == 0 ? ns - 1 : buf - 1);
        cp_async_commit();
        if (ns == 3)
            cp_async_wait<2>();
        else
            cp_async_wait<1>();
        __syncthreads();
        if (a.bits_k != 16 || a.bits_v != 16) {
            if (a.bits_k != 16)
                dequant_tile<T>(smem + L.k_tile(0), smem + L.k_stage(buf), n_valid, r_k, a.bits_k,
                                tid, TT);
            if (a.bits_v != 16)
                dequant_tile<T>(smem + L.v_tile(0), smem + L.v_stage(buf), n_valid, r_v, a.bits_v,
                                tid, TT);
            __syncthreads();
        }
        const T* tk = reinterpret_cast<const T*>(smem + L.k_tile(buf));
        const T* tv = reinterpret_cast<const T*>(smem + L.v_tile(buf));
        // Per-token scales of quantized tiles (the tile holds code − zero): key scales multiply the
        // scores, value scales fold into P. Rows >= n_valid hold stale scales and are masked.
        const __half* k_sc =
            a.bits_k == 16
                ? nullptr
                : reinterpret_cast<const __half*>(smem + L.k_stage(buf) +
                                                  align16(size_t(TT) * row_bytes(r_k, a.bits_k)));
        const __half* v_sc =
            a.bits_v == 16
                ? nullptr
                : reinterpret_cast<const __half*>(smem + L.v_stage(buf) +
                                                  align16(size_t(TT) * row_bytes(r_v, a.bits_v)));
        if (n_valid < TT) {
            uint32_t* vz = reinterpret_cast<uint32_t*>(smem + L.v_tile(buf));
            for (int i = tid; i < (TT - n_valid) * (pv / 2); i += kThreads)
                vz[n_valid * (pv / 2) + i] = 0u;
            __syncthreads();
        }

        // Scores: unit u = (16-token row block u % NSUB, column half (u / NSUB) % 2, local KV head
        // u / (2·NSUB)), one warp each. Column half ch holds n8 tiles [ch·NQ, ch·NQ+NQ) and [NT/2 +
        // ch·NQ, ...): the rotate-half partner of column d (tile i) is column d + D/2 (tile i +
        // NQ), same lane.
        constexpr int NSUB = TT / 16;
        for (int u = warp; u < 2 * NSUB * sp; u += NW) {
            const int sub = u % NSUB, ch = (u / NSUB) & 1, jl = u / (2 * NSUB);
            float acc[2 * NQ][4];
#pragma unroll
            for (int i = 0; i < 2 * NQ; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
            const T* a_ptr = tk + (sub * 16 + (lane & 15)) * pk + (lane >> 4) * 8;
            const T* b_ptr =
                b_up + (jl * D + (lane & 7) + ((lane >> 4) << 3)) * pk + ((lane >> 3) & 1) * 8;
            for (int kk = 0; kk < r_k; kk += 16) key_kstep<T, NQ>(acc, a_ptr, b_ptr, pk, kk, ch);
            // RoPE on the rebuilt keys, in registers.
            const int r0 = sub * 16 + (lane >> 2);
            rope_rows<NQ>(acc, ch, lane, kp0 + t0 + r0, fs, c8s);
            float* sdst = ss + ch * mq * TT;
            for (int hr = 0; hr < n_rep; ++hr) {
                const int hl = jl * n_rep + hr;
                const float* qh = qs + hl * D + 2 * (lane & 3);
                float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
                for (int i = 0; i < 2 * NQ; ++i) {
                    const int nt = i < NQ ? ch * NQ + i : NT / 2 + ch * NQ + (i - NQ);
                    const float2 qv = *reinterpret_cast<const float2*>(qh + nt * 8);
                    s0 = fmaf(qv.x, acc[i][0], fmaf(qv.y, acc[i][1], s0));
                    s1 = fmaf(qv.x, acc[i][2], fmaf(qv.y, acc[i][3], s1));
                }
                s0 += __shfl_xor_sync(0xffffffffu, s0, 1);
                s0 += __shfl_xor_sync(0xffffffffu, s0, 2);
                s1 += __shfl_xor_sync(0xffffffffu, s1, 1);
                s1 += __shfl_xor_sync(0xffffffffu, s1, 2);
                if (k_sc) {
                    s0 *= __half2float(k_sc[r0]);
                    s1 *= __half2float(k_sc[r0 + 8]);
                }
                if ((lane & 3) == 0) {
                    sdst[hl * TT + r0] = s0;
                    sdst[hl * TT + r0 + 8] = s1;
                }
            }
        }
        __syncthreads();

        // Online softmax (base 2; scores already carry log2(e)); the warp of head hl also rescales
        // its latent accumulator by alpha = 2^(m_old − m_new).
        for (int hl = warp; hl < mq; hl += NW) {
            float* srow = ss + hl * TT;
            const float* srow1 = ss + (mq + hl) * TT;
            constexpr int PL = TT / 32;  // scores per lane
            float v[PL];
            float mx = -INFINITY;
#pragma unroll
            for (int k = 0; k < PL; ++k) {
                const int t = lane + 32 * k;
                v[k] = t < n_valid ? srow[t] + srow1[t] : -INFINITY;
                mx = fmaxf(mx, v[k]);
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_old = m_run[hl], l_old = l_run[hl];
            const float m_new = fmaxf(m_old, mx);
            float sum = 0.0f;
#pragma unroll
            for (int k = 0; k < PL; ++k) {
                const float pk_ = exp2f(v[k] - m_new);
                sum += pk_;
                const int t = lane + 32 * k;
                const float pv_ = v_sc ? (t < n_valid ? pk_ * __half2float(v_sc[t]) : 0.0f) : pk_;
                ps[hl * PP + t] = Ops<T>::from_f(pv_);
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            const float al = exp2f(m_old - m_new);
            __syncwarp();
            if (lane == 0) {
                l_run[hl] = l_old * al + sum;
                m_run[hl] = m_new;
                alpha[hl] = al;
            }
        }
        __syncthreads();

        // o_lat = alpha · o_lat + P · h_v on tensor cores: A = P [16 head rows (mq used), 64
        // tokens], B = the value tile [64 tokens, r_v] (ldmatrix.trans), accumulators stay in
        // registers across tiles; warp w owns n8 column tiles w, w + 8, ...
        {
            const float al0 = alpha[lane >> 2], al1 = alpha[(lane >> 2) + 8];
#pragma unroll
            for (int i = 0; i < kMaxVTiles; ++i) {
                oacc[i][0] *= al0;
                oacc[i][1] *= al0;
                oacc[i][2] *= al1;
                oacc[i][3] *= al1;
            }
#pragma unroll
            for (int kk = 0; kk < TT; kk += 32) {
                uint32_t pa0[4], pa1[4];
                ldmatrix_x4(pa0, ps + (lane & 15) * PP + kk + (lane >> 4) * 8);
                ldmatrix_x4(pa1, ps + (lane & 15) * PP + kk + 16 + (lane >> 4) * 8);
#pragma unroll
                for (int i = 0; i < kMaxVTiles; ++i) {
                    const int nt = warp + i * NW;
                    if (nt < n_vtiles) {
                        uint32_t vb[4];
                        ldmatrix_x4_trans(vb, tv + (kk + lane) * pv + nt * 8);
                        Ops<T>::mma(oacc[i], pa0, vb[0], vb[1]);
                        Ops<T>::mma(oacc[i], pa1, vb[2], vb[3]);
                    }
                }
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    for (int i = tid; i < mq; i += kThreads) {
        ws_ml[2 * i] = m_run[i];
        ws_ml[2 * i + 1] = l_run[i];
    }
#pragma unroll
    for (int i = 0; i < kMaxVTiles; ++i) {
        const int nt = warp + i * NW;
        if (nt >= n_vtiles) continue;
        const int row = lane >> 2, col = nt * 8 + 2 * (lane & 3);
        if (row < mq)
            *reinterpret_cast<float2*>(ws_o + row * r_v + col) =
                make_float2(oacc[i][0], oacc[i][1]);
        if (row + 8 < mq)
            *reinterpret_cast<float2*>(ws_o + (row + 8) * r_v + col) =
                make_float2(oacc[i][2], oacc[i][3]);
    }
}

__device__ inline float block_reduce(float v, bool is_max, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = red[0];
    for (int w = 1; w < kThreads / 32; ++w) v = is_max ? fmaxf(v, red[w]) : v + red[w];
    return v;
}

// Merges split partials of head (blockIdx.x, batch blockIdx.y) and applies B_v[g](j) once.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) reduce_kernel(const KernelArgs a) {
    extern __shared__ __align__(16) uint8_t smem[];
    float* w = reinterpret_cast<float*>(smem);  // [n_splits]
    float* olat = w + a.n_splits;               // [r_v]
    __shared__ float red[kThreads / 32];
    const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
    const size_t stride = size_t(a.batch) * a.n_heads;  // between splits, in heads
    const size_t hi = size_t(b) * a.n_heads + h;

    float mx = -INFINITY;
    for (int s = tid; s < a.n_splits; s += kThreads) mx = fmaxf(mx, a.ws_ml[(s * stride + hi) * 2]);
    mx = block_reduce(mx, true, red);
    float l = 0.0f;
    for (int s = tid; s < a.n_splits; s += kThreads) {
        const float m = a.ws_ml[(s * stride + hi) * 2];
        const float ws = m == -INFINITY ? 0.0f : exp2f(m - mx);
        w[s] = ws;
        l += ws * a.ws_ml[(s * stride + hi) * 2 + 1];
    }
    l = block_reduce(l, false, red);
    const float inv_l = 1.0f / l;
    __syncthreads();
    for (int r = tid; r < a.r_v; r += kThreads) {
        float acc = 0.0f;
        for (int s = 0; s < a.n_splits; ++s)
            if (w[s] != 0.0f) acc = fmaf(w[s], a.ws_o[(s * stride + hi) * a.r_v + r], acc);
        acc *= inv_l;
        olat[r] = acc;
        if (a.out_latent) a.out_latent[hi * a.r_v + r] = acc;
    }
    if (!a.out) return;
    __syncthreads();
    const int j = h / a.n_rep;  // KV head; its rows of B_v are rows j·D .. j·D+D-1 overall
    const T* bv = reinterpret_cast<const T*>(a.v_up) + size_t(j) * D * a.r_v;
    const int lane = tid & 31, warp = tid >> 5;
    T* out = reinterpret_cast<T*>(a.out) + hi * D;
    for (int d = warp; d < D; d += kThreads / 32) {
        const T* row = bv + size_t(d) * a.r_v;
        float acc = 0.0f;
        for (int r = lane; r < a.r_v; r += 32) acc = fmaf(Ops<T>::to_f(row[r]), olat[r], acc);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) out[d] = Ops<T>::from_f(acc);
    }
}

template <typename T, int D, int TT>
cudaError_t launch_typed(const KernelArgs& a, cudaStream_t stream, const char** what) {
    static std::atomic<size_t> configured{0};
    if (a.smem_bytes > 48 * 1024 && a.smem_bytes > configured.load()) {
        *what = "cudaFuncSetAttribute(split_kernel, MaxDynamicSharedMemorySize)";
        cudaError_t e = cudaFuncSetAttribute(split_kernel<T, D, TT>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(a.smem_bytes));
        if (e != cudaSuccess) return e;
        configured.store(a.smem_bytes);
    }
    *what = "split_kernel launch";
    dim3 grid(a.n_head_blocks, a.n_splits, a.batch * a.n_groups);
    split_kernel<T, D, TT><<<grid, kThreads, a.smem_bytes, stream>>>(a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    return launch_reduce(a, stream, what);
}

}  // namespace

size_t split_kernel_smem_bytes(int d_head, int r_k, int r_v, int bits_k, int bits_v,
                               int kv_per_block, int n_rep, int n_stages, int tile_tokens) {
    return make_layout(d_head, r_k, r_v, bits_k, bits_v, kv_per_block, n_rep, n_stages, tile_tokens)
        .total;
}

cudaError_t launch_reduce(const KernelArgs& a, cudaStream_t stream, const char** what) {
    *what = "reduce_kernel launch";
    const size_t rsmem = (size_t(a.n_splits) + a.r_v) * 4;
    const bool bf16 = a.dtype == 1;
    const void* f = a.d_head == 128 ? (bf16 ? (const void*)reduce_kernel<__nv_bfloat16, 128>
                                            : (const void*)reduce_kernel<__half, 128>)
                                    : (bf16 ? (const void*)reduce_kernel<__nv_bfloat16, 64>
                                            : (const void*)reduce_kernel<__half, 64>);
    if (rsmem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(rsmem));
        if (e != cudaSuccess) return e;
    }
    const dim3 grid(a.n_heads, a.batch);
    if (a.d_head == 128) {
        if (bf16)
            reduce_kernel<__nv_bfloat16, 128><<<grid, kThreads, rsmem, stream>>>(a);
        else
            reduce_kernel<__half, 128><<<grid, kThreads, rsmem, stream>>>(a);
    } else {
        if (bf16)
            reduce_kernel<__nv_bfloat16, 64><<<grid, kThreads, rsmem, stream>>>(a);
        else
            reduce_kernel<__half, 64><<<grid, kThreads, rsmem, stream>>>(a);
    }
    return cudaGetLastError();
}

cudaError_t launch_latent_attention(const KernelArgs& a, cudaStream_t stream, const char** what) {
    const bool bf16 = a.dtype == 1;
    const bool big = a.tile_tokens == 128;
    if (a.d_head == 128) {
        if (big)
            return bf16 ? launch_typed<__nv_bfloat16, 128, 128>(a, stream, what)
                        : launch_typed<__half, 128, 128>(a, stream, what);
        return bf16 ? launch_typed<__nv_bfloat16, 128, 64>(a, stream, what)
                    : launch_typed<__half, 128, 64>(a, stream, what);
    }
    if (big)
        return bf16 ? launch_typed<__nv_bfloat16, 64, 128>(a, stream, what)
                    : launch_typed<__half, 64, 128>(a, stream, what);
    return bf16 ? launch_typed<__nv_bfloat16, 64, 64>(a, stream, what)
                : launch_typed<__half, 64, 64>(a, stream, what);
}

cudaError_t split_kernel_occupancy(int d_head, int dtype, int tile_tokens, size_t smem,
                                   int* blocks) {
    const bool bf = dtype == 1, big = tile_tokens == 128;
    const void* f;
    if (d_head == 128)
        f = big ? (bf ? (const void*)split_kernel<__nv_bfloat16, 128, 128>
                      : (const void*)split_kernel<__half, 128, 128>)
                : (bf ? (const void*)split_kernel<__nv_bfloat16, 128, 64>
                      : (const void*)split_kernel<__half, 128, 64>);
    else
        f = big ? (bf ? (const void*)split_kernel<__nv_bfloat16, 64, 128>
                      : (const void*)split_kernel<__half, 64, 128>)
                : (bf ? (const void*)split_kernel<__nv_bfloat16, 64, 64>
                      : (const void*)split_kernel<__half, 64, 64>);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem));
        if (e != cudaSuccess) return e;
    }
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, f, kThreads, smem);
}

cudaError_t device_smem_optin(int* bytes, int* n_sm) {
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    e = cudaDeviceGetAttribute(bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    return cudaDeviceGetAttribute(n_sm, cudaDevAttrMultiProcessorCount, dev);
}

}  // namespace palu::cuda::detail
