// palu example: compress a model in a few lines with the library (what `palu-compress` does).
//
// Input  a model (HF directory, .safetensors, .gguf or llama2.c .bin), a raw int32 token file for
//        calibration, an output directory.
// Output OUT_DIR: the compressed checkpoint (docs/checkpoint.md) and report.json; the program
//        prints the kept ratio and the KV-cache bytes per token before and after.
//
// Usage: palu_example_compress_model MODEL TOKENS.i32 OUT_DIR
#include <cstdio>

#include "palu/core/error.h"
#include "palu/pipeline/compress.h"

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL TOKENS.i32 OUT_DIR\n", argv[0]);
        return 2;
    }
    palu::pipeline::CompressParams params;
    params.model_path = argv[1];
    params.out_dir = argv[3];
    params.ratio = 0.5;  // keep half of the K/V latent dimensions
    // Calibration: Gram matrices (whitening) and Fisher scores (rank allocation) on 8 windows of
    // 128 tokens. Without calibration data use rank_search = "uniform" and whiten = false.
    params.calib.calib_tokens = argv[2];
    params.calib.calib_samples = 8;
    params.calib.calib_seqlen = 128;
    params.rank_search = "fisher_uniform";
    params.whiten = true;
    params.progress = false;
    try {
        // Every stage: calibrate -> rank search -> whitened group SVD -> write the checkpoint.
        const nlohmann::json report = palu::pipeline::run_compress(params).report;
        const nlohmann::json& palu = report.at("palu");  // also config.json's "palu" block
        const nlohmann::json& kv = palu.at("kv_bytes_per_token");
        std::printf("achieved ratio %.4f (target %.4f)\n",
                    palu.at("rank_search").at("achieved_ratio").get<double>(), params.ratio);
        std::printf("KV cache bytes/token: original f16 %lld, compressed %lld (x%.3f)\n",
                    kv.at("original_f16").get<long long>(), kv.at("compressed").get<long long>(),
                    kv.at("ratio").get<double>());
    } catch (const palu::Error& e) {
        // Typed errors carry the stage, the object and a hint; exit codes as the CLI's.
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
