// palu kernels: the warp kernel (v9) of the fused latent decode attention (issue #5).
//
// Same math, inputs and partial outputs as split_kernel in latent_attention.cu, organised so that
// no block-wide barrier sits in the token loop. Profiles of the block kernel showed it latency- and
// issue-bound: 4–5 __syncthreads per tile, phases where most warps idle (one warp per head in the
// softmax), 0.48 eligible warps per scheduler cycle (docs/kernels.md). Here:
//   * a block owns ONE KV head j (of group g) and a token range; its B_k[g](j) rows, RoPE(q) and
//   the
//     RoPE frequency tables are loaded once into shared memory (the only block barrier);
//   * each of kWarps warps streams its own 16-token chunks (chunks warp, warp + kWarps, ... of the
//     range) through a private 2-deep cp.async ring, dequantizes them in its private tile
//     (2/3/4-bit), rebuilds the 16 keys on tensor cores (mma m16n8k16, two column halves of 16 ×
//     d_head/2 so the rotate-half pair lands in one lane), applies RoPE and the q·k dot in
//     registers, runs its own online softmax for the n_rep query heads, and accumulates P·h_v on
//     tensor cores in the transposed form o_latᵀ[r_v × heads] += h_vᵀ[r_v × 16] · Pᵀ[16 × heads],
//     so the accumulator is r_v/4 registers per lane (heads are the n = 8 side);
//   * after the loop (one barrier) the warps' (max, sum, o_lat) are merged in shared memory and the
//     block writes one partial per split, like the block kernel; the same reduction kernel follows.
// Supported (the host plan falls back to the block kernel otherwise): n_rep ≤ 8, r_v ≤ 256,
// both caches 16-bit or both quantized, and the shared memory fits (2-stage ring for r_v ≤ 128,
// else 1 stage). Numerics are those of the block kernel (v8): quantized tiles
// hold the exact integers code − zero; key scales multiply scores, value scales fold into P.
#include <atomic>
#include <cmath>
#include <cstdint>

#include "latent_attention_device.cuh"
#include "latent_attention_launch.h"

namespace palu::cuda::detail {
namespace {

constexpr int kWarps = kWarpKernelWarps;  // warps per block
constexpr int kChunk = kWarpChunk;        // tokens per warp chunk
constexpr int kPPitch = 24;               // P buffer pitch (elements): 16 tokens + 8 padding
constexpr int kMaxRep = kWarpMaxRep;  // query heads per KV head (the n = 8 side of the P·h_v mma)

struct WarpLayout {
    size_t b_up, q, f, c8, warp0, warp_step, k_tile, v_tile, tile_step, k_stage, v_stage,
        stage_step, p, total;
};

// stages: depth of the per-warp cp.async ring (2: the next chunk streams in during this one; 1: the
// large-rank variant, r_v > 128, whose tiles would not fit twice).
__host__ __device__ inline WarpLayout make_warp_layout(int d, int r_k, int r_v, int bits_k,
                                                       int bits_v, int n_rep, int stages) {
    WarpLayout L{};
    const bool qk = bits_k != 16, qv = bits_v != 16;
    size_t off = 0;
    L.b_up = off;
    off += align16(size_t(d) * (r_k + 8) * 2);
    L.q = off;
    off += align16(size_t(n_rep) * d * 4);
    L.f = off;
    off += align16(size_t(d / 2) * 4);
    L.c8 = off;
    off += align16(size_t(d / 2) * 8);
    L.warp0 = off;
    // One warp's region, offsets relative to its start.
    size_t w = 0;
    const size_t tk = size_t(kChunk) * (r_k + 8) * 2, tv = size_t(kChunk) * (r_v + 8) * 2;
    if (qk) {  // one dequantized tile per warp, holding K for the scores, then V for P·h_v
        L.k_tile = L.v_tile = w;
        L.tile_step = 0;
        w += tk > tv ? tk : tv;
    } else {  // ring of (K, V) tile pairs
        L.k_tile = w;
        L.v_tile = w + tk;
        L.tile_step = tk + tv;
        w += stages * (tk + tv);
    }
    const size_t sk = qk ? align16(size_t(kChunk) * row_bytes(r_k, bits_k)) + 2 * kChunk * 2 : 0;
    const size_t sv = qv ? align16(size_t(kChunk) * row_bytes(r_v, bits_v)) + 2 * kChunk * 2 : 0;
    L.k_stage = w;
    L.v_stage = w + sk;
    L.stage_step = sk + sv;
    w += stages * (sk + sv);
    L.p = w;
    w += align16(size_t(kMaxRep) * kPPitch * 2);
    L.warp_step = align16(w);
    // After the token loop the warp regions hold the intra-block merge: m and l [kWarps][kMaxRep],
    // o_lat [kWarps][n_rep][r_v] (f32).
    const size_t merge = size_t(2) * kWarps * kMaxRep * 4 + size_t(kWarps) * n_rep * r_v * 4;
    L.total = L.warp0 + (kWarps * L.warp_step > merge ? kWarps * L.warp_step : merge);
    return L;
}

// A lane's share of a 16-row chunk whose rows are cpr = r/8 pieces of 16 bytes (a 16-bit row, or
// the 8-code groups of a packed row), computed once per cache before the token loop and packed in
// one register:
//  * cpr a power of two (r = 32, 64, 128, 256): the lane always takes piece `col` of rows row,
//    row + step, ... (step = 32 / cpr rows per pass, all lanes busy):
//    row | col << 5 | step << 10 | passes << 15 | active << 20;
//  * otherwise (r = 96, 160, ...): flat items i = lane, lane + 32, ... with row = i / cpr by the
//    multiplier m = ceil(2^16 / cpr), exact for i < 16·cpr + 32 ≤ 544 (checked for every cpr ≤ 32):
//    1 << 31 | cpr | m << 6.
__device__ inline uint32_t make_row_plan(int r, int lane) {
    const int cpr = r / 8;  // ≤ 32 (r ≤ 256)
    if ((cpr & (cpr - 1)) != 0)
        return 1u << 31 | uint32_t(cpr) | uint32_t((65536 + cpr - 1) / cpr) << 6;
    const int step = 32 / cpr;
    const int row = lane / cpr, col = lane - row * cpr;
    const int passes = (kChunk + step - 1) / step;
    const bool active = lane < step * cpr;
    return uint32_t(row) | uint32_t(col) << 5 | uint32_t(step) << 10 | uint32_t(passes) << 15 |
           uint32_t(active) << 20;
}
struct RowPlan {
    int row, col, step, passes;
    bool active;
    __device__ explicit RowPlan(uint32_t p)
        : row(p & 31),
          col((p >> 5) & 31),
          step((p >> 10) & 31),
          passes((p >> 15) & 31),
          active((p >> 20) & 1) {}
};
// Calls f(row, piece) for every piece of the chunk this lane owns under `plan`.
template <typename F>
__device__ inline void for_each_piece(uint32_t plan, int lane, F&& f) {
    if (plan >> 31) {
        const int cpr = plan & 63, m = (plan >> 6) & 0x7fff;
        for (int i = lane; i < kChunk * cpr; i += 32) {
            const int row = (i * m) >> 16;
            f(row, i - row * cpr);
        }
        return;
    }
    const RowPlan pl(plan);
    if (!pl.active) return;
    for (int k = 0, row = pl.row; k < pl.passes; ++k, row += pl.step) f(row, pl.col);
}

// Packed rows → padded T tile (16 rows, pitch r + 8): x = code − zero, exact; rows ≥ n_valid are
// zero (their codes and zero-points are stale or uninitialised). One warp.
template <typename T>
__device__ inline void dequant_chunk(T* tile, const uint8_t* codes, const __half* zeros,
                                     int n_valid, int r, int bits, uint32_t plan, int lane) {
    const int64_t rb = row_bytes(r, bits);
    const int pitch = r + 8;
    for_each_piece(plan, lane, [&](int row, int grp) {  // 8 codes → 16 bytes of the tile
        const uint4 outv = row < n_valid ? dequant8<T>(codes + row * rb, grp, bits, zeros[row])
                                         : make_uint4(0u, 0u, 0u, 0u);
        *reinterpret_cast<uint4*>(tile + row * pitch + grp * 8) = outv;
    });
}

// Issues one warp's cp.async copies of chunk rows [row0, row0 + 16) of one cache. 16-bit: into the
// padded tile, rows < n_valid only. Quantized: the 16 packed rows (always inside the
// allocation: chunks start at multiples of 16 and capacity is a multiple of 16), then the 16 scales
// and 16 zero-points, flat into the stage.
__device__ inline void load_chunk(uint8_t* tile, uint8_t* stage, const uint8_t* data,
                                  const uint16_t* scales, const uint16_t* zeros, int64_t row0,
                                  int n_valid, int r, bool quant, int rb_codes, uint32_t plan,
                                  int lane) {
    if (!quant) {
        // Rows ≥ n_valid are not copied: the tile keeps finite stale rows (the ring is zeroed at
        // the start), their scores are masked and their P is 0. step ∈ {1, 2, 4, 8} divides 16.
        if (plan >> 31) {
            const uint8_t* src = data + row0 * r * 2;
            for_each_piece(plan, lane, [&](int row, int col) {
                if (row < n_valid)
                    cp_async16(tile + row * (r + 8) * 2 + col * 16,
                               src + (size_t(row) * r + col * 8) * 2);
            });
            return;
        }
        const RowPlan pl(plan);
        if (!pl.active) return;
        const size_t s_step = size_t(pl.step) * r * 2;
        const uint32_t d_step = uint32_t(pl.step) * (r + 8) * 2;
        const uint8_t* src = data + ((row0 + pl.row) * r + pl.col * 8) * 2;
        uint32_t dst = smem_u32(tile + pl.row * (r + 8) * 2 + pl.col * 16);
        for (int k = 0, row = pl.row; k < pl.passes;
             ++k, row += pl.step, src += s_step, dst += d_step)
            if (row < n_valid) cp_async16_s(dst, src);
    } else {
        const int n_code = kChunk * rb_codes / 16;
        const uint8_t* src = data + row0 * rb_codes;
        for (int i = lane; i < n_code; i += 32) cp_async16(stage + i * 16, src + i * 16);
        const size_t codes = align16(size_t(kChunk) * rb_codes);
        if (lane < 4) {  // 2 pieces of scales, 2 of zeros (16 halves each)
            const uint16_t* base = lane < 2 ? scales : zeros;
            cp_async16(stage + codes + (lane < 2 ? 0 : kChunk * 2) + (lane & 1) * 16,
                       reinterpret_cast<const uint8_t*>(base + row0) + (lane & 1) * 16);
        }
    }
}

// R > 0: r_k = r_v = R known at compile time (tile pitches, fragment addresses and the k-loop fold
// into constants); R = 0: any ranks (run-time loop, MT = accumulator m-tiles for r_v ≤ 16·MT).
template <typename T, int D, bool Q, int REP, int MT, int R, int NS>
__global__ void __launch_bounds__(kWarps * 32, NS == 2 ? 2 : 1) warp_kernel(const KernelArgs a) {
    extern __shared__ __align__(16) uint8_t smem[];
    const int hb = blockIdx.x, split = blockIdx.y;
    const int b = blockIdx.z / a.n_groups, g = blockIdx.z % a.n_groups;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int n_rep = a.n_rep;
    const int j = g * a.group_size + hb;  // this block's KV head
    const int h0 = j * n_rep;             // its first query head
    const int len = a.seq_lens[b];
    const int t_begin = split * a.tokens_per_split;
    const int t_end = min(t_begin + a.tokens_per_split, len);
    const size_t part = size_t(split) * a.batch + b;
    float* ws_ml = a.ws_ml + (part * a.n_heads + h0) * 2;
    float* ws_o = a.ws_o + (part * a.n_heads + h0) * a.r_v;
    if (t_begin >= t_end) {
        if (tid < n_rep) {
            ws_ml[2 * tid] = -INFINITY;
            ws_ml[2 * tid + 1] = 0.0f;
        }
        return;
    }
    const int r_k = R ? R : a.r_k, r_v = R ? R : a.r_v;
    const int pk = r_k + 8, pv = r_v + 8;
    const WarpLayout L = make_warp_layout(D, r_k, r_v, a.bits_k, a.bits_v, n_rep, NS);
    T* b_up = reinterpret_cast<T*>(smem + L.b_up);
    float* qs = reinterpret_cast<float*>(smem + L.q);
    float* fs = reinterpret_cast<float*>(smem + L.f);
    float2* c8s = reinterpret_cast<float2*>(smem + L.c8);
    uint8_t* wbase = smem + L.warp0 + warp * L.warp_step;
    T* pbuf = reinterpret_cast<T*>(wbase + L.p);

    const int64_t cache_row0 = (int64_t(b) * a.n_groups + g) * a.capacity;
    const int kp0 = a.k_pos0 ? a.k_pos0[b] : 0;
    const int qp = a.q_pos ? a.q_pos[b] : kp0 + len - 1;
    const int rbk = Q ? static_cast<int>(row_bytes(r_k, a.bits_k)) : 0;
    const int rbv = Q ? static_cast<int>(row_bytes(r_v, a.bits_v)) : 0;

    // Block prologue: B_k[g](j) rows, then each warp's first chunk; RoPE(q)·scale·log2 e; tables.
    {
        const T* src = reinterpret_cast<const T*>(a.k_up) + size_t(j) * D * r_k;
        const int cpr = r_k / 8, n = D * cpr;
        for (int c = tid; c < n; c += kWarps * 32) {
            const int row = c / cpr, col = c - row * cpr;
            cp_async16(b_up + size_t(row) * pk + col * 8, src + size_t(row) * r_k + col * 8);
        }
        cp_async_commit();
    }
    const uint32_t plan_k = make_row_plan(r_k, lane), plan_v = make_row_plan(r_v, lane);
    auto load = [&](int t0, int slot) {
        const int nv = min(kChunk, t_end - t0);
        uint8_t* tile = wbase + slot * L.tile_step;
        uint8_t* stage = wbase + L.k_stage + slot * L.stage_step;
        load_chunk(tile + L.k_tile, stage, a.k_data, a.k_scales, a.k_zeros, cache_row0 + t0, nv,
                   r_k, Q, rbk, plan_k, lane);
        load_chunk(tile + L.v_tile, stage + (L.v_stage - L.k_stage), a.v_data, a.v_scales,
                   a.v_zeros, cache_row0 + t0, nv, r_v, Q, rbv, plan_v, lane);
    };
    const int stride = kWarps * kChunk;
    const int t_first = t_begin + warp * kChunk;
    if constexpr (!Q) {  // tiles: rows past a sequence's end are never copied and must be finite
        uint4* z = reinterpret_cast<uint4*>(wbase + L.k_tile);
        for (int i = lane; i < int(NS * L.tile_step / 16); i += 32)
            z[i] = make_uint4(0u, 0u, 0u, 0u);
        __syncwarp();
    }
    if (t_first < t_end) load(t_first, 0);
    cp_async_commit();
    {
        const T* q = reinterpret_cast<const T*>(a.q) + (size_t(b) * a.n_heads + h0) * D;
        for (int i = tid; i < n_rep * (D / 2); i += kWarps * 32) {
            const int hl = i / (D / 2), d = i % (D / 2);
            const float x0 = Ops<T>::to_f(q[hl * D + d]), x1 = Ops<T>::to_f(q[hl * D + d + D / 2]);
            float sn, cs;
            rope_sincos(qp, a.inv_freq[d], &sn, &cs);
            qs[hl * D + d] = (x0 * cs - x1 * sn) * a.scale_log2;
            qs[hl * D + d + D / 2] = (x1 * cs + x0 * sn) * a.scale_log2;
        }
        for (int i = tid; i < D / 2; i += kWarps * 32) {
            fs[i] = a.inv_freq[i];
            float sn, cs;
            sincosf(8.0f * a.inv_freq[i], &sn, &cs);
            c8s[i] = make_float2(cs, sn);
        }
        for (int i = lane; i < kMaxRep * kPPitch; i += 32) pbuf[i] = Ops<T>::from_f(0.0f);
    }
    cp_async_wait<1>();  // B_k landed (the first chunk may still be in flight)
    __syncthreads();

    constexpr int NT = D / 8;   // n8 tiles per head
    constexpr int NQ = NT / 4;  // n8 tiles per quarter; a column half = quarters (ch, ch + 2)
    float oacc[MT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i) oacc[i][0] = oacc[i][1] = oacc[i][2] = oacc[i][3] = 0.0f;
    float m_run[REP], l_run[REP];
#pragma unroll
    for (int i = 0; i < REP; ++i) {
        m_run[i] = -INFINITY;
        l_run[i] = 0.0f;
    }
    const int n_mt = r_v / 16;
    const int r0 = lane >> 2;
    const T* b_ptr = b_up + ((lane & 7) + ((lane >> 4) << 3)) * pk + ((lane >> 3) & 1) * 8;

    int slot = 0;
    for (int t0 = t_first; t0 < t_end; t0 += stride, slot = NS == 2 ? slot ^ 1 : 0) {
        const int n_valid = min(kChunk, t_end - t0);
        if constexpr (NS == 2) {  // the next chunk streams in while this one is computed
            if (t0 + stride < t_end) load(t0 + stride, slot ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {  // single slot: this chunk was issued at the end of the previous iteration
            cp_async_wait<0>();
        }
        __syncwarp();
        T* tk = reinterpret_cast<T*>(wbase + slot * L.tile_step + L.k_tile);
        T* tv = reinterpret_cast<T*>(wbase + slot * L.tile_step + L.v_tile);
        const uint8_t* stk = wbase + L.k_stage + slot * L.stage_step;
        const uint8_t* stv = wbase + L.v_stage + slot * L.stage_step;
        const size_t ck = align16(size_t(kChunk) * rbk), cv = align16(size_t(kChunk) * rbv);
        if constexpr (Q) {  // K now; V into the same tile once the scores are done
            dequant_chunk<T>(tk, stk, reinterpret_cast<const __half*>(stk + ck + kChunk * 2),
                             n_valid, r_k, a.bits_k, plan_k, lane);
            __syncwarp();
        }

        // Scores of rows r0 and r0 + 8 for every query head, summed over the two column halves.
        float s0[REP], s1[REP];
#pragma unroll
        for (int i = 0; i < REP; ++i) s0[i] = s1[i] = 0.0f;
        const T* a_ptr = tk + (lane & 15) * pk + (lane >> 4) * 8;
        const int pos0 = kp0 + t0 + r0;
#pragma unroll
        for (int ch = 0; ch < 2; ++ch) {
            float acc[2 * NQ][4];
#pragma unroll
            for (int i = 0; i < 2 * NQ; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
            if constexpr (R > 0) {
#pragma unroll
                for (int kk = 0; kk < R; kk += 16) key_kstep<T, NQ>(acc, a_ptr, b_ptr, pk, kk, ch);
            } else {
                for (int kk = 0; kk < r_k; kk += 32) {  // r_k % 32 == 0: no remainder
                    key_kstep<T, NQ>(acc, a_ptr, b_ptr, pk, kk, ch);
                    key_kstep<T, NQ>(acc, a_ptr, b_ptr, pk, kk + 16, ch);
                }
            }
            rope_rows<NQ>(acc, ch, lane, pos0, fs, c8s);
#pragma unroll
            for (int hr = 0; hr < REP; ++hr) {
                if (hr >= n_rep) break;
                const float* qh = qs + hr * D + 2 * (lane & 3);
#pragma unroll
                for (int i = 0; i < 2 * NQ; ++i) {
                    const int nt = i < NQ ? ch * NQ + i : NT / 2 + ch * NQ + (i - NQ);
                    const float2 qv = *reinterpret_cast<const float2*>(qh + nt * 8);
                    s0[hr] = fmaf(qv.x, acc[i][0], fmaf(qv.y, acc[i][1], s0[hr]));
                    s1[hr] = fmaf(qv.x, acc[i][2], fmaf(qv.y, acc[i][3], s1[hr]));
                }
            }
        }

        // Online softmax per head over this chunk (base 2; q carries scale·log2 e), P into pbuf.
        const bool ok0 = r0 < n_valid, ok1 = r0 + 8 < n_valid;
        float ks0 = 1.0f, ks1 = 1.0f, vs0 = 1.0f, vs1 = 1.0f;
        if constexpr (Q) {
            const __half* ksc = reinterpret_cast<const __half*>(stk + ck);
            const __half* vsc = reinterpret_cast<const __half*>(stv + cv);
            ks0 = __half2float(ksc[r0]);
            ks1 = __half2float(ksc[r0 + 8]);
            vs0 = __half2float(vsc[r0]);
            vs1 = __half2float(vsc[r0 + 8]);
        }
        float al_c0 = 1.0f,
              al_c1 = 1.0f;  // rescale of this lane's o_lat columns (heads 2(lane&3), +1)
#pragma unroll
        for (int hr = 0; hr < REP; ++hr) {
            if (hr >= n_rep) break;
            float a0 = s0[hr], a1 = s1[hr];
            a0 += __shfl_xor_sync(0xffffffffu, a0, 1);
            a0 += __shfl_xor_sync(0xffffffffu, a0, 2);
            a1 += __shfl_xor_sync(0xffffffffu, a1, 1);
            a1 += __shfl_xor_sync(0xffffffffu, a1, 2);
            a0 = ok0 ? a0 * ks0 : -INFINITY;
            a1 = ok1 ? a1 * ks1 : -INFINITY;
            float mx = fmaxf(a0, a1);
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
            const float m_new = fmaxf(m_run[hr], mx);
            const float p0 = exp2f(a0 - m_new), p1 = exp2f(a1 - m_new);
            float sum = p0 + p1;
            sum += __shfl_xor_sync(0xffffffffu, sum, 4);
            sum += __shfl_xor_sync(0xffffffffu, sum, 8);
            sum += __shfl_xor_sync(0xffffffffu, sum, 16);
            const float al = exp2f(m_run[hr] - m_new);
            l_run[hr] = l_run[hr] * al + sum;
            m_run[hr] = m_new;
            if (hr == 2 * (lane & 3)) al_c0 = al;
            if (hr == 2 * (lane & 3) + 1) al_c1 = al;
            if ((lane & 3) == 0) {
                pbuf[hr * kPPitch + r0] = Ops<T>::from_f(ok0 ? p0 * vs0 : 0.0f);
                pbuf[hr * kPPitch + r0 + 8] = Ops<T>::from_f(ok1 ? p1 * vs1 : 0.0f);
            }
        }
        __syncwarp();
        if constexpr (Q) {
            dequant_chunk<T>(tv, stv, reinterpret_cast<const __half*>(stv + cv + kChunk * 2),
                             n_valid, r_v, a.bits_v, plan_v, lane);
            __syncwarp();
        }

        // o_latᵀ = alpha · o_latᵀ + h_vᵀ · Pᵀ: A = value tile transposed (ldmatrix.trans), B = P.
        const uint32_t pb0 =
            *reinterpret_cast<const uint32_t*>(pbuf + r0 * kPPitch + 2 * (lane & 3));
        const uint32_t pb1 =
            *reinterpret_cast<const uint32_t*>(pbuf + r0 * kPPitch + 2 * (lane & 3) + 8);
        const T* v_ptr = tv + ((lane & 7) + ((lane >> 4) << 3)) * pv + ((lane >> 3) & 1) * 8;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            if (mt >= n_mt) break;
            oacc[mt][0] *= al_c0;
            oacc[mt][1] *= al_c1;
            oacc[mt][2] *= al_c0;
            oacc[mt][3] *= al_c1;
            uint32_t va[4];
            ldmatrix_x4_trans(va, v_ptr + mt * 16);
            Ops<T>::mma(oacc[mt], va, pb0, pb1);
        }
        __syncwarp();  // the slot is refilled next (NS = 2: by the next iteration's prefetch)
        if constexpr (NS == 1) {
            if (t0 + stride < t_end) load(t0 + stride, 0);
            cp_async_commit();
        }
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp is done with its region: reuse them for the merge

    // Intra-block merge of the kWarps partials (a warp without chunks has m = −inf, o = 0).
    float* m_st = reinterpret_cast<float*>(smem + L.warp0);  // [kWarps][kMaxRep]
    float* l_st = m_st + kWarps * kMaxRep;
    float* o_st = l_st + kWarps * kMaxRep;  // [kWarps][n_rep][r_v]
#pragma unroll
    for (int hr = 0; hr < REP; ++hr) {
        if (hr >= n_rep) break;
        if (lane == 0) {
            m_st[warp * kMaxRep + hr] = m_run[hr];
            l_st[warp * kMaxRep + hr] = l_run[hr];
        }
    }
    const int n0 = 2 * (lane & 3);
    float* o_w = o_st + size_t(warp) * n_rep * r_v;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        if (mt >= n_mt) break;
        const int m = mt * 16 + r0;
        if (n0 < n_rep) {
            o_w[n0 * r_v + m] = oacc[mt][0];
            o_w[n0 * r_v + m + 8] = oacc[mt][2];
        }
        if (n0 + 1 < n_rep) {
            o_w[(n0 + 1) * r_v + m] = oacc[mt][1];
            o_w[(n0 + 1) * r_v + m + 8] = oacc[mt][3];
        }
    }
    __syncthreads();
    for (int i = tid; i < n_rep * r_v; i += kWarps * 32) {
        const int hr = i / r_v, r = i - hr * r_v;
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < kWarps; ++w)
            mx = fmaxf(mx, m_st[w * kMaxRep + hr]);  // finite: warp 0 has a chunk
        float o = 0.0f, l = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
            const float mw = m_st[w * kMaxRep + hr];
            if (mw == -INFINITY) continue;
            const float sc = exp2f(mw - mx);
            o = fmaf(sc, o_st[(size_t(w) * n_rep + hr) * r_v + r], o);
            l = fmaf(sc, l_st[w * kMaxRep + hr], l);
        }
        ws_o[hr * r_v + r] = o;
        if (r == 0) {
            ws_ml[2 * hr] = mx;
            ws_ml[2 * hr + 1] = l;
        }
    }
}

template <typename T, int D, bool Q, int REP, int MT, int R, int NS>
const void* warp_kernel_ptr(cudaError_t* err) {
    static const cudaError_t init = [] {
        int dev = 0, optin = 0;
        cudaError_t e = cudaGetDevice(&dev);
        if (e == cudaSuccess)
            e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
        if (e == cudaSuccess)
            e = cudaFuncSetAttribute(warp_kernel<T, D, Q, REP, MT, R, NS>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
        return e;
    }();
    *err = init;
    return reinterpret_cast<const void*>(warp_kernel<T, D, Q, REP, MT, R, NS>);
}

// Dispatch over the compile-time parameters: dtype, d_head, quantized, n_rep (1, ≤ 4, ≤ 8: the
// per-head softmax state lives in registers), the ring depth and the ranks. Two-stage kernels
// (r_v ≤ 128, 2 blocks per SM): at d_head 128, r_k = r_v ∈ {32, 64, 128} have constant-folded
// instantiations, other ranks the generic one (r_v ≤ 64 or ≤ 128 accumulator m-tiles). One-stage
// kernels (r_v ≤ 256, 1 block per SM, up to 255 registers): r_k = r_v = 256 folded, else generic.
template <typename T, int D, bool Q, int REP>
const void* pick_rank(int r_k, int r_v, int stages, cudaError_t* e) {
    if (stages == 1) {
        if constexpr (D == 128)
            if (r_k == r_v && r_k == 256) return warp_kernel_ptr<T, D, Q, REP, 16, 256, 1>(e);
        return warp_kernel_ptr<T, D, Q, REP, 16, 0, 1>(e);
    }
    if constexpr (D == 128) {
        if (r_k == r_v && r_k == 32) return warp_kernel_ptr<T, D, Q, REP, 2, 32, 2>(e);
        if (r_k == r_v && r_k == 64) return warp_kernel_ptr<T, D, Q, REP, 4, 64, 2>(e);
        if (r_k == r_v && r_k == 128) return warp_kernel_ptr<T, D, Q, REP, 8, 128, 2>(e);
    }
    return r_v <= 64 ? warp_kernel_ptr<T, D, Q, REP, 4, 0, 2>(e)
                     : warp_kernel_ptr<T, D, Q, REP, 8, 0, 2>(e);
}

template <typename T, int D, bool Q>
const void* pick_rep(int n_rep, int r_k, int r_v, int stages, cudaError_t* e) {
    if (n_rep == 1) return pick_rank<T, D, Q, 1>(r_k, r_v, stages, e);
    if (n_rep <= 4) return pick_rank<T, D, Q, 4>(r_k, r_v, stages, e);
    return pick_rank<T, D, Q, kMaxRep>(r_k, r_v, stages, e);
}

template <typename T, int D>
const void* pick_d(bool q, int n_rep, int r_k, int r_v, int stages, cudaError_t* e) {
    return q ? pick_rep<T, D, true>(n_rep, r_k, r_v, stages, e)
             : pick_rep<T, D, false>(n_rep, r_k, r_v, stages, e);
}

const void* pick_kernel(int d_head, int dtype, bool q, int n_rep, int r_k, int r_v, int stages,
                        cudaError_t* e) {
    if (d_head == 128)
        return dtype == 1 ? pick_d<__nv_bfloat16, 128>(q, n_rep, r_k, r_v, stages, e)
                          : pick_d<__half, 128>(q, n_rep, r_k, r_v, stages, e);
    return dtype == 1 ? pick_d<__nv_bfloat16, 64>(q, n_rep, r_k, r_v, stages, e)
                      : pick_d<__half, 64>(q, n_rep, r_k, r_v, stages, e);
}

}  // namespace

size_t warp_kernel_smem_bytes(int d_head, int r_k, int r_v, int bits_k, int bits_v, int n_rep,
                              int stages) {
    return make_warp_layout(d_head, r_k, r_v, bits_k, bits_v, n_rep, stages).total;
}

cudaError_t warp_kernel_occupancy(int d_head, int dtype, bool quant, int n_rep, int r_k, int r_v,
                                  int stages, size_t smem, int* blocks) {
    cudaError_t e = cudaSuccess;
    const void* f = pick_kernel(d_head, dtype, quant, n_rep, r_k, r_v, stages, &e);
    if (e != cudaSuccess) return e;
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, f, kWarps * 32, smem);
}

cudaError_t launch_latent_attention_warp(const KernelArgs& a, cudaStream_t stream,
                                         const char** what) {
    cudaError_t e = cudaSuccess;
    *what = "cudaFuncSetAttribute(warp_kernel, MaxDynamicSharedMemorySize)";
    const void* f =
        pick_kernel(a.d_head, a.dtype, a.bits_k != 16, a.n_rep, a.r_k, a.r_v, a.n_stages, &e);
    if (e != cudaSuccess) return e;
    *what = "warp_kernel launch";
    const dim3 grid(a.n_head_blocks, a.n_splits, a.batch * a.n_groups);
    void* args[] = {const_cast<KernelArgs*>(&a)};
    e = cudaLaunchKernel(f, grid, dim3(kWarps * 32), args, a.smem_bytes, stream);
    if (e != cudaSuccess) return e;
    return launch_reduce(a, stream, what);
}

}  // namespace palu::cuda::detail
