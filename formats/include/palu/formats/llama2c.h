// palu formats: llama2.c legacy (v0) checkpoints (Karpathy's llama2.c `run.c` format, e.g. the
// tinyllamas stories*.bin files) read as a WeightSource in HF names, layout and RoPE convention.
//
// File layout (little-endian): 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; vocab_size < 0 means an untied classifier is stored at the end), then f32
// tensors token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
// wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
// w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], freq_cis_real [seq_len, d_head/2],
// freq_cis_imag [seq_len, d_head/2], then wcls [vocab, dim] when untied.
// llama2.c applies RoPE to interleaved pairs (2i, 2i+1); the rows of wq/wk are permuted per head
// into HF's rotate-half convention (i, i + d_head/2) on load (docs/formats.md, "llama2.c").
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "palu/core/weight_source.h"

namespace palu::formats {

/// The 7 x int32 header exactly as stored.
struct Llama2cHeader {
    int32_t dim = 0;
    int32_t hidden_dim = 0;
    int32_t n_layers = 0;
    int32_t n_heads = 0;
    int32_t n_kv_heads = 0;
    int32_t vocab_size = 0;  // negative: untied classifier stored after freq_cis
    int32_t seq_len = 0;
};

inline constexpr uint64_t kLlama2cHeaderBytes = 7 * sizeof(int32_t);
// Bounds on header values: far above any published llama2.c-format model (Llama-2-70B: dim 8192,
// hidden 28672, 80 layers, 32000 vocab, 4096 positions), low enough that no size arithmetic can
// overflow and a garbage header is rejected before anything is read.
inline constexpr int64_t kLlama2cMaxDim = 65536;
inline constexpr int64_t kLlama2cMaxHiddenDim = 1 << 20;
inline constexpr int64_t kLlama2cMaxLayers = 1024;
inline constexpr int64_t kLlama2cMaxVocab = 1 << 22;
inline constexpr int64_t kLlama2cMaxSeqLen = 1 << 22;

/// One f32 section of the file, in file order.
struct Llama2cSection {
    std::string name;            // llama2.c name: "token_embedding", "wq", "freq_cis_real", ...
    std::vector<int64_t> shape;  // as stored, e.g. wq [n_layers, dim, dim]
    uint64_t offset = 0;         // byte offset in the file
    uint64_t n_bytes = 0;
};

/// Validated header plus the byte layout it implies.
struct Llama2cLayout {
    Llama2cHeader header;
    ModelConfig config;               // llama, rope_theta 1e4, eps 1e-5, bos 1, eos 2
    bool shared_classifier = true;    // vocab_size > 0: lm_head tied to the embedding
    uint64_t expected_file_size = 0;  // header + every section
    std::vector<Llama2cSection> sections;
};

/// Validates the header (every value positive and bounded, heads dividing dim and each other,
/// even d_head) and the file size against the layout it implies (exact match; a short file names
/// the first truncated section and the missing byte count). `file_size` is the whole file's size;
/// `head` holds at least its first min(file_size, 28) bytes. `source` names the file in messages.
/// Throws FormatError.
Llama2cLayout parse_llama2c_layout(std::span<const uint8_t> head, uint64_t file_size,
                                   const std::string& source);

/// Permutes the rows of a Q or K weight [n_heads * d_head, n_in] (row-major) from llama2.c's
/// interleaved RoPE pairs to HF's rotate-half order: within each head, HF row j * d_head/2 + i is
/// llama2.c row 2i + j (i < d_head/2, j in {0, 1}). `dst` and `src` must not overlap.
void llama2c_rows_to_rotate_half(const float* src, float* dst, int64_t n_heads, int64_t d_head,
                                 int64_t n_in);
/// The inverse permutation (HF rotate-half -> interleaved), for writers and tests.
void rotate_half_rows_to_llama2c(const float* src, float* dst, int64_t n_heads, int64_t d_head,
                                 int64_t n_in);

/// A llama2.c legacy checkpoint, memory-mapped, converted lazily one tensor at a time.
/// Tensors: model.embed_tokens.weight, model.layers.{l}.{input_layernorm, self_attn.{q,k,v,o}_proj,
/// post_attention_layernorm, mlp.{gate,up,down}_proj}.weight, model.norm.weight, and lm_head.weight
/// only when untied (freq_cis tables are not exposed: they follow from rope_theta).
class Llama2cModel final : public WeightSource {
   public:
    /// Maps and validates `file`. Throws IoError (cannot open/map) or FormatError (bad header,
    /// wrong size).
    static std::unique_ptr<Llama2cModel> open(const std::filesystem::path& file);
    /// Parses an in-memory copy of a checkpoint (fuzzing, tests). Throws FormatError.
    static std::unique_ptr<Llama2cModel> from_bytes(std::span<const uint8_t> bytes,
                                                    const std::string& source);
    ~Llama2cModel() override;

    const ModelConfig& config() const override { return layout_.config; }
    std::string format_name() const override { return "llama2c"; }
    std::string path() const override { return path_; }
    std::vector<StoredTensorInfo> tensors() const override;
    bool has_tensor(const std::string& name) const override;
    /// f32 copy in HF layout; q_proj/k_proj rows permuted to rotate-half. FormatError if absent.
    Tensor load_f32(const std::string& name) const override;

    const Llama2cLayout& layout() const { return layout_; }

   private:
    struct Storage;
    struct Entry {
        std::vector<int64_t> shape;  // HF shape
        uint64_t offset = 0;         // byte offset of this tensor in the file
        int64_t n_rope_heads = 0;    // > 0: permute rows per head (q_proj, k_proj)
    };
    Llama2cModel(std::unique_ptr<Storage> storage, std::string path);
    void index_tensors();

    std::unique_ptr<Storage> storage_;
    std::string path_;
    Llama2cLayout layout_;
    std::map<std::string, Entry> entries_;  // sorted by HF name
};

}  // namespace palu::formats
