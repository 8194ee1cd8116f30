// palu-export: turns a palu checkpoint into a format other tools load. `--to dense` writes an
// ordinary Hugging Face checkpoint of the base architecture (k_proj/v_proj re-multiplied from the
// low-rank factors; no KV saving, for checking the compressed model with transformers);
// `--to deepseek` writes an MLA checkpoint as a clean HF DeepSeek-V3 directory (transformers,
// vLLM, SGLang); `--to gguf` writes an MLA checkpoint as a llama.cpp deepseek2 GGUF.
#include "cli_common.h"
#include "palu/pipeline/export.h"

int main(int argc, char** argv) {
    CLI::App app{
        "palu-export: exports a palu checkpoint. --to dense writes an ordinary HF checkpoint "
        "(k_proj/v_proj = U·VT per head group, f64 products) that transformers loads as the "
        "base model; every other tensor and the tokenizer are copied unchanged. --to deepseek "
        "writes an MLA checkpoint (palu-compress --layout mla) as a DeepSeek-V3 HF directory "
        "(transformers, vLLM, SGLang). --to gguf writes an MLA checkpoint as one llama.cpp "
        "deepseek2 GGUF file (latent KV cache in llama.cpp), tokenizer included.",
        "palu-export"};
    palu::cli::CommonOptions common;
    palu::pipeline::ExportParams p;
    app.add_option("--model,-m", p.model_path,
                   "Compressed (dense) or MLA (deepseek, gguf) checkpoint")
        ->required();
    std::string to = "dense", target = "any";
    app.add_option("--to", to,
                   "Target: dense (directory) | deepseek (alias mla; directory) | gguf (one .gguf "
                   "file; needs an MLA checkpoint)");
    app.add_option("--out,-o", p.out_path,
                   "Output directory (dense, deepseek: must not exist or be empty) or file (gguf)")
        ->required();
    palu::DType dtype = palu::DType::F32;
    auto* dtype_opt = palu::cli::add_enum_option(
        app, "--dtype", dtype, palu::cli::float_dtypes(),
        "f32|f16|bf16: dense k_proj/v_proj storage (default f32); deepseek: every tensor "
        "(default the source's); gguf: the 2-D weights, norms stay f32 (default f32)");
    app.add_option("--target", target,
                   "deepseek: any (default; logs a note when vLLM would refuse the geometry) | "
                   "vllm (refuse kv_lora_rank + qk_rope_head_dim other than 576 or 320)");
    bool overwrite = false;
    app.add_flag("--overwrite", overwrite,
                 "Replace a non-empty --out (directory) or an existing file (gguf)");
    palu::cli::add_common(app, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        palu::cli::apply_common(common);
        p.to = palu::pipeline::parse_export_target(to);
        p.deepseek.target = palu::pipeline::parse_deepseek_runtime(target);
        p.dense.dtype = p.gguf.dtype = dtype;
        if (dtype_opt->count() > 0) p.deepseek.dtype = dtype;
        p.dense.overwrite = p.deepseek.overwrite = p.gguf.overwrite = overwrite;
        palu::pipeline::run_export(p);
        return 0;
    });
}
