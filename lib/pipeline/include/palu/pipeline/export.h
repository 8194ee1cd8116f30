// palu pipeline: the export stage — a compressed checkpoint into what other runtimes load.
// Today: `dense`, an ordinary HF checkpoint with k_proj.weight = concat_g U_g·VT_g (no KV saving:
// for checking the compressed forward with other tools). `gguf`: an MLA checkpoint as a llama.cpp
// `deepseek2` GGUF (export_gguf.cpp). `mla`: not implemented yet.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "palu/core/dtype.h"
#include "palu/core/weight_source.h"

namespace palu::pipeline {

enum class ExportTarget { Dense, Mla, Gguf };
/// "dense" | "mla" | "gguf"; UsageError otherwise.
ExportTarget parse_export_target(const std::string& s);

struct DenseExportOptions {
    DType dtype = DType::F32;  ///< storage of the re-multiplied k_proj / v_proj: F32|F16|BF16
    bool overwrite = false;
};

/// Reads a compressed checkpoint and writes an ordinary HF checkpoint of the base architecture:
/// k_proj.weight = concat_g U_g·VT_g (f64 accumulation, rounded once), k_proj.bias =
/// concat_g U_g.bias, same for v_proj; every other tensor copied unchanged; config.json without
/// head_wise_ranks, model_type/architectures of the base model, the palu block kept with
/// exported = "dense". The tokenizer files are copied. Throws UsageError when `compressed` is not
/// a compressed checkpoint, FormatError / ShapeError for malformed factors.
void export_dense(const WeightSource& compressed, const std::filesystem::path& out_dir,
                  const DenseExportOptions& options = {});

struct GgufExportOptions {
    DType dtype = DType::F32;  ///< storage of the 2-D weights: F32|F16|BF16 (norms stay F32)
    bool overwrite = false;    ///< replace an existing output file
};

struct GgufExportResult {
    std::string path;
    int64_t n_tensors = 0;
    int64_t n_bytes = 0;
    std::string tokenizer;  ///< the file the vocabulary came from
    int64_t n_tokens = 0;   ///< its tokens (before padding to vocab_size)
};

/// Writes an MLA checkpoint (dense DeepSeek-V3, q_lora_rank null: what palu-compress --layout mla
/// writes) as one llama.cpp `deepseek2` GGUF file: the metadata and tensors of llama.cpp's
/// convert_hf_to_gguf.py for such a model (kv_b_proj split into attn_k_b ne [nope, r, H] and
/// attn_v_b ne [r, v, H]), every layer dense, and the tokenizer: tokenizer.gguf's tokenizer.* keys,
/// or a llama2.c tok<vocab_size>.bin as a llama SentencePiece vocabulary. Written through a
/// temporary file renamed into place (nothing is left behind on failure). Throws UsageError for a
/// non-MLA or palu low-rank checkpoint, an unsupported dtype, a missing or unsupported tokenizer,
/// an existing `out_file` without `overwrite`; FormatError / ShapeError for malformed input;
/// IoError when the file cannot be written.
GgufExportResult export_gguf(const WeightSource& mla, const std::filesystem::path& out_file,
                             const GgufExportOptions& options = {});

struct ExportParams {
    std::string model_path;  ///< a compressed checkpoint directory
    ExportTarget to = ExportTarget::Dense;
    std::string out_path;
    DenseExportOptions dense;
    GgufExportOptions gguf;  ///< --to gguf
};

/// Opens `model_path` and runs the export named by `to`. Throws UsageError for a target that is
/// not implemented yet, plus everything open_model and export_dense throw.
void run_export(const ExportParams& params);

}  // namespace palu::pipeline
