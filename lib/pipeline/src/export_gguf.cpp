// palu pipeline: `palu-export --to gguf` — an MLA checkpoint (dense DeepSeek-V3 HF directory, as
// palu-compress --layout mla writes) into a llama.cpp `deepseek2` GGUF, the layout llama.cpp's
// convert_hf_to_gguf.py (DeepseekV2Model) produces for a dense model without q-LoRA:
//   metadata  deepseek2.* hyper-parameters (attention as MQA over the latent: head_count_kv 1,
//             key_length = kv_lora_rank + qk_rope, value_length = kv_lora_rank; the decompressed
//             head sizes in key_length_mla / value_length_mla), every layer dense
//             (leading_dense_block_count = n_layer), plus the tokenizer (tokenizer.ggml.*: from
//             tokenizer.gguf, a llama2.c tok<N>.bin or a SentencePiece tokenizer.model);
//   tensors   token_embd, output_norm, output (untied only: llama.cpp falls back to token_embd),
//             blk.N.{attn_norm, attn_q, attn_kv_a_mqa, attn_kv_a_norm, attn_k_b, attn_v_b,
//             attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.
// An HF [n_out, n_in] row-major matrix is a ggml tensor ne = [n_in, n_out] with the same bytes.
// kv_b_proj [H·(nope + v), r] is split per head as the converter does: attn_k_b ne [nope, r, H]
// (the K rows of each head, transposed: llama.cpp absorbs q_nope·W_UK before attention) and
// attn_v_b ne [r, v, H] (the V rows, applied after attention to the latent).
// RoPE: HF DeepSeek stores the rope rows of q_proj / kv_a_proj_with_mqa as interleaved pairs
// (rope_interleave true), which is exactly llama.cpp's deepseek2 rope (LLAMA_ROPE_TYPE_NORM,
// adjacent pairs), so the stock converter copies them unchanged; a checkpoint with
// rope_interleave false (rotate-half order) has those rows interleaved here.
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>

#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_writer.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/pipeline/export.h"
#include "palu/pipeline/run.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufValue;
using ll = long long;

namespace {

// llama.cpp's llama_token_type (gguf-py TokenType).
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUnused = 5, kByte = 6 };

struct Vocab {
    std::vector<std::pair<std::string, GgufValue>> kv;  // tokenizer.* keys, in file order
    std::string source;                                 // the file it came from
    int64_t n_tokens = 0;                               // before padding
};

// llama2.c tok<N>.bin (int32 max_token_len, then per token: f32 score, int32 len, bytes) as a
// llama SentencePiece vocabulary: the pieces with ' ' spelled U+2581 (llama.cpp's SPM tokenizer
// escapes spaces so), ids 0/1/2 as <unk>/<s>/</s> (llama2.c writes BOS/EOS as "\n<s>\n"), byte
// pieces <0xXX> typed BYTE; add_space_prefix reproduces llama2.c's dummy " " prefix. The SPM
// merge order (highest piece score first, leftmost on ties, byte fallback for code points outside
// the vocabulary) is llama2.c's encode, so both tokenize text identically.
Vocab llama2c_vocab(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    PALU_CHECK(f.good(), IoError, "export: %s: cannot open the llama2.c tokenizer",
               path.string().c_str());
    std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t off = 0;
    auto read = [&](void* dst, size_t n, const char* what) {
        PALU_CHECK(off + n <= data.size(), FormatError,
                   "export: %s: truncated llama2.c tokenizer at byte %zu: expected %zu more "
                   "bytes for %s, got %zu",
                   path.string().c_str(), off, n, what, data.size() - off);
        std::memcpy(dst, data.data() + off, n);
        off += n;
    };
    int32_t max_len = 0;
    read(&max_len, 4, "max_token_length");
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    while (off < data.size()) {
        float score = 0;
        int32_t len = 0;
        read(&score, 4, "a score");
        read(&len, 4, "a piece length");
        PALU_CHECK(len >= 0 && len <= std::max(max_len, 64), FormatError,
                   "export: %s: token %zu: piece length %d outside [0, %d]", path.string().c_str(),
                   tokens.size(), len, std::max(max_len, 64));
        std::string piece(static_cast<size_t>(len), '\0');
        read(piece.data(), piece.size(), "a piece");
        const size_t id = tokens.size();
        int32_t type = kNormal;
        if (id == 0) {
            piece = "<unk>", type = kUnknown;
        } else if (id == 1) {
            piece = "<s>", type = kControl;
        } else if (id == 2) {
            piece = "</s>", type = kControl;
        } else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece[5] == '>') {
            type = kByte;
        } else {
            std::string esc;
            for (char c : piece) esc += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
            piece = std::move(esc);
        }
        tokens.push_back(std::move(piece));
        scores.push_back(score);
        types.push_back(type);
    }
    PALU_CHECK(tokens.size() > 258, FormatError,
               "export: %s: %zu pieces: expected a llama2.c vocabulary with <unk>, <s>, </s> and "
               "the 256 byte pieces <0x00>..<0xFF> at ids 3..258",
               path.string().c_str(), tokens.size());
    Vocab v;
    v.source = path.string();
    v.n_tokens = static_cast<int64_t>(tokens.size());
    v.kv.emplace_back("tokenizer.ggml.model", formats::gguf_str("llama"));
    v.kv.emplace_back("tokenizer.ggml.tokens", formats::gguf_str_array(tokens));
    v.kv.emplace_back("tokenizer.ggml.scores", formats::gguf_f32_array(scores));
    v.kv.emplace_back("tokenizer.ggml.token_type", formats::gguf_i32_array(types));
    v.kv.emplace_back("tokenizer.ggml.bos_token_id", formats::gguf_u32(1));
    v.kv.emplace_back("tokenizer.ggml.eos_token_id", formats::gguf_u32(2));
    v.kv.emplace_back("tokenizer.ggml.unknown_token_id", formats::gguf_u32(0));
    v.kv.emplace_back("tokenizer.ggml.add_bos_token", formats::gguf_bool(true));
    v.kv.emplace_back("tokenizer.ggml.add_eos_token", formats::gguf_bool(false));
    v.kv.emplace_back("tokenizer.ggml.add_space_prefix", formats::gguf_bool(true));
    return v;
}

// The tokenizer.* keys of a tokenizer.gguf (what palu-compress keeps of a GGUF source).
Vocab gguf_vocab(const fs::path& path) {
    auto g = formats::GgufFile::open(path);
    Vocab v;
    v.source = path.string();
    for (const auto& key : g->keys())
        if (key.rfind("tokenizer.", 0) == 0) v.kv.emplace_back(key, *g->find(key));
    const GgufValue* toks = g->find("tokenizer.ggml.tokens");
    PALU_CHECK(toks != nullptr && toks->type == formats::GgufValueType::ARRAY, FormatError,
               "export: %s: expected a tokenizer.ggml.tokens array, got none",
               path.string().c_str());
    v.n_tokens = static_cast<int64_t>(toks->array.size());
    return v;
}

// A SentencePiece tokenizer.model (HF Llama-style sources) as the stock converter writes it
// (_set_vocab_sentencepiece): the pieces, scores and types as the model has them.
Vocab sentencepiece_vocab(const fs::path& path) {
    const calib::SentencePieceVocab sp = calib::read_sentencepiece_vocab(path);
    Vocab v;
    v.source = path.string();
    v.n_tokens = static_cast<int64_t>(sp.pieces.size());
    v.kv.emplace_back("tokenizer.ggml.model", formats::gguf_str("llama"));
    v.kv.emplace_back("tokenizer.ggml.tokens", formats::gguf_str_array(sp.pieces));
    v.kv.emplace_back("tokenizer.ggml.scores", formats::gguf_f32_array(sp.scores));
    v.kv.emplace_back("tokenizer.ggml.token_type", formats::gguf_i32_array(sp.types));
    auto id = [&](const char* key, int32_t value) {
        if (value >= 0) v.kv.emplace_back(key, formats::gguf_u32(static_cast<uint32_t>(value)));
    };
    id("tokenizer.ggml.bos_token_id", sp.bos_id);
    id("tokenizer.ggml.eos_token_id", sp.eos_id);
    id("tokenizer.ggml.unknown_token_id", sp.unk_id);
    id("tokenizer.ggml.padding_token_id", sp.pad_id);
    v.kv.emplace_back("tokenizer.ggml.add_bos_token", formats::gguf_bool(sp.bos_id >= 0));
    v.kv.emplace_back("tokenizer.ggml.add_eos_token", formats::gguf_bool(false));
    v.kv.emplace_back("tokenizer.ggml.add_space_prefix", formats::gguf_bool(sp.add_dummy_prefix));
    return v;
}

// llama.cpp sizes token_embd by the token list: pad a shorter vocabulary with unused tokens.
void pad_vocab(Vocab& v, int64_t n_vocab) {
    PALU_CHECK(v.n_tokens <= n_vocab, ShapeError,
               "export: %s has %lld tokens but the model has vocab_size=%lld; hint: the "
               "tokenizer does not belong to this model",
               v.source.c_str(), (ll)v.n_tokens, (ll)n_vocab);
    if (v.n_tokens == n_vocab) return;
    for (auto& [key, val] : v.kv) {
        const bool tokens = key == "tokenizer.ggml.tokens";
        if (!tokens && key != "tokenizer.ggml.scores" && key != "tokenizer.ggml.token_type")
            continue;
        for (int64_t i = v.n_tokens; i < n_vocab; ++i) {
            if (tokens)
                val.array.push_back(formats::gguf_str("[PAD" + std::to_string(i) + "]"));
            else if (val.array_type == formats::GgufValueType::F32)
                val.array.push_back(formats::gguf_f32(0.0f));
            else
                val.array.push_back(formats::gguf_i32(kUnused));
        }
    }
    PALU_LOG_INFO("export", "%s: %lld tokens padded to vocab_size=%lld with unused [PAD<i>]",
                  v.source.c_str(), (ll)v.n_tokens, (ll)n_vocab);
}

// The tokenizer of an MLA checkpoint directory: tokenizer.gguf (GGUF sources), tok<N>.bin
// (llama2.c sources; beside the model or in the folder above, as copy_tokenizer_files looks).
Vocab find_vocab(const WeightSource& src) {
    const fs::path dir = src.source_dir();
    const std::string tok_bin = "tok" + std::to_string(src.config().n_vocab) + ".bin";
    if (fs::is_regular_file(dir / "tokenizer.gguf")) return gguf_vocab(dir / "tokenizer.gguf");
    for (const fs::path& d : {dir, dir.parent_path()})
        if (fs::is_regular_file(d / tok_bin)) return llama2c_vocab(d / tok_bin);
    if (fs::is_regular_file(dir / "tokenizer.model"))
        return sentencepiece_vocab(dir / "tokenizer.model");
    PALU_CHECK(!fs::is_regular_file(dir / "tokenizer.json"), UsageError,
               "export: %s: --to gguf cannot convert tokenizer.json (byte-level BPE) yet: "
               "expected tokenizer.gguf (GGUF sources), %s (llama2.c sources) or tokenizer.model "
               "(SentencePiece); hint: run llama.cpp's convert_hf_to_gguf.py on this directory",
               dir.string().c_str(), tok_bin.c_str());
    PALU_THROW(UsageError,
               "export: %s has no tokenizer: expected tokenizer.gguf, %s or tokenizer.model; "
               "hint: copy the source model's tokenizer into the checkpoint directory",
               dir.string().c_str(), tok_bin.c_str());
}

Tensor load_shaped(const WeightSource& src, const std::string& name,
                   const std::vector<int64_t>& want) {
    Tensor t = src.load_f32(name);
    PALU_CHECK(t.shape() == want, ShapeError,
               "export: %s: tensor '%s' has wrong shape; expected %s, got %s", src.path().c_str(),
               name.c_str(), shape_str(want).c_str(), shape_str(t.shape()).c_str());
    return t;
}

// Rotate-half rope rows (x_i, x_{i+d/2}) to interleaved pairs (x_{2i}, x_{2i+1}): rows
// [row0, row0 + d) of a [n_rows, n_in] matrix.
void interleave_rope_rows(Tensor& w, int64_t row0, int64_t d) {
    const int64_t n_in = w.dim(1), half = d / 2;
    std::vector<float> tmp(static_cast<size_t>(d * n_in));
    float* base = w.data() + row0 * n_in;
    for (int64_t i = 0; i < half; ++i) {
        std::memcpy(tmp.data() + 2 * i * n_in, base + i * n_in, n_in * sizeof(float));
        std::memcpy(tmp.data() + (2 * i + 1) * n_in, base + (half + i) * n_in,
                    n_in * sizeof(float));
    }
    std::memcpy(base, tmp.data(), tmp.size() * sizeof(float));
}

GgmlType ggml_type_of(DType dt) {
    switch (dt) {
        case DType::F32: return GgmlType::F32;
        case DType::F16: return GgmlType::F16;
        case DType::BF16: return GgmlType::BF16;
        default: PALU_ASSERT(false);
    }
    return GgmlType::F32;
}

// llama_ftype: ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_BF16 = 32.
uint32_t file_type_of(DType dt) {
    return dt == DType::F16 ? 1 : dt == DType::BF16 ? 32 : 0;
}

}  // namespace

GgufExportResult export_gguf(const WeightSource& src, const fs::path& out_file,
                             const GgufExportOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = src.config();
    PALU_CHECK(c.is_mla() && !formats::is_palu_checkpoint(src), UsageError,
               "export: %s is not an MLA checkpoint (%s%s): --to gguf needs an MLA checkpoint; "
               "make one with palu-compress --layout mla",
               src.path().c_str(), c.architecture.c_str(),
               formats::is_palu_checkpoint(src) ? ", palu low-rank layout" : ", dense attention");
    PALU_CHECK(o.dtype == DType::F32 || o.dtype == DType::F16 || o.dtype == DType::BF16, UsageError,
               "export: --dtype %s is not supported by --to gguf: expected f32, f16 or bf16; "
               "hint: quantize the f32/f16 file with llama-quantize",
               dtype_name(o.dtype));
    PALU_CHECK(c.rope_scaling.type == "none", UsageError,
               "export: %s: rope_scaling '%s' is not supported by --to gguf: expected none",
               src.path().c_str(), c.rope_scaling.type.c_str());
    PALU_CHECK(!c.qkv_bias && !c.o_bias && !c.mlp_bias, UsageError,
               "export: %s: biases cannot be expressed in a deepseek2 GGUF: expected none",
               src.path().c_str());
    PALU_CHECK(!out_file.empty(), UsageError, "export: no output file; hint: pass --out FILE.gguf");
    PALU_CHECK(o.overwrite || !fs::exists(out_file), UsageError,
               "export: %s already exists; hint: pass --overwrite or choose another --out",
               out_file.string().c_str());
    const fs::path parent = fs::absolute(out_file).parent_path();
    PALU_CHECK(fs::is_directory(parent), UsageError,
               "export: %s: the folder %s does not exist; hint: create it first",
               out_file.string().c_str(), parent.string().c_str());
    const MlaConfig& m = *c.mla;
    if (c.rms_norm_eps != 1e-6)
        PALU_LOG_WARN("export",
                      "rms_norm_eps=%g: llama.cpp applies it to kv_a_layernorm too, where "
                      "transformers (and palu) use DeepseekV3RMSNorm's default 1e-6",
                      c.rms_norm_eps);

    Vocab vocab = find_vocab(src);
    pad_vocab(vocab, c.n_vocab);

    formats::GgufWriter w;
    const std::string a = "deepseek2.";
    auto u32 = [](int64_t v) { return formats::gguf_u32(static_cast<uint32_t>(v)); };
    w.set("general.architecture", formats::gguf_str("deepseek2"));
    w.set("general.type", formats::gguf_str("model"));
    w.set("general.name", formats::gguf_str(fs::absolute(src.source_dir()).filename().string()));
    w.set("general.file_type", formats::gguf_u32(file_type_of(o.dtype)));
    w.set(a + "block_count", u32(c.n_layers));
    w.set(a + "context_length", u32(c.max_position_embeddings));
    w.set(a + "embedding_length", u32(c.d_model));
    w.set(a + "feed_forward_length", u32(c.d_ff));
    w.set(a + "attention.head_count", u32(c.n_heads));
    w.set(a + "attention.head_count_kv", u32(1));  // MLA as MQA over [latent ‖ k_pe]
    w.set(a + "rope.freq_base", formats::gguf_f32(static_cast<float>(c.rope_theta)));
    w.set(a + "attention.layer_norm_rms_epsilon",
          formats::gguf_f32(static_cast<float>(c.rms_norm_eps)));
    w.set(a + "vocab_size", u32(c.n_vocab));
    // The stock converter omits q_lora_rank when it is null, but llama.cpp's loader requires the
    // key unless the layer count is one of its "lite" models (26/27 layers); 0 selects attn_q.
    w.set(a + "attention.q_lora_rank", u32(0));
    w.set(a + "attention.kv_lora_rank", u32(m.kv_lora_rank));
    w.set(a + "attention.key_length", u32(m.kv_lora_rank + m.qk_rope_head_dim));
    w.set(a + "attention.value_length", u32(m.kv_lora_rank));
    w.set(a + "attention.key_length_mla", u32(m.qk_nope_head_dim + m.qk_rope_head_dim));
    w.set(a + "attention.value_length_mla", u32(m.v_head_dim));
    w.set(a + "rope.dimension_count", u32(m.qk_rope_head_dim));
    w.set(a + "leading_dense_block_count", u32(c.n_layers));
    w.set(a + "expert_feed_forward_length", u32(c.d_ff));
    w.set(a + "expert_shared_count", u32(0));
    for (auto& [key, val] : vocab.kv) w.set(key, std::move(val));

    const GgmlType wt = ggml_type_of(o.dtype);
    int64_t n_tensors = 0;
    // HF [n_out, n_in] → ne [n_in, n_out]; norms (1-D) stay f32 as in llama.cpp's converter.
    auto add = [&](const std::string& name, const Tensor& t) {
        std::vector<int64_t> ne(t.shape().rbegin(), t.shape().rend());
        w.add_tensor(name, ne, t.shape().size() == 1 ? GgmlType::F32 : wt, t.vec());
        ++n_tensors;
    };
    const int64_t d = c.d_model, n_h = c.n_heads, r = m.kv_lora_rank, d_rope = m.qk_rope_head_dim;
    const int64_t d_nope = m.qk_nope_head_dim, d_v = m.v_head_dim, d_qk = d_nope + d_rope;
    add("token_embd.weight", load_shaped(src, "model.embed_tokens.weight", {c.n_vocab, d}));
    add("output_norm.weight", load_shaped(src, "model.norm.weight", {d}));
    if (!c.tie_word_embeddings)
        add("output.weight", load_shaped(src, "lm_head.weight", {c.n_vocab, d}));
    for (int64_t l = 0; l < c.n_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        const std::string b = "blk." + std::to_string(l) + ".";
        add(b + "attn_norm.weight", load_shaped(src, p + "input_layernorm.weight", {d}));
        Tensor wq = load_shaped(src, p + "self_attn.q_proj.weight", {n_h * d_qk, d});
        Tensor wkv_a = load_shaped(src, p + "self_attn.kv_a_proj_with_mqa.weight", {r + d_rope, d});
        if (!m.rope_interleave) {
            for (int64_t h = 0; h < n_h; ++h) interleave_rope_rows(wq, h * d_qk + d_nope, d_rope);
            interleave_rope_rows(wkv_a, r, d_rope);
        }
        add(b + "attn_q.weight", wq);
        add(b + "attn_kv_a_mqa.weight", wkv_a);
        add(b + "attn_kv_a_norm.weight",
            load_shaped(src, p + "self_attn.kv_a_layernorm.weight", {r}));
        // kv_b_proj [H·(nope + v), r]: per head h the nope rows, then the v rows.
        const Tensor kv_b =
            load_shaped(src, p + "self_attn.kv_b_proj.weight", {n_h * (d_nope + d_v), r});
        std::vector<float> k_b(static_cast<size_t>(n_h * r * d_nope));  // ne [nope, r, H]
        std::vector<float> v_b(static_cast<size_t>(n_h * d_v * r));     // ne [r, v, H]
        for (int64_t h = 0; h < n_h; ++h) {
            const float* rows = kv_b.data() + h * (d_nope + d_v) * r;  // [nope + v, r]
            for (int64_t j = 0; j < r; ++j)
                for (int64_t i = 0; i < d_nope; ++i)
                    k_b[static_cast<size_t>((h * r + j) * d_nope + i)] = rows[i * r + j];
            std::memcpy(v_b.data() + h * d_v * r, rows + d_nope * r,
                        static_cast<size_t>(d_v * r) * sizeof(float));
        }
        w.add_tensor(b + "attn_k_b.weight", {d_nope, r, n_h}, wt, k_b);
        w.add_tensor(b + "attn_v_b.weight", {r, d_v, n_h}, wt, v_b);
        n_tensors += 2;
        add(b + "attn_output.weight",
            load_shaped(src, p + "self_attn.o_proj.weight", {d, n_h * d_v}));
        add(b + "ffn_norm.weight", load_shaped(src, p + "post_attention_layernorm.weight", {d}));
        add(b + "ffn_gate.weight", load_shaped(src, p + "mlp.gate_proj.weight", {c.d_ff, d}));
        add(b + "ffn_up.weight", load_shaped(src, p + "mlp.up_proj.weight", {c.d_ff, d}));
        add(b + "ffn_down.weight", load_shaped(src, p + "mlp.down_proj.weight", {d, c.d_ff}));
    }
    w.write(out_file);  // a temporary beside out_file, renamed onto it: never half a file

    GgufExportResult res;
    res.path = out_file.string();
    res.n_tensors = n_tensors;
    res.n_bytes = static_cast<int64_t>(fs::file_size(out_file));
    res.tokenizer = vocab.source;
    res.n_tokens = vocab.n_tokens;
    PALU_LOG_INFO("export",
                  "wrote %s: deepseek2 GGUF, %lld layers (kv_lora_rank %lld + rope %lld), %lld "
                  "tensors %s, %s; tokenizer from %s (%lld tokens); %.2f s",
                  res.path.c_str(), (ll)c.n_layers, (ll)r, (ll)d_rope, (ll)n_tensors,
                  dtype_name(o.dtype), bytes_str(static_cast<double>(res.n_bytes)).c_str(),
                  res.tokenizer.c_str(), (ll)res.n_tokens, seconds_since(t0));
    return res;
}

}  // namespace palu::pipeline
