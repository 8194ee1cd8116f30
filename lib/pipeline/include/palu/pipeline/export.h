// palu pipeline: the export stage — a compressed checkpoint into what other runtimes load.
// Today: `dense`, an ordinary HF checkpoint with k_proj.weight = concat_g U_g·VT_g (no KV saving:
// for checking the compressed forward with other tools). `mla` and `gguf`: not implemented yet.
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

struct ExportParams {
    std::string model_path;  ///< a compressed checkpoint directory
    ExportTarget to = ExportTarget::Dense;
    std::string out_path;
    DenseExportOptions dense;
};

/// Opens `model_path` and runs the export named by `to`. Throws UsageError for a target that is
/// not implemented yet, plus everything open_model and export_dense throw.
void run_export(const ExportParams& params);

}  // namespace palu::pipeline
