// palu kernels testing: random problems, the double-precision CPU reference and the device runner
// for the fused latent decode attention (latent_attention.h). The reference follows the header's
// equations literally: dequantize, rebuild each KV head's key (a replaceable step: the
// low-precision study emulates it on FP8/INT8 operands), rotate (rotate-half RoPE with the
// float32 angle fl32(pos · inv_freq)), softmax in double, P·h_v in latent space, then B_v.
#include "latent_attention_reference.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "palu/core/dtype.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/kernels/latent_prefill.h"

namespace palu::cuda::testing {
namespace {

#define PALU_CUDA_CHECK(expr)                                                                      \
    do {                                                                                           \
        const cudaError_t e_ = (expr);                                                             \
        if (e_ != cudaSuccess)                                                                     \
            PALU_THROW(CudaError, "kernels: %s:%d: %s failed: %s (%s)", __FILE__, __LINE__, #expr, \
                       cudaGetErrorName(e_), cudaGetErrorString(e_));                              \
    } while (0)

uint16_t to_half_bits(float x, LatentDType dt) {
    return dt == LatentDType::F16 ? f32_to_f16(x) : f32_to_bf16(x);
}
double from_half_bits(uint16_t x, LatentDType dt) {
    return dt == LatentDType::F16 ? double(f16_to_f32(x)) : double(bf16_to_f32(x));
}

int32_t n_groups_of(const ProblemShape& s) {
    return s.n_kv_heads / s.group_size;
}

// Fills one latent cache (all sequences, groups, tokens up to capacity) with N(0,1) values, stored
// as dtype or quantized: s = max(mx − mn, 1e-5)/(2^b − 1) (rounded to f16), z =
// clamp(round(−mn/s)), code = clamp(round(x/s) + z, 0, 2^b − 1), packed little-endian along the
// rank.
void fill_cache(const ProblemShape& sh, int32_t r, int32_t bits, std::mt19937_64& rng,
                std::vector<uint8_t>& data, std::vector<uint16_t>& scales,
                std::vector<uint16_t>& zeros) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t rows = int64_t(sh.batch) * n_groups_of(sh) * sh.capacity;
    const int64_t rb = latent_row_bytes(r, bits);
    data.assign(size_t(rows * rb), 0);
    if (bits != 16) {
        scales.assign(size_t(rows), 0);
        zeros.assign(size_t(rows), 0);
    }
    std::vector<float> x(static_cast<size_t>(r));
    const int32_t qmax = (1 << bits) - 1;
    for (int64_t row = 0; row < rows; ++row) {
        for (auto& v : x) v = nd(rng);
        uint8_t* dst = data.data() + row * rb;
        if (bits == 16) {
            for (int32_t c = 0; c < r; ++c) {
                const uint16_t h = to_half_bits(x[size_t(c)], sh.dtype);
                dst[2 * c] = uint8_t(h & 0xff);
                dst[2 * c + 1] = uint8_t(h >> 8);
            }
            continue;
        }
        float mn = x[0], mx = x[0];
        for (float v : x) {
            mn = std::min(mn, v);
            mx = std::max(mx, v);
        }
        const float s = f16_to_f32(f32_to_f16(std::max(mx - mn, 1e-5f) / float(qmax)));
        const float z = std::clamp(std::nearbyint(-mn / s), 0.0f, float(qmax));
        scales[size_t(row)] = f32_to_f16(s);
        zeros[size_t(row)] = f32_to_f16(z);
        for (int32_t c = 0; c < r; ++c) {
            const int32_t code =
                int32_t(std::clamp(std::nearbyint(x[size_t(c)] / s) + z, 0.0f, float(qmax)));
            const int64_t bit = int64_t(bits) * c;
            for (int32_t k = 0; k < bits; ++k)
                if ((code >> k) & 1) dst[(bit + k) / 8] |= uint8_t(1u << ((bit + k) % 8));
        }
    }
}

void rope_rotate(std::vector<double>& v, int32_t pos, const std::vector<float>& inv_freq) {
    const size_t half = inv_freq.size();
    for (size_t i = 0; i < half; ++i) {
        const float theta = float(pos) * inv_freq[i];  // float32 product, as in HF
        const double c = std::cos(double(theta)), s = std::sin(double(theta));
        const double x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
    }
}

template <typename T>
struct DeviceBuffer {
    T* ptr = nullptr;
    size_t n = 0;
    explicit DeviceBuffer(size_t count) : n(count) {
        if (count) PALU_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(T)));
    }
    DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
        if (n) PALU_CUDA_CHECK(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    }
    ~DeviceBuffer() {
        if (ptr) cudaFree(ptr);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Device copies of a problem's caches, up-projections and RoPE table (what decode and prefill
// share).
struct DeviceCaches {
    DeviceBuffer<uint8_t> k_data, v_data;
    DeviceBuffer<uint16_t> k_scales, k_zeros, v_scales, v_zeros, k_up, v_up;
    DeviceBuffer<float> inv_freq;
    explicit DeviceCaches(const HostProblem& pb)
        : k_data(pb.k_data),
          v_data(pb.v_data),
          k_scales(pb.k_scales),
          k_zeros(pb.k_zeros),
          v_scales(pb.v_scales),
          v_zeros(pb.v_zeros),
          k_up(pb.k_up),
          v_up(pb.v_up),
          inv_freq(pb.inv_freq) {}
    LatentCacheView k(const ProblemShape& s) const {
        return {k_data.ptr, k_scales.ptr, k_zeros.ptr, s.r_k, s.bits_k};
    }
    LatentCacheView v(const ProblemShape& s) const {
        return {v_data.ptr, v_scales.ptr, v_zeros.ptr, s.r_v, s.bits_v};
    }
};

}  // namespace

std::string ProblemShape::describe() const {
    return strfmt("batch=%d heads=%d/%d s=%d d=%d r_k=%d r_v=%d bits=%d/%d %s cap=%d%s", batch,
                  n_heads, n_kv_heads, group_size, d_head, r_k, r_v, bits_k, bits_v,
                  dtype == LatentDType::F16 ? "f16" : "bf16", capacity,
                  llama3_scaling ? " llama3-rope" : "");
}

std::vector<float> rope_inv_freq(int32_t d_head, double theta, bool llama3_scaling) {
    std::vector<float> f(size_t(d_head / 2));
    for (int32_t i = 0; i < d_head / 2; ++i)
        f[size_t(i)] = float(1.0 / std::pow(theta, double(2 * i) / double(d_head)));
    if (llama3_scaling) {
        const double factor = 8.0, low = 1.0, high = 4.0, orig = 8192.0;
        const double low_wl = orig / low, high_wl = orig / high;
        for (auto& v : f) {
            const double wl = 2.0 * M_PI / v;
            if (wl > low_wl) {
                v = float(v / factor);
            } else if (wl >= high_wl) {
                const double smooth = (orig / wl - low) / (high - low);
                v = float((1.0 - smooth) * v / factor + smooth * v);
            }
        }
    }
    return f;
}

HostProblem make_random_problem(const ProblemShape& shape, uint64_t seed) {
    HostProblem pb;
    pb.shape = shape;
    const ProblemShape& s = pb.shape;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    pb.q.resize(size_t(s.batch) * s.n_heads * s.d_head);
    for (auto& v : pb.q) v = to_half_bits(2.0f * nd(rng), s.dtype);
    fill_cache(s, s.r_k, s.bits_k, rng, pb.k_data, pb.k_scales, pb.k_zeros);
    fill_cache(s, s.r_v, s.bits_v, rng, pb.v_data, pb.v_scales, pb.v_zeros);
    const int32_t ng = n_groups_of(s);
    pb.k_up.resize(size_t(ng) * s.group_size * s.d_head * s.r_k);
    pb.v_up.resize(size_t(ng) * s.group_size * s.d_head * s.r_v);
    const float sk = 1.0f / std::sqrt(float(s.r_k)), sv = 1.0f / std::sqrt(float(s.r_v));
    for (auto& v : pb.k_up) v = to_half_bits(sk * nd(rng), s.dtype);
    for (auto& v : pb.v_up) v = to_half_bits(sv * nd(rng), s.dtype);
    pb.inv_freq = rope_inv_freq(s.d_head, s.rope_theta, s.llama3_scaling);
    pb.seq_lens =
        s.seq_lens.empty() ? std::vector<int32_t>(size_t(s.batch), s.capacity) : s.seq_lens;
    PALU_CHECK(int32_t(pb.seq_lens.size()) == s.batch, ShapeError,
               "kernels: seq_lens: expected %d entries, got %zu", s.batch, pb.seq_lens.size());
    std::uniform_int_distribution<int32_t> pos_d(0, 4095), extra_d(0, 7);
    for (int32_t b = 0; b < s.batch; ++b) {
        const int32_t p0 = s.random_positions ? pos_d(rng) : 0;
        pb.k_pos0.push_back(p0);
        pb.q_pos.push_back(p0 + pb.seq_lens[size_t(b)] - 1 +
                           (s.random_positions ? extra_d(rng) : 0));
    }
    return pb;
}

double latent_value(const HostProblem& pb, bool key, int32_t b, int32_t g, int32_t t, int32_t c) {
    const ProblemShape& s = pb.shape;
    const int32_t r = key ? s.r_k : s.r_v, bits = key ? s.bits_k : s.bits_v;
    const std::vector<uint8_t>& data = key ? pb.k_data : pb.v_data;
    const int64_t row = (int64_t(b) * n_groups_of(s) + g) * s.capacity + t;
    const int64_t rb = latent_row_bytes(r, bits);
    const uint8_t* p = data.data() + row * rb;
    if (bits == 16) return from_half_bits(uint16_t(p[2 * c] | (p[2 * c + 1] << 8)), s.dtype);
    const int64_t bit = int64_t(bits) * c;
    int32_t code = 0;
    for (int32_t k = 0; k < bits; ++k) code |= ((p[(bit + k) / 8] >> ((bit + k) % 8)) & 1) << k;
    const double scale = f16_to_f32((key ? pb.k_scales : pb.v_scales)[size_t(row)]);
    const double zero = f16_to_f32((key ? pb.k_zeros : pb.v_zeros)[size_t(row)]);
    return (double(code) - zero) * scale;
}

std::vector<double> reconstruct_keys_exact(const HostProblem& pb, int32_t b, int32_t j,
                                           int32_t len) {
    const ProblemShape& s = pb.shape;
    const int32_t D = s.d_head, g = j / s.group_size;
    std::vector<double> hk(size_t(len) * s.r_k);
    for (int32_t t = 0; t < len; ++t)
        for (int32_t c = 0; c < s.r_k; ++c)
            hk[size_t(t) * s.r_k + c] = latent_value(pb, true, b, g, t, c);
    std::vector<double> keys(size_t(len) * D);
    for (int32_t t = 0; t < len; ++t) {
        for (int32_t d = 0; d < D; ++d) {
            const uint16_t* brow = pb.k_up.data() + (size_t(j) * D + d) * s.r_k;  // row j·D + d
            double acc = 0.0;
            for (int32_t c = 0; c < s.r_k; ++c)
                acc += from_half_bits(brow[c], s.dtype) * hk[size_t(t) * s.r_k + c];
            keys[size_t(t) * D + d] = acc;
        }
    }
    return keys;
}

AttentionOutputs reference_latent_attention(const HostProblem& pb) {
    return reference_latent_attention(pb, reconstruct_keys_exact);
}

AttentionOutputs reference_latent_attention(const HostProblem& pb,
                                            const KeyReconstruction& reconstruct_keys) {
    const ProblemShape& s = pb.shape;
    const int32_t D = s.d_head, n_rep = s.n_heads / s.n_kv_heads;
    AttentionOutputs res;
    res.out_latent.assign(size_t(s.batch) * s.n_heads * s.r_v, 0.0);
    res.out.assign(size_t(s.batch) * s.n_heads * D, 0.0);
    const double scale = 1.0 / std::sqrt(double(D));
    for (int32_t b = 0; b < s.batch; ++b) {
        const int32_t len = pb.seq_lens[size_t(b)];
        for (int32_t j = 0; j < s.n_kv_heads; ++j) {
            const int32_t g = j / s.group_size;
            // Value latents of group g (dequantized) and this head's rebuilt, rotated keys [len,
            // D].
            std::vector<double> hv(size_t(len) * s.r_v);
            for (int32_t t = 0; t < len; ++t)
                for (int32_t c = 0; c < s.r_v; ++c)
                    hv[size_t(t) * s.r_v + c] = latent_value(pb, false, b, g, t, c);
            std::vector<double> keys = reconstruct_keys(pb, b, j, len);
            PALU_ASSERT(keys.size() == size_t(len) * D);
            std::vector<double> k(static_cast<size_t>(D));
            for (int32_t t = 0; t < len; ++t) {
                std::copy(keys.begin() + ptrdiff_t(t) * D, keys.begin() + ptrdiff_t(t + 1) * D,
                          k.begin());
                rope_rotate(k, pb.k_pos0[size_t(b)] + t, pb.inv_freq);
                std::copy(k.begin(), k.end(), keys.begin() + ptrdiff_t(t) * D);
            }
            for (int32_t hr = 0; hr < n_rep; ++hr) {
                const int32_t h = j * n_rep + hr;
                std::vector<double> q(static_cast<size_t>(D));
                for (int32_t d = 0; d < D; ++d)
                    q[size_t(d)] =
                        from_half_bits(pb.q[(size_t(b) * s.n_heads + h) * D + d], s.dtype);
                rope_rotate(q, pb.q_pos[size_t(b)], pb.inv_freq);
                std::vector<double> sc(static_cast<size_t>(len));
                double mx = -std::numeric_limits<double>::infinity();
                for (int32_t t = 0; t < len; ++t) {
                    double acc = 0.0;
                    for (int32_t d = 0; d < D; ++d) acc += q[size_t(d)] * keys[size_t(t) * D + d];
                    sc[size_t(t)] = acc * scale;
                    mx = std::max(mx, sc[size_t(t)]);
                }
                double sum = 0.0;
                for (auto& v : sc) sum += (v = std::exp(v - mx));
                double* ol = res.out_latent.data() + (size_t(b) * s.n_heads + h) * s.r_v;
                for (int32_t t = 0; t < len; ++t) {
                    const double p = sc[size_t(t)] / sum;
                    for (int32_t c = 0; c < s.r_v; ++c) ol[c] += p * hv[size_t(t) * s.r_v + c];
                }
                double* o = res.out.data() + (size_t(b) * s.n_heads + h) * D;
                for (int32_t d = 0; d < D; ++d) {
                    const uint16_t* brow = pb.v_up.data() + (size_t(j) * D + d) * s.r_v;
                    double acc = 0.0;
                    for (int32_t c = 0; c < s.r_v; ++c)
                        acc += from_half_bits(brow[c], s.dtype) * ol[c];
                    o[d] = acc;
                }
            }
        }
    }
    return res;
}

namespace {

LatentAttentionParams shape_params(const ProblemShape& s) {
    LatentAttentionParams p;
    p.batch = s.batch;
    p.n_heads = s.n_heads;
    p.n_kv_heads = s.n_kv_heads;
    p.group_size = s.group_size;
    p.d_head = s.d_head;
    p.capacity = s.capacity;
    p.dtype = s.dtype;
    p.k.rank = s.r_k;
    p.k.bits = s.bits_k;
    p.v.rank = s.r_v;
    p.v.bits = s.bits_v;
    return p;
}

}  // namespace

bool latent_kernel_applies(const HostProblem& pb, LatentKernel kernel) {
    LatentAttentionParams p = shape_params(pb.shape);
    p.kernel = kernel;
    try {
        (void)plan_latent_attention(p);
        return true;
    } catch (const palu::UsageError&) {
        return false;
    } catch (const palu::ShapeError&) {
        return false;
    }
}

std::vector<LatentKernel> kernels_to_check(const HostProblem& pb) {
    std::vector<LatentKernel> ks{LatentKernel::Block};
    if (latent_kernel_applies(pb, LatentKernel::Warp)) ks.push_back(LatentKernel::Warp);
    return ks;
}

const char* kernel_name(LatentKernel k) {
    return k == LatentKernel::Block ? "block" : k == LatentKernel::Warp ? "warp" : "auto";
}

AttentionOutputs run_latent_attention_device(const HostProblem& pb, int32_t n_splits,
                                             LatentKernel kernel) {
    const ProblemShape& s = pb.shape;
    const DeviceCaches dev(pb);
    DeviceBuffer<uint16_t> q(pb.q);
    DeviceBuffer<int32_t> lens(pb.seq_lens), kp0(pb.k_pos0), qp(pb.q_pos);
    const size_t n_lat = size_t(s.batch) * s.n_heads * s.r_v,
                 n_out = size_t(s.batch) * s.n_heads * s.d_head;
    DeviceBuffer<float> out_latent(n_lat);
    DeviceBuffer<uint16_t> out(n_out);

    LatentAttentionParams p = shape_params(s);
    p.q = q.ptr;
    p.seq_lens = lens.ptr;
    p.k_pos0 = kp0.ptr;
    p.q_pos = qp.ptr;
    p.inv_freq = dev.inv_freq.ptr;
    p.k = dev.k(s);
    p.v = dev.v(s);
    p.k_up = dev.k_up.ptr;
    p.v_up = dev.v_up.ptr;
    p.out_latent = out_latent.ptr;
    p.out = out.ptr;
    p.n_splits = n_splits;
    p.kernel = kernel;
    const size_t ws_bytes = latent_attention_workspace_bytes(p);
    DeviceBuffer<uint8_t> ws(ws_bytes);
    p.workspace = ws.ptr;
    p.workspace_bytes = ws_bytes;
    // Poison: 0xFF bytes are NaN in f32, f16 and bf16, so unwritten outputs fail the comparison.
    PALU_CUDA_CHECK(cudaMemset(out_latent.ptr, 0xFF, n_lat * sizeof(float)));
    PALU_CUDA_CHECK(cudaMemset(out.ptr, 0xFF, n_out * sizeof(uint16_t)));
    PALU_CUDA_CHECK(cudaMemset(ws.ptr, 0xFF, ws_bytes));
    latent_attention_decode(p, nullptr);
    PALU_CUDA_CHECK(cudaDeviceSynchronize());

    std::vector<float> lat(n_lat);
    std::vector<uint16_t> o(n_out);
    PALU_CUDA_CHECK(
        cudaMemcpy(lat.data(), out_latent.ptr, n_lat * sizeof(float), cudaMemcpyDeviceToHost));
    PALU_CUDA_CHECK(
        cudaMemcpy(o.data(), out.ptr, n_out * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    AttentionOutputs res;
    res.out_latent.assign(lat.begin(), lat.end());
    res.out.resize(n_out);
    for (size_t i = 0; i < n_out; ++i) res.out[i] = from_half_bits(o[i], s.dtype);
    return res;
}

std::vector<double> run_latent_prefill_device(const HostProblem& pb,
                                              const std::vector<uint16_t>& q_seq,
                                              int32_t n_tokens) {
    const ProblemShape& s = pb.shape;
    const DeviceCaches dev(pb);
    DeviceBuffer<uint16_t> q(q_seq);
    const size_t n_out = size_t(s.batch) * n_tokens * s.n_heads * s.d_head;
    PALU_CHECK(q_seq.size() == n_out, ShapeError,
               "kernels: prefill queries: expected %zu values, got %zu", n_out, q_seq.size());
    DeviceBuffer<uint16_t> out(n_out);
    LatentPrefillParams p;
    p.batch = s.batch;
    p.n_heads = s.n_heads;
    p.n_kv_heads = s.n_kv_heads;
    p.group_size = s.group_size;
    p.d_head = s.d_head;
    p.capacity = s.capacity;
    p.n_tokens = n_tokens;
    p.pos0 = pb.k_pos0.empty() ? 0 : pb.k_pos0[0];
    p.dtype = s.dtype;
    p.q = q.ptr;
    p.inv_freq = dev.inv_freq.ptr;
    p.k = dev.k(s);
    p.v = dev.v(s);
    p.k_up = dev.k_up.ptr;
    p.v_up = dev.v_up.ptr;
    p.out = out.ptr;
    const size_t ws_bytes = latent_prefill_workspace_bytes(p);
    DeviceBuffer<uint8_t> ws(ws_bytes);
    p.workspace = ws.ptr;
    p.workspace_bytes = ws_bytes;
    PALU_CUDA_CHECK(cudaMemset(out.ptr, 0xFF, n_out * sizeof(uint16_t)));
    PALU_CUDA_CHECK(cudaMemset(ws.ptr, 0xFF, ws_bytes));
    cublasHandle_t handle = nullptr;
    const cublasStatus_t st = cublasCreate(&handle);
    PALU_CHECK(st == CUBLAS_STATUS_SUCCESS, CudaError, "kernels: cublasCreate failed: %s",
               cublasGetStatusName(st));
    try {
        latent_attention_prefill(p, handle, nullptr);
        PALU_CUDA_CHECK(cudaDeviceSynchronize());
    } catch (...) {
        cublasDestroy(handle);
        throw;
    }
    cublasDestroy(handle);
    std::vector<uint16_t> o(n_out);
    PALU_CUDA_CHECK(
        cudaMemcpy(o.data(), out.ptr, n_out * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    std::vector<double> res(n_out);
    for (size_t i = 0; i < n_out; ++i) res[i] = from_half_bits(o[i], s.dtype);
    return res;
}

double rel_frobenius_error(const std::vector<double>& x, const std::vector<double>& ref) {
    if (x.size() != ref.size()) return std::numeric_limits<double>::infinity();
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i])) return std::numeric_limits<double>::infinity();
        num += (x[i] - ref[i]) * (x[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

double tolerance_for(LatentDType dtype) {
    return dtype == LatentDType::F16 ? 1e-3 : 1e-2;
}

bool cuda_device_available(std::string* why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why)
            *why = e != cudaSuccess ? strfmt("%s (%s)", cudaGetErrorName(e), cudaGetErrorString(e))
                                    : "0 devices";
        return false;
    }
    return true;
}

}  // namespace palu::cuda::testing
