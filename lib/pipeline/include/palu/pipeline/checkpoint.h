// palu pipeline: the compressed checkpoint (ARCHITECTURE.md "Checkpoint layout", docs/checkpoint.md)
// and its dense export.
//
// Compressed checkpoint = a normal Hugging Face directory:
//   config.json        the source's config (HF sources: their config.json verbatim; GGUF / llama2.c
//                      sources: one generated from ModelConfig) plus
//                        "model_type": "palu" + base type (palullama | palumistral | paluqwen2),
//                        "architectures": ["PaluLlamaForCausalLM" | "PaluMistralForCausalLM" |
//                                          "PaluQwenForCausalLM"]  (the reference's spelling),
//                        "head_wise_ranks": {"model.layers.{l}.self_attn.k_proj": [r_0, ...], ...},
//                        "palu": { ...the block the caller gives, format_version first... }
//   model.safetensors  (or shards + model.safetensors.index.json)
//                      model.layers.{l}.self_attn.{k,v}_proj.VT.weight   [Σ_g r_g, d_model]
//                      model.layers.{l}.self_attn.{k,v}_proj.U.{g}.weight [s·d_head, r_g]
//                      model.layers.{l}.self_attn.{k,v}_proj.U.{g}.bias   [s·d_head] (if biased)
//                      every other tensor of the source under its HF name: raw bytes and dtype
//                      copied unchanged from safetensors sources; F32 (dequantized exactly as the
//                      engine sees them) from GGUF / llama2.c sources.
//   tokenizer          the source's tokenizer: tokenizer.json, tokenizer_config.json,
//                      special_tokens_map.json, tokenizer.model, generation_config.json copied
//                      when present; a llama2.c tok<N>.bin copied; a GGUF source's tokenizer
//                      written as `tokenizer.gguf` (GGUF with the tokenizer.* metadata, no tensors).
// Everything is written into a hidden temporary directory beside `out_dir` and renamed into place
// at the end; on any error the temporary directory is removed and `out_dir` is untouched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "palu/compress/decompose.h"
#include "palu/core/dtype.h"
#include "palu/core/weight_source.h"

namespace palu::pipeline {

/// The factors of one layer's k_proj and v_proj.
struct CompressedLayer {
    compress::LowRankKV k;
    compress::LowRankKV v;
};

struct CheckpointWriteOptions {
    /// Storage type of the U / VT factors: "auto" (the source k_proj's dtype when it is F32, F16
    /// or BF16, else F32), "f32", "f16", "bf16".
    std::string factor_dtype = "auto";
    bool overwrite = false;            ///< replace an existing non-empty out_dir
    uint64_t max_shard_bytes = 0;      ///< 0 = one model.safetensors
};

/// Writes the compressed checkpoint of `src` with `layers` (one per decoder layer) into `out_dir`.
/// `palu_block` becomes config.json's "palu" object. Throws UsageError (out_dir exists and is not
/// empty without overwrite; layer count or factor shapes not matching the config), IoError
/// (unwritable directory: "hint: choose another --out"), FormatError.
void write_compressed_checkpoint(const WeightSource& src, const std::vector<CompressedLayer>& layers,
                                 const nlohmann::json& palu_block,
                                 const std::filesystem::path& out_dir,
                                 const CheckpointWriteOptions& options = {});

/// Whether `src` is a compressed palu checkpoint (has model.layers.0.self_attn.k_proj.VT.weight).
bool is_compressed_checkpoint(const WeightSource& src);

/// config.json text for a ModelConfig (GGUF / llama2.c sources, dense export): the HF keys of the
/// base architecture (model_type, architectures, hidden_size, ..., rope_scaling, tie_word_embeddings,
/// attention_bias, bos/eos ids, torch_dtype), readable by formats::parse_hf_config and by Hugging
/// Face transformers.
nlohmann::json config_json_for(const ModelConfig& config, const std::string& torch_dtype);

struct DenseExportOptions {
    std::string dtype = "f32";         ///< storage of the re-multiplied k_proj / v_proj: f32|f16|bf16
    bool overwrite = false;
};

/// `palu-export --to dense`: reads a compressed checkpoint and writes an ordinary HF checkpoint of
/// the base architecture with k_proj.weight = concat_g U_g·VT_g (f64 accumulation) and
/// k_proj.bias = concat_g U_g.bias, same for v_proj; every other tensor copied unchanged; config.json
/// without head_wise_ranks, model_type/architectures of the base model, the palu block kept under
/// "palu" with "exported": "dense". The tokenizer files are copied. No KV saving: for checking the
/// compressed forward with other tools. Throws UsageError when `src` is not compressed.
void export_dense(const WeightSource& compressed, const std::filesystem::path& out_dir,
                  const DenseExportOptions& options = {});

/// palu-export's parameters (apps/palu-export.cpp).
struct ExportParams {
    std::string model_path;            ///< a compressed checkpoint directory
    std::string to = "dense";          ///< dense (mla, gguf: not implemented yet)
    std::string out_path;
    DenseExportOptions dense;
};

/// Opens `model_path` and runs the export named by `to`. Throws UsageError for an unknown or not
/// yet implemented target, plus everything open_model and export_dense throw.
void run_export(const ExportParams& params);

}  // namespace palu::pipeline
