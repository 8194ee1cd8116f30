// palu kernels: host API of the fused latent decode attention (issue #5). Validates shapes
// (ShapeError / UsageError), chooses the launch plan from the device's limits, and turns CUDA
// errors from the .cu side into palu::CudaError. No CUDA kernels here.
#include "palu/kernels/latent_attention.h"

#include <algorithm>
#include <cmath>

#include "latent_attention_launch.h"
#include "palu/core/error.h"

namespace palu::cuda {
namespace {

constexpr const char* kStage = "kernels";

void check_cache(const LatentCacheView& c, const char* name, bool needs_data) {
    PALU_CHECK(c.rank > 0 && c.rank % 32 == 0, ShapeError,
               "%s: %s latent rank: expected a positive multiple of 32, got %d", kStage, name,
               c.rank);
    PALU_CHECK(c.bits == 16 || c.bits == 4 || c.bits == 3 || c.bits == 2, UsageError,
               "%s: %s latent bits: expected 16, 4, 3 or 2, got %d", kStage, name, c.bits);
    if (!needs_data) return;
    PALU_CHECK(c.data != nullptr, UsageError,
               "%s: %s latent data: expected a device pointer, got null", kStage, name);
    PALU_CHECK(c.bits == 16 || (c.scales != nullptr && c.zeros != nullptr), UsageError,
               "%s: %s latents are %d-bit: expected scales and zeros, got null", kStage, name,
               c.bits);
    PALU_CHECK(reinterpret_cast<uintptr_t>(c.data) % 16 == 0, UsageError,
               "%s: %s latent data: expected 16-byte alignment", kStage, name);
}

}  // namespace

LatentAttentionPlan plan_latent_attention(const LatentAttentionParams& p) {
    PALU_CHECK(p.batch >= 1, ShapeError, "%s: batch: expected >= 1, got %d", kStage, p.batch);
    PALU_CHECK(p.d_head == 64 || p.d_head == 128, ShapeError,
               "%s: d_head: expected 64 or 128, got %d", kStage, p.d_head);
    PALU_CHECK(p.n_kv_heads >= 1 && p.n_heads >= p.n_kv_heads && p.n_heads % p.n_kv_heads == 0,
               ShapeError,
               "%s: heads: expected n_heads a multiple of n_kv_heads, got n_heads=%d n_kv_heads=%d",
               kStage, p.n_heads, p.n_kv_heads);
    PALU_CHECK(p.group_size >= 1 && p.n_kv_heads % p.group_size == 0, ShapeError,
               "%s: group_size: expected a divisor of n_kv_heads=%d, got %d", kStage, p.n_kv_heads,
               p.group_size);
    const int n_rep = p.n_heads / p.n_kv_heads;
    PALU_CHECK(n_rep <= detail::kMaxHeadsPerBlock, ShapeError,
               "%s: query heads per KV head: expected <= %d, got %d", kStage,
               detail::kMaxHeadsPerBlock, n_rep);
    PALU_CHECK(p.capacity >= 16 && p.capacity % 16 == 0, ShapeError,
               "%s: capacity: expected a positive multiple of 16 tokens, got %d", kStage,
               p.capacity);
    PALU_CHECK(p.dtype == LatentDType::F16 || p.dtype == LatentDType::BF16, UsageError,
               "%s: dtype: expected F16 or BF16, got %d", kStage, static_cast<int>(p.dtype));
    check_cache(p.k, "key", false);
    check_cache(p.v, "value", false);
    PALU_CHECK(p.kernel == LatentKernel::Auto || p.kernel == LatentKernel::Block ||
                   p.kernel == LatentKernel::Warp,
               UsageError, "%s: kernel: expected Auto, Block or Warp, got %d", kStage,
               static_cast<int>(p.kernel));
    // The warp kernel applies when n_rep ≤ 8, r_v ≤ 256 and both caches are 16-bit or both
    // quantized (checked before the device is queried); it must also fit in shared memory (below).
    const bool warp_ok = n_rep <= detail::kWarpMaxRep && p.v.rank <= detail::kWarpMaxRankV &&
                         (p.k.bits == 16) == (p.v.bits == 16);
    PALU_CHECK(p.kernel != LatentKernel::Warp || warp_ok, UsageError,
               "%s: kernel Warp: needs n_heads/n_kv_heads <= %d (got %d), value rank <= %d (got "
               "%d) and both "
               "caches 16-bit or both quantized (got %d/%d bits); hint: use LatentKernel::Auto",
               kStage, detail::kWarpMaxRep, n_rep, detail::kWarpMaxRankV, p.v.rank, p.k.bits,
               p.v.bits);

    int smem_optin = 0, n_sm = 0;
    const cudaError_t e = detail::device_smem_optin(&smem_optin, &n_sm);
    PALU_CHECK(e == cudaSuccess, CudaError, "%s: device query failed: %s (%s)", kStage,
               cudaGetErrorName(e), cudaGetErrorString(e));

    LatentAttentionPlan plan;
    // Warp kernel shared memory: 2-stage ring for r_v ≤ 128 when it fits, else 1 stage.
    auto warp_smem_of = [&](int stages) {
        return detail::warp_kernel_smem_bytes(p.d_head, p.k.rank, p.v.rank, p.k.bits, p.v.bits,
                                              n_rep, stages);
    };
    const int warp_stages =
        p.v.rank <= 128 && warp_smem_of(2) <= static_cast<size_t>(smem_optin) ? 2 : 1;
    const size_t warp_smem = warp_smem_of(warp_stages);
    const bool warp_fits = warp_smem <= static_cast<size_t>(smem_optin);
    PALU_CHECK(p.kernel != LatentKernel::Warp || warp_fits, ShapeError,
               "%s: kernel Warp: needs %zu bytes of shared memory, the device has %d", kStage,
               warp_smem, smem_optin);
    // Auto: the warp kernel, except its 1-stage variant with quantized latents and ranks that are
    // not constant-folded (e.g. r = 160 at s = 4, kept 0.3), where the block kernel measured 0–10 %
    // faster on the H100 (docs/kernels.md, "Performance").
    const bool warp_slow = warp_stages == 1 && p.k.bits != 16 &&
                           !(p.d_head == 128 && p.k.rank == 256 && p.v.rank == 256);
    if (p.kernel == LatentKernel::Warp ||
        (p.kernel == LatentKernel::Auto && warp_ok && warp_fits && !warp_slow)) {
        plan.kernel = LatentKernel::Warp;
        plan.kv_heads_per_block = 1;
        plan.tile_tokens = detail::kWarpKernelWarps * detail::kWarpChunk;
        plan.n_stages = warp_stages;
        plan.smem_bytes = warp_smem;
    } else {
        // Largest divisor s' of group_size whose key up-projection rows, tiles and per-head state
        // fit; then a 3-deep tile ring when it still fits in a third of an SM (keeps 2 blocks
        // resident for small ranks) or when one block per SM is all that fits anyway. 128-token
        // tiles (half the block barriers per token) when they still leave room for two blocks per
        // SM; else 64-token tiles.
        auto smem_of = [&](int sp, int ns, int tt) {
            return detail::split_kernel_smem_bytes(p.d_head, p.k.rank, p.v.rank, p.k.bits, p.v.bits,
                                                   sp, n_rep, ns, tt);
        };
        constexpr size_t kTwoPerSm = 110 * 1024;
        for (int sp = p.group_size; sp >= 1 && plan.kv_heads_per_block == 0; --sp) {
            if (p.group_size % sp != 0 || sp * n_rep > detail::kMaxHeadsPerBlock) continue;
            if (smem_of(sp, 2, 128) <= kTwoPerSm) {
                plan.kv_heads_per_block = sp;
                plan.tile_tokens = 128;
                plan.n_stages = smem_of(sp, 3, 128) <= kTwoPerSm ? 3 : 2;
                plan.smem_bytes = smem_of(sp, plan.n_stages, 128);
                break;
            }
            const size_t s2 = smem_of(sp, 2, 64), s3 = smem_of(sp, 3, 64);
            if (s2 > static_cast<size_t>(smem_optin)) continue;
            plan.kv_heads_per_block = sp;
            plan.tile_tokens = 64;
            const bool three =
                s3 <= static_cast<size_t>(smem_optin) && (s3 <= kTwoPerSm || s2 > kTwoPerSm);
            plan.n_stages = three ? 3 : 2;
            plan.smem_bytes = three ? s3 : s2;
        }
        PALU_CHECK(plan.kv_heads_per_block > 0, ShapeError,
                   "%s: ranks r_k=%d r_v=%d with d_head=%d need more than %d bytes of shared "
                   "memory per block; "
                   "hint: ranks up to 256 fit at d_head 128",
                   kStage, p.k.rank, p.v.rank, p.d_head, smem_optin);
    }
    const int64_t n_tiles = (p.capacity + plan.tile_tokens - 1) / plan.tile_tokens;
    const int64_t n_groups = p.n_kv_heads / p.group_size;
    const int64_t base_blocks =
        int64_t(p.batch) * n_groups * (p.group_size / plan.kv_heads_per_block);
    int per_sm = 0;
    const cudaError_t eo =
        plan.kernel == LatentKernel::Warp
            ? detail::warp_kernel_occupancy(p.d_head, static_cast<int>(p.dtype), p.k.bits != 16,
                                            n_rep, p.k.rank, p.v.rank, plan.n_stages,
                                            plan.smem_bytes, &per_sm)
            : detail::split_kernel_occupancy(p.d_head, static_cast<int>(p.dtype), plan.tile_tokens,
                                             plan.smem_bytes, &per_sm);
    PALU_CHECK(eo == cudaSuccess && per_sm > 0, CudaError,
               "%s: occupancy query for %zu bytes of shared memory failed: %s", kStage,
               plan.smem_bytes, cudaGetErrorString(eo));
    int64_t tiles_per_split;
    if (p.n_splits > 0) {
        tiles_per_split = (n_tiles + p.n_splits - 1) / p.n_splits;
    } else {
        // Minimize waves × tiles per block (+1 tile-equivalent per block for loading B_k and the
        // partial write-out), so a single long sequence fills the GPU without a ragged last wave.
        const int64_t slots = int64_t(n_sm) * per_sm;
        double best = 1e300;
        tiles_per_split = n_tiles;
        for (int64_t ns = 1; ns <= std::min<int64_t>(n_tiles, 4096); ++ns) {
            const int64_t tps = (n_tiles + ns - 1) / ns;
            const int64_t nsr = (n_tiles + tps - 1) / tps;
            const int64_t waves = (base_blocks * nsr + slots - 1) / slots;
            const double cost = double(waves) * double(tps + 1);
            if (cost < best - 1e-9) {
                best = cost;
                tiles_per_split = tps;
            }
        }
    }
    plan.tokens_per_split = static_cast<int32_t>(tiles_per_split * plan.tile_tokens);
    plan.n_splits = static_cast<int32_t>((n_tiles + tiles_per_split - 1) / tiles_per_split);
    PALU_CHECK(plan.n_splits <= 65535, ShapeError, "%s: n_splits: expected <= 65535, got %d",
               kStage, plan.n_splits);
    plan.n_partials = plan.n_splits;
    plan.workspace_bytes =
        size_t(plan.n_partials) * p.batch * p.n_heads * (2 + size_t(p.v.rank)) * sizeof(float);
    return plan;
}

size_t latent_attention_workspace_bytes(const LatentAttentionParams& p) {
    return plan_latent_attention(p).workspace_bytes;
}

void latent_attention_decode(const LatentAttentionParams& p, cudaStream_t stream) {
    const LatentAttentionPlan plan = plan_latent_attention(p);
    check_cache(p.k, "key", true);
    check_cache(p.v, "value", true);
    PALU_CHECK(p.q && p.seq_lens && p.inv_freq && p.k_up, UsageError,
               "%s: q, seq_lens, inv_freq and k_up: expected device pointers, got a null", kStage);
    PALU_CHECK(p.out_latent || p.out, UsageError,
               "%s: outputs: expected out and/or out_latent, got none", kStage);
    PALU_CHECK(!p.out || p.v_up, UsageError, "%s: out needs the value up-projection v_up, got null",
               kStage);
    PALU_CHECK(p.workspace && p.workspace_bytes >= plan.workspace_bytes, UsageError,
               "%s: workspace: expected >= %zu bytes, got %zu", kStage, plan.workspace_bytes,
               p.workspace_bytes);

    detail::KernelArgs a{};
    a.batch = p.batch;
    a.n_heads = p.n_heads;
    a.n_kv_heads = p.n_kv_heads;
    a.group_size = p.group_size;
    a.d_head = p.d_head;
    a.capacity = p.capacity;
    a.n_groups = p.n_kv_heads / p.group_size;
    a.n_rep = p.n_heads / p.n_kv_heads;
    a.dtype = static_cast<int32_t>(p.dtype);
    a.r_k = p.k.rank;
    a.r_v = p.v.rank;
    a.bits_k = p.k.bits;
    a.bits_v = p.v.bits;
    a.kv_per_block = plan.kv_heads_per_block;
    a.n_stages = plan.n_stages;
    a.tile_tokens = plan.tile_tokens;
    a.n_head_blocks = p.group_size / plan.kv_heads_per_block;
    a.n_splits = plan.n_splits;
    a.tokens_per_split = plan.tokens_per_split;
    a.kernel = static_cast<int32_t>(plan.kernel);
    const float scale =
        p.softmax_scale > 0.0f ? p.softmax_scale : 1.0f / std::sqrt(float(p.d_head));
    a.scale_log2 = scale * 1.4426950408889634f;
    a.q = p.q;
    a.seq_lens = p.seq_lens;
    a.k_pos0 = p.k_pos0;
    a.q_pos = p.q_pos;
    a.inv_freq = p.inv_freq;
    a.k_data = static_cast<const uint8_t*>(p.k.data);
    a.k_scales = static_cast<const uint16_t*>(p.k.scales);
    a.k_zeros = static_cast<const uint16_t*>(p.k.zeros);
    a.v_data = static_cast<const uint8_t*>(p.v.data);
    a.v_scales = static_cast<const uint16_t*>(p.v.scales);
    a.v_zeros = static_cast<const uint16_t*>(p.v.zeros);
    a.k_up = p.k_up;
    a.v_up = p.v_up;
    a.out_latent = p.out_latent;
    a.out = p.out;
    a.ws_ml = static_cast<float*>(p.workspace);
    a.ws_o = a.ws_ml + size_t(plan.n_splits) * p.batch * p.n_heads * 2;
    a.smem_bytes = plan.smem_bytes;

    const char* what = "";
    const cudaError_t e = plan.kernel == LatentKernel::Warp
                              ? detail::launch_latent_attention_warp(a, stream, &what)
                              : detail::launch_latent_attention(a, stream, &what);
    PALU_CHECK(e == cudaSuccess, CudaError, "%s: latent_attention_decode: %s failed: %s (%s)",
               kStage, what, cudaGetErrorName(e), cudaGetErrorString(e));
}

}  // namespace palu::cuda
