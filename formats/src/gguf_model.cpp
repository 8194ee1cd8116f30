// palu formats: open_gguf_model. Input: a llama-architecture .gguf file; output: a WeightSource
// with Hugging Face names, HF shapes ([n_out, n_in]) and the HF rotate-half RoPE convention,
// dequantized to f32 lazily, one tensor per load_f32 call (docs/formats.md, section GGUF).
#include "palu/formats/gguf_model.h"

#include <cstdlib>
#include <map>

#include "palu/core/checked.h"
#include "palu/core/error.h"
#include "palu/core/log.h"
#include "palu/core/weight_source.h"
#include "palu/formats/llama2c.h"
#include "palu/formats/model_loader.h"

namespace palu::formats {

namespace {

// GGUF per-block tensor stem -> HF module path inside model.layers.{l}.
struct LayerName {
    const char* gguf;
    const char* hf;
};
constexpr LayerName kLayerNames[] = {
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},      {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

// Validates the row count of a q/k weight for the per-head permutation; returns d_head.
int64_t rope_d_head(int64_t n_rows, int64_t n_heads) {
    PALU_CHECK(n_heads > 0 && n_rows % n_heads == 0 && (n_rows / n_heads) % 2 == 0, ShapeError,
               "formats: RoPE row permutation: expected rows divisible into %lld heads of even "
               "size, got %lld rows",
               (long long)n_heads, (long long)n_rows);
    return n_rows / n_heads;
}

std::vector<int64_t> hf_shape(const GgufTensorInfo& t) {
    return std::vector<int64_t>(t.ne.rbegin(), t.ne.rend());
}

int64_t require_int(const GgufFile& f, const std::string& key) {
    PALU_CHECK(f.find(key), FormatError,
               "formats: %s: metadata key '%s': expected for the llama architecture, got no such "
               "key",
               f.path().c_str(), key.c_str());
    return f.get_int(key);
}

class GgufWeightSource final : public WeightSource {
   public:
    explicit GgufWeightSource(std::unique_ptr<GgufFile> file) : file_(std::move(file)) {
        config_ = gguf_model_config(*file_);
        std::vector<std::string> skipped;
        for (const GgufTensorInfo& t : file_->tensor_infos()) {
            auto hf = gguf_to_hf_name(t.name);
            if (!hf) {
                skipped.push_back(t.name);
                continue;
            }
            Entry e{&t, hf_shape(t), 0};
            const bool is_q = t.name.find(".attn_q.") != std::string::npos;
            const bool is_k = t.name.find(".attn_k.") != std::string::npos;
            if (is_q || is_k) {
                e.rope_heads = is_q ? config_.n_heads : config_.n_kv_heads;
                const auto rows_u =
                    mul_no_overflow(uint64_t(e.rope_heads), uint64_t(config_.d_head));
                const int64_t rows =
                    rows_u && *rows_u <= uint64_t(INT64_MAX) ? int64_t(*rows_u) : -1;
                PALU_CHECK(e.shape[0] == rows, FormatError,
                           "formats: %s: tensor '%s' has wrong shape; expected %lld rows (%lld "
                           "heads x head_dim %lld), got %s",
                           file_->path().c_str(), t.name.c_str(), (long long)rows,
                           (long long)e.rope_heads, (long long)config_.d_head,
                           shape_str(e.shape).c_str());
            }
            entries_.emplace(*hf, std::move(e));
        }
        if (!skipped.empty())
            PALU_LOG_WARN("formats",
                          "%s: %zu tensors without a Hugging Face name ignored (first: "
                          "'%s')",
                          file_->path().c_str(), skipped.size(), skipped[0].c_str());
        PALU_CHECK(entries_.count("model.embed_tokens.weight"), FormatError,
                   "formats: %s: tensor 'token_embd.weight': expected in a llama model, got no "
                   "such tensor",
                   file_->path().c_str());
    }

    const ModelConfig& config() const override { return config_; }
    std::string format_name() const override { return "gguf"; }
    std::string path() const override { return file_->path(); }
    bool has_tensor(const std::string& name) const override { return entries_.count(name) > 0; }

    std::vector<StoredTensorInfo> tensors() const override {
        std::vector<StoredTensorInfo> out;
        out.reserve(entries_.size());
        for (const auto& [name, e] : entries_)
            out.push_back({name, e.shape, ggml_type_name(e.info->type), e.info->n_bytes});
        return out;
    }

    Tensor load_f32(const std::string& name) const override {
        auto it = entries_.find(name);
        PALU_CHECK(it != entries_.end(), FormatError,
                   "formats: %s: tensor '%s': expected in the model, got no such tensor",
                   file_->path().c_str(), name.c_str());
        const Entry& e = it->second;
        std::vector<float> values = file_->dequantize(*e.info);
        if (e.rope_heads > 0) {
            // [n_out, n_in] rows in llama.cpp's interleaved order -> HF rotate-half order.
            const int64_t n_rows = e.shape[0];
            const int64_t n_cols = e.shape.size() > 1 ? e.shape[1] : 1;
            std::vector<float> hf(values.size());
            unpermute_rope_rows(values.data(), hf.data(), n_rows, n_cols, e.rope_heads);
            values.swap(hf);
        }
        return Tensor(e.shape, std::move(values));
    }

   private:
    struct Entry {
        const GgufTensorInfo* info;
        std::vector<int64_t> shape;  // HF shape (ggml ne reversed)
        int64_t rope_heads;          // > 0: rows to un-permute in this many heads
    };
    std::unique_ptr<GgufFile> file_;
    ModelConfig config_;
    std::map<std::string, Entry> entries_;  // sorted by HF name
};

}  // namespace

// llama.cpp's interleaved row order is llama2.c's (both rotate pairs (2i, 2i+1)), so the
// permutation is the one formats/llama2c.h already implements; it lives there once.
void unpermute_rope_rows(const float* src, float* dst, int64_t n_rows, int64_t n_cols,
                         int64_t n_heads) {
    const int64_t d_head = rope_d_head(n_rows, n_heads);
    if (n_cols == 0) return;  // nothing to move (and the buffers may be null)
    llama2c_rows_to_rotate_half(src, dst, n_heads, d_head, n_cols);
}

void permute_rope_rows(const float* src, float* dst, int64_t n_rows, int64_t n_cols,
                       int64_t n_heads) {
    const int64_t d_head = rope_d_head(n_rows, n_heads);
    if (n_cols == 0) return;
    rotate_half_rows_to_llama2c(src, dst, n_heads, d_head, n_cols);
}

std::optional<std::string> gguf_to_hf_name(const std::string& name) {
    auto suffix_of = [](const std::string& s,
                        const std::string& stem) -> std::optional<std::string> {
        for (const char* sfx : {".weight", ".bias"})
            if (s == stem + sfx) return std::string(sfx);
        return std::nullopt;
    };
    if (auto s = suffix_of(name, "token_embd")) return "model.embed_tokens" + *s;
    if (auto s = suffix_of(name, "output_norm")) return "model.norm" + *s;
    if (auto s = suffix_of(name, "output")) return "lm_head" + *s;
    if (name.rfind("blk.", 0) != 0) return std::nullopt;
    size_t p = 4, q = p;
    while (q < name.size() && name[q] >= '0' && name[q] <= '9') ++q;
    if (q == p || q - p > 9 || q >= name.size() || name[q] != '.') return std::nullopt;
    if (name[p] == '0' && q - p > 1) return std::nullopt;  // no leading zeros
    const std::string layer = name.substr(p, q - p);
    const std::string rest = name.substr(q + 1);
    for (const auto& ln : kLayerNames)
        if (auto s = suffix_of(rest, ln.gguf)) return "model.layers." + layer + "." + ln.hf + *s;
    return std::nullopt;
}

ModelConfig gguf_model_config(const GgufFile& f) {
    const std::string path_str = f.path();
    const char* path = path_str.c_str();
    PALU_CHECK(f.find("general.architecture"), FormatError,
               "formats: %s: metadata key 'general.architecture': expected 'llama', got no such "
               "key",
               path);
    const std::string arch = f.get_string("general.architecture");
    PALU_CHECK(arch == "llama", FormatError,
               "formats: %s: general.architecture: expected 'llama', got '%s'; hint: palu reads "
               "GGUF files of the llama architecture (Llama, Mistral, SmolLM ...)",
               path, arch.c_str());
    const std::string p = "llama.";
    ModelConfig c;
    c.architecture = "llama";
    c.d_model = require_int(f, p + "embedding_length");
    c.n_layers = require_int(f, p + "block_count");
    c.n_heads = require_int(f, p + "attention.head_count");
    c.n_kv_heads = f.find(p + "attention.head_count_kv") ? f.get_int(p + "attention.head_count_kv")
                                                         : c.n_heads;
    c.d_ff = require_int(f, p + "feed_forward_length");
    if (f.find(p + "context_length")) c.max_position_embeddings = f.get_int(p + "context_length");
    PALU_CHECK(f.find(p + "attention.layer_norm_rms_epsilon"), FormatError,
               "formats: %s: metadata key 'llama.attention.layer_norm_rms_epsilon': expected for "
               "the llama architecture, got no such key",
               path);
    c.rms_norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon");
    if (f.find(p + "rope.freq_base")) c.rope_theta = f.get_float(p + "rope.freq_base");

    // head_dim: explicit key length, else the rotary dimension (all of it for llama), else derived.
    if (f.find(p + "attention.key_length"))
        c.d_head = f.get_int(p + "attention.key_length");
    else if (f.find(p + "rope.dimension_count"))
        c.d_head = f.get_int(p + "rope.dimension_count");
    else
        c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
    if (f.find(p + "attention.value_length")) {
        const int64_t dv = f.get_int(p + "attention.value_length");
        PALU_CHECK(dv == c.d_head, FormatError,
                   "formats: %s: llama.attention.value_length: expected the key length %lld, got "
                   "%lld",
                   path, (long long)c.d_head, (long long)dv);
    }
    if (f.find(p + "rope.dimension_count")) {
        const int64_t rd = f.get_int(p + "rope.dimension_count");
        PALU_CHECK(rd == c.d_head, FormatError,
                   "formats: %s: llama.rope.dimension_count: expected the head dim %lld (full "
                   "rotary), got %lld",
                   path, (long long)c.d_head, (long long)rd);
    }

    if (f.find(p + "vocab_size")) {
        c.n_vocab = f.get_int(p + "vocab_size");
    } else if (const GgufValue* tok = f.find("tokenizer.ggml.tokens");
               tok && tok->type == GgufValueType::ARRAY) {
        c.n_vocab = static_cast<int64_t>(tok->array.size());
    } else if (const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
               emb && emb->ne.size() == 2) {
        c.n_vocab = emb->ne[1];
    }

    // RoPE scaling: linear is representable; llama3's is stored as a rope_freqs tensor.
    std::string scaling = "none";
    if (f.find(p + "rope.scaling.type")) scaling = f.get_string(p + "rope.scaling.type");
    if (scaling == "linear") {
        c.rope_scaling.type = "linear";
        c.rope_scaling.factor = f.get_float(p + "rope.scaling.factor");
    } else if (scaling == "none") {
        if (f.find(p + "rope.scale_linear")) {  // older converters
            const double factor = f.get_float(p + "rope.scale_linear");
            if (factor != 1.0) {
                c.rope_scaling.type = "linear";
                c.rope_scaling.factor = factor;
            }
        }
    } else {
        PALU_THROW(FormatError,
                   "formats: %s: llama.rope.scaling.type: expected 'none' or 'linear', got '%s' "
                   "(not supported)",
                   path, scaling.c_str());
    }
    PALU_CHECK(!f.find_tensor("rope_freqs.weight"), FormatError,
               "formats: %s: tensor 'rope_freqs.weight': expected none, got one (llama3-style "
               "RoPE frequency factors are not supported for GGUF input); hint: use the Hugging "
               "Face checkpoint of this model",
               path);

    c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
    c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
    c.mlp_bias = f.find_tensor("blk.0.ffn_up.bias") != nullptr;
    if (f.find("tokenizer.ggml.bos_token_id"))
        c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id");
    if (f.find("tokenizer.ggml.eos_token_id"))
        c.eos_token_ids = {f.get_int("tokenizer.ggml.eos_token_id")};
    c.validate(f.path());
    return c;
}

std::unique_ptr<WeightSource> open_gguf_model(const std::filesystem::path& file) {
    return std::make_unique<GgufWeightSource>(GgufFile::open(file));
}

std::unique_ptr<WeightSource> open_gguf_model(std::unique_ptr<GgufFile> file) {
    PALU_ASSERT(file != nullptr, "open_gguf_model: null GgufFile");
    return std::make_unique<GgufWeightSource>(std::move(file));
}

}  // namespace palu::formats
