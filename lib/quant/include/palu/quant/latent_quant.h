// palu quant: the runtime latent format shared by the engine (lib/model's latent KV cache) and the
// compressor (lib/compress rank search and KV-bytes accounting): per-token quantization of the
// latent KV cache (Palu low-rank-aware quantization, reference §5.3 / §5.4) and its bit packing.
// Depends on palu_core only, so lib/model does not depend on lib/compress.
//
// Input  latents X [n_tokens, r] row-major f32 (one latent group of rank r, or a whole row when
//        the caller quantizes per group by slicing).
// Output unsigned b-bit codes [n_tokens, r], one (scale, zero) pair per token per chunk of
//        `group_size` channels (group_size 0 = the whole row), stored as IEEE f16.
//
// Asymmetric (reference default, `quantize_tensor` with sym=False):
//   mx = max(x)·c, mn = min(x)·c, s = max(mx − mn, 1e−5)/(2^b − 1), z = clamp(round(−mn/s), 0,
//   2^b−1) q = clamp(round(x/s) + z, 0, 2^b − 1),  x̂ = (q − z)·s
// Symmetric: s = max(max|x|, 1e−5)·c/(2^{b−1} − 1), q = clamp(round(x/s), −2^{b−1}, 2^{b−1} − 1),
//   x̂ = q·s, stored as the unsigned code q + 2^{b−1}.
// round = round half to even. Differences from the reference (which fake-quantizes in fp16):
//   * arithmetic in f32, and the scale is rounded *up* to the next f16 before use, so that the
//     stored f16 scale is the one used and (2^b − 1)·s still covers [mn, mx]: every value inside
//     a range that contains 0 is reconstructed within s/2;
//   * `include_zero` (off by default, i.e. reference behaviour) widens [mn, mx] to contain 0. The
//     reference's integer zero-point clamps z to [0, 2^b − 1], so a row whose values all have one
//     sign is clipped (e.g. all-positive rows saturate at (2^b − 1)·s); include_zero avoids that.
//
// Packed layout (what the latent KV cache stores per token and latent group): the r codes of one
// row form a little-endian bit stream, code j in bits [b·j, b·j + b), bit i of the stream being
// bit (i mod 8) of byte ⌊i/8⌋; the row takes ⌈r·b/8⌉ bytes and unused high bits of the last byte
// are zero. For b = 2, 4, 8 this equals KIVI's / the reference kernel path's int32 packing
// ("32/b values per int32, element j at bits [b·j, b·j + b)") read as little-endian bytes.
// Scales (and zeros, asymmetric only) follow as f16 per token per chunk; see latent_token_bytes.
#pragma once

#include <cstdint>
#include <vector>

namespace palu::quant {

/// Latent quantization settings (CLI: --latent-bits, --latent-group-size, --latent-sym, ...).
struct LatentQuantSpec {
    int bits = 16;              ///< 2, 3, 4 or 8; 16 = no quantization (f16 latents)
    int64_t group_size = 0;     ///< channels per (scale, zero); 0 = the whole latent group
    bool symmetric = false;     ///< reference default: asymmetric
    double clip_ratio = 1.0;    ///< multiplies max/min (asym) or absmax (sym); in (0, 1]
    bool include_zero = false;  ///< asymmetric: widen [min, max] to contain 0 (not reference)

    bool quantized() const { return bits < 16; }
};

/// Codes and f16 parameters of n_rows × n_cols latents.
struct QuantizedRows {
    int64_t n_rows = 0;
    int64_t n_cols = 0;
    int64_t chunk = 0;  ///< channels per (scale, zero)
    int bits = 0;
    bool symmetric = false;
    std::vector<uint8_t> codes;    ///< [n_rows, n_cols] unsigned codes, one per byte (unpacked)
    std::vector<uint16_t> scales;  ///< [n_rows, n_cols / chunk] IEEE f16
    std::vector<uint16_t> zeros;   ///< [n_rows, n_cols / chunk] IEEE f16 integer zero-points (asym)
};

/// Throws UsageError when the spec is invalid for rows of n_cols channels (bits not in
/// {2,3,4,8,16}, group_size not dividing n_cols, clip_ratio outside (0, 1]).
void validate_quant_spec(const LatentQuantSpec& spec, int64_t n_cols);

/// Quantizes x [n_rows, n_cols] (row-major). Throws UsageError (spec; bits must be < 16),
/// NumericalError on non-finite input or a scale beyond the f16 range.
QuantizedRows quantize_rows(const float* x, int64_t n_rows, int64_t n_cols,
                            const LatentQuantSpec& spec);

/// x̂ [n_rows, n_cols] from codes and parameters.
void dequantize_rows(const QuantizedRows& q, float* out);

/// In-place quantize → dequantize (the reference's fake quantization); no-op for bits ≥ 16.
void fake_quantize_rows(float* x, int64_t n_rows, int64_t n_cols, const LatentQuantSpec& spec);

/// Bytes of one packed row of n codes of `bits` bits: ⌈n·bits/8⌉.
int64_t packed_row_bytes(int64_t n, int bits);
/// Packs n codes (each < 2^bits) into packed_row_bytes(n, bits) bytes (layout above).
void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out);
/// Inverse of pack_codes.
void unpack_codes(const uint8_t* packed, int64_t n, int bits, uint8_t* codes);

/// Cache bytes per token of one latent group of rank r: f16 latents (2·r) when not quantized,
/// else ⌈r·b/8⌉ packed codes + per chunk an f16 scale (+ an f16 zero when asymmetric).
int64_t latent_token_bytes(int64_t r, const LatentQuantSpec& spec);

}  // namespace palu::quant
