// palu kernels (private): device helpers shared by the latent-attention kernels (block kernel in
// latent_attention.cu, warp kernel in latent_attention_warp.cu): element ops and mma per dtype,
// cp.async / ldmatrix wrappers, RoPE angles. Included only by .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace palu::cuda::detail {
namespace {

__host__ __device__ constexpr size_t align16(size_t x) {
    return (x + 15) & ~size_t(15);
}

__host__ __device__ inline int64_t row_bytes(int r, int bits) {
    return bits == 16 ? int64_t(r) * 2 : int64_t(r) * bits / 8;
}
template <typename T>
struct Ops;
template <>
struct Ops<__half> {
    static constexpr bool kIsHalf = true;
    __device__ static float to_f(__half x) { return __half2float(x); }
    __device__ static __half from_f(float x) { return __float2half_rn(x); }
    __device__ static float2 to_f2(uint32_t w) {
        __half2 h = *reinterpret_cast<__half2*>(&w);
        return __half22float2(h);
    }
    __device__ static uint32_t pack2(float a, float b) {
        __half2 h = __floats2half2_rn(a, b);
        return *reinterpret_cast<uint32_t*>(&h);
    }
    __device__ static void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <>
struct Ops<__nv_bfloat16> {
    static constexpr bool kIsHalf = false;
    __device__ static float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
    __device__ static __nv_bfloat16 from_f(float x) { return __float2bfloat16_rn(x); }
    __device__ static float2 to_f2(uint32_t w) {
        __nv_bfloat162 h = *reinterpret_cast<__nv_bfloat162*>(&w);
        return __bfloat1622float2(h);
    }
    __device__ static uint32_t pack2(float a, float b) {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<uint32_t*>(&h);
    }
    __device__ static void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

__device__ inline uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ inline void cp_async16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src));
}
__device__ inline void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ inline void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ inline void ldmatrix_x4_trans(uint32_t* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ inline void ldmatrix_x4(uint32_t* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

// cos/sin of θ = fl32(pos · inv_freq): the float32 product as HF computes it, then a two-constant
// Cody–Waite reduction to [−π, π] so the fast __sincosf (abs. error ~2^-21) stays accurate at
// positions up to 2^24.
__device__ inline void rope_sincos(int pos, float inv_freq, float* s, float* c) {
    const float theta = __fmul_rn(static_cast<float>(pos), inv_freq);
    const float k = rintf(theta * 0.159154943091895336f);
    float r = fmaf(-k, 6.28318548202514648f, theta);
    r = fmaf(-k, -1.7484555314695172e-07f, r);
    __sincosf(r, s, c);
}

// Key reconstruction on tensor cores, one k-step (16 latent channels) of a 16-token × column-half
// unit: acc [2·NQ n8 tiles][4] += H[16 tokens, kk..kk+15] · B_k[rows of the half, kk..kk+15]ᵀ.
// Column half ch holds n8 tiles [ch·NQ, ch·NQ + NQ) and [NT/2 + ch·NQ, …) (NT = 4·NQ tiles per
// head), so the rotate-half partner of column d (tile i) is column d + d_head/2 (tile i + NQ), same
// lane. a_ptr: this lane's ldmatrix row of the latent tile; b_ptr: its row of the head's B_k rows
// (pitch pk).
template <typename T, int NQ>
__device__ __forceinline__ void key_kstep(float (&acc)[2 * NQ][4], const T* a_ptr, const T* b_ptr,
                                          int pk, int kk, int ch) {
    constexpr int NT = 4 * NQ;
    uint32_t af[4];
    ldmatrix_x4(af, a_ptr + kk);
#pragma unroll
    for (int pp = 0; pp < NQ; ++pp) {  // pairs of n8 tiles: local tiles 2pp, 2pp + 1
        const int i0 = 2 * pp;
        const int nt0 = i0 < NQ ? ch * NQ + i0 : NT / 2 + ch * NQ + (i0 - NQ);
        uint32_t bf[4];
        ldmatrix_x4(bf, b_ptr + nt0 * 8 * pk + kk);
        Ops<T>::mma(acc[i0], af, bf[0], bf[1]);
        Ops<T>::mma(acc[i0 + 1], af, bf[2], bf[3]);
    }
}

// RoPE on the rebuilt keys of a key_kstep unit, in registers: row r0 (position pos0) takes a
// range-reduced sincos, row r0 + 8 one complex rotation by 8·f (c8s[i] = (cos, sin)(8·inv_freq[i]);
// positions are contiguous). fs = inv_freq.
template <int NQ>
__device__ __forceinline__ void rope_rows(float (&acc)[2 * NQ][4], int ch, int lane, int pos0,
                                          const float* fs, const float2* c8s) {
#pragma unroll
    for (int i = 0; i < NQ; ++i) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int fi = (ch * NQ + i) * 8 + 2 * (lane & 3) + e;
            float sn, cs;
            rope_sincos(pos0, fs[fi], &sn, &cs);
            float k0 = acc[i][e], k1 = acc[i + NQ][e];
            acc[i][e] = k0 * cs - k1 * sn;
            acc[i + NQ][e] = k1 * cs + k0 * sn;
            const float2 r8 = c8s[fi];
            const float cs1 = cs * r8.x - sn * r8.y;
            sn = sn * r8.x + cs * r8.y;
            cs = cs1;
            k0 = acc[i][2 + e];
            k1 = acc[i + NQ][2 + e];
            acc[i][2 + e] = k0 * cs - k1 * sn;
            acc[i + NQ][2 + e] = k1 * cs + k0 * sn;
        }
    }
}

// Codes 8·grp … 8·grp + 7 of one packed row (little-endian bit stream, `bits` ∈ {2, 3, 4}) as the
// exact integers code − zero in T (8 values, 16 bytes). Exact in f16 and bf16; the per-token scale
// is applied by the caller (to the score, or folded into P).
template <typename T>
__device__ inline uint4 dequant8(const uint8_t* row, int grp, int bits, __half zero) {
    if (bits == 4 && Ops<T>::kIsHalf) {
        // 0x6400 | c is the half 1024 + c; (1024 + c) − (1024 + z) is exact (z an integer, |z| <
        // 1024). Nibble pairs (c_i, c_{i+4}) come out of one mask; prmt reorders.
        const uint32_t w = *reinterpret_cast<const uint32_t*>(row + grp * 4);
        const __half2 zz = __hadd2(__half2half2(zero), __float2half2_rn(1024.0f));
        uint32_t h[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            uint32_t v = ((w >> (4 * k)) & 0x000F000Fu) | 0x64006400u;
            __half2 x = __hsub2(*reinterpret_cast<__half2*>(&v), zz);
            h[k] = *reinterpret_cast<uint32_t*>(&x);
        }
        // h[k] = (x_k, x_{k+4}); output order x0 x1 | x2 x3 | x4 x5 | x6 x7
        return make_uint4(__byte_perm(h[0], h[1], 0x5410), __byte_perm(h[2], h[3], 0x5410),
                          __byte_perm(h[0], h[1], 0x7632), __byte_perm(h[2], h[3], 0x7632));
    }
    uint32_t w;
    if (bits == 4) {
        w = *reinterpret_cast<const uint32_t*>(row + grp * 4);
    } else if (bits == 2) {
        w = *reinterpret_cast<const uint16_t*>(row + grp * 2);
    } else {
        const uint8_t* q = row + grp * 3;
        w = uint32_t(q[0]) | (uint32_t(q[1]) << 8) | (uint32_t(q[2]) << 16);
    }
    const float z = __half2float(zero);
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t o[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        // 0x4B000000 | c is the float 2^23 + c: an exact int → float without the slow I2F.
        const float x0 =
            __uint_as_float(0x4B000000u | ((w >> (bits * (2 * k))) & mask)) - 8388608.0f - z;
        const float x1 =
            __uint_as_float(0x4B000000u | ((w >> (bits * (2 * k + 1))) & mask)) - 8388608.0f - z;
        o[k] = Ops<T>::pack2(x0, x1);
    }
    return make_uint4(o[0], o[1], o[2], o[3]);
}

__device__ inline void cp_async16_s(uint32_t dst, const void* src) {  // dst: shared-window address
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ inline void cp_async16_zfill(void* dst, const void* src, bool valid) {
    // src-size 0 writes 16 zero bytes without reading src.
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}

}  // namespace
}  // namespace palu::cuda::detail
