// palu pipeline: the export stage — a compressed checkpoint into what other runtimes load.
// `dense`: an ordinary HF checkpoint with k_proj.weight = concat_g U_g·VT_g (no KV saving: for
// checking the compressed forward with other tools). `deepseek`: an MLA checkpoint (palu-compress
// --layout mla) as a clean HF DeepSeek-V3 directory for transformers / vLLM / SGLang
// (runtimes-and-peers.md §C.1). `gguf`: an MLA checkpoint as a llama.cpp `deepseek2` GGUF
// (export_gguf.cpp).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "palu/core/dtype.h"
#include "palu/core/weight_source.h"

namespace palu::pipeline {

enum class ExportTarget { Dense, Deepseek, Gguf };
/// "dense" | "deepseek" (also spelled "mla") | "gguf"; UsageError otherwise.
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

/// The runtime whose limits `--to deepseek` enforces.
enum class DeepseekRuntime { Any, Vllm };
/// "any" | "vllm"; UsageError otherwise.
DeepseekRuntime parse_deepseek_runtime(const std::string& s);

/// The MLA cache widths (kv_lora_rank + qk_rope_head_dim) vLLM's MLA backends accept
/// (MLACommonBackend.get_supported_head_sizes, runtimes-and-peers.md §C.1).
inline constexpr int64_t kVllmMlaHeadSizes[] = {576, 320};
/// Whether kv_lora_rank + qk_rope_head_dim is one of kVllmMlaHeadSizes.
bool vllm_accepts_mla_geometry(const MlaConfig& mla);

struct DeepseekExportOptions {
    /// Storage of every tensor: F32|F16|BF16; nullopt = the source's q_proj storage when it is
    /// one of those, else F32.
    std::optional<DType> dtype;
    bool overwrite = false;
    /// Vllm: refuse (before writing anything) a geometry vLLM's kernels do not run; Any: write it
    /// and log a note.
    DeepseekRuntime target = DeepseekRuntime::Any;
};

/// config.json of the DeepSeek-V3 export of the MLA checkpoint `mla` with tensors in `dtype`:
/// the §C.1 keys (hf_config_json's dense DeepSeek-V3 form), the MoE fields in the neutral dense
/// form vLLM also loads (n_routed_experts 1, n_shared_experts 0, first_k_dense_replace =
/// num_hidden_layers, no MTP layers), rope_theta plus transformers-5 rope_parameters, torch_dtype
/// and dtype, and the source's palu block with exported = "deepseek" and exported_dtype.
nlohmann::json deepseek_export_config(const WeightSource& mla, DType dtype);

/// Writes the MLA checkpoint `mla` (config().is_mla()) as a Hugging Face DeepSeek-V3 directory
/// (DeepseekV3ForCausalLM): deepseek_export_config's config.json, model.safetensors with exactly
/// the tensors of formats::expected_hf_tensors (lm_head only when untied) in the requested dtype
/// (bytes copied when the stored dtype already is the requested one), the tokenizer files.
/// Atomic (formats::StagingDir). Throws UsageError when `mla` is not an MLA checkpoint, its rope
/// dims are not interleaved, the dtype is not F32/F16/BF16, target Vllm and the geometry is not
/// vLLM's, out_dir exists and is not empty without overwrite; NumericalError when a value
/// overflows f16 — all before anything is left on disk.
void export_deepseek(const WeightSource& mla, const std::filesystem::path& out_dir,
                     const DeepseekExportOptions& options = {});
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
    std::string model_path;  ///< a compressed (dense) or MLA (deepseek) checkpoint directory
    ExportTarget to = ExportTarget::Dense;
    std::string out_path;
    DenseExportOptions dense;
    DeepseekExportOptions deepseek;
    GgufExportOptions gguf;  ///< --to gguf
};

/// Opens `model_path` and runs the export named by `to`. Throws UsageError for options of another
/// target (deepseek.target with --to dense), plus everything open_model, export_dense,
/// export_deepseek and export_gguf throw.
void run_export(const ExportParams& params);

}  // namespace palu::pipeline
