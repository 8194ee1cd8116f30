// palu-export: turns a compressed palu checkpoint into a format other tools load. `--to dense`
// writes an ordinary Hugging Face checkpoint of the base architecture (k_proj/v_proj re-multiplied
// from the low-rank factors; no KV saving, for checking the compressed model with transformers).
// `--to gguf` writes an MLA checkpoint (palu-compress --layout mla) as a llama.cpp deepseek2 GGUF.
#include "cli_common.h"
#include "palu/pipeline/export.h"

int main(int argc, char** argv) {
    CLI::App app{
        "palu-export: exports a compressed palu checkpoint. --to dense writes an ordinary "
        "HF checkpoint (k_proj/v_proj = U·VT per head group, f64 products) that "
        "transformers loads as the base model; every other tensor and the tokenizer are "
        "copied unchanged. --to gguf writes an MLA checkpoint (palu-compress --layout mla) as one "
        "llama.cpp deepseek2 GGUF file (latent KV cache in llama.cpp), tokenizer included.",
        "palu-export"};
    palu::cli::CommonOptions common;
    palu::pipeline::ExportParams p;
    app.add_option("--model,-m", p.model_path,
                   "Compressed checkpoint directory (gguf: an MLA checkpoint directory)")
        ->required();
    std::string to = "dense";
    app.add_option("--to", to,
                   "Target: dense (directory) | gguf (one .gguf file; needs an MLA checkpoint)");
    app.add_option("--out,-o", p.out_path,
                   "Output directory (dense: must not exist or be empty) or file (gguf)")
        ->required();
    palu::cli::add_enum_option(
        app, "--dtype", p.dense.dtype, palu::cli::float_dtypes(),
        "dense: storage of k_proj/v_proj; gguf: of the 2-D weights (norms stay f32): "
        "f32 (default)|f16|bf16");
    app.add_flag("--overwrite", p.dense.overwrite,
                 "Replace a non-empty --out (directory) or an existing file");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        palu::cli::apply_common(common);
        p.to = palu::pipeline::parse_export_target(to);
        p.gguf.dtype = p.dense.dtype;
        p.gguf.overwrite = p.dense.overwrite;
        palu::pipeline::run_export(p);
        return 0;
    });
}
