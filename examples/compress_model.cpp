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
    params.rank.ratio = 0.5;  // keep half of the K/V latent dimensions
    // Calibration: Gram matrices (whitening) and Fisher scores (rank allocation) on 8 windows of
    // 128 tokens, kept in memory (set params.calib.stats_path to keep them in an HDF5 file).
    // Without calibration data use RankSearchMethod::Uniform and DecomposeMethod::Plain.
    params.calib.tokens_path = argv[2];
    params.calib.n_samples = 8;
    params.calib.seqlen = 128;
    params.rank.method = palu::compress::RankSearchMethod::FisherUniform;  // the default
    params.decompose.method = palu::compress::DecomposeMethod::Whitened;   // the default
    params.run.progress = false;
    try {
        // Every stage: calibrate -> rank search -> whitened group SVD -> write the checkpoint.
        const palu::pipeline::CompressResult r = palu::pipeline::run_compress(params);
        const palu::formats::PaluBlock& palu = r.palu;  // also config.json's "palu" block
        std::printf("achieved ratio %.4f (target %.4f)\n", palu.rank_search.achieved_ratio,
                    params.rank.ratio);
        std::printf("KV cache bytes/token: original f16 %lld, compressed %lld (x%.3f)\n",
                    static_cast<long long>(palu.kv_bytes_per_token.original_f16),
                    static_cast<long long>(palu.kv_bytes_per_token.compressed),
                    palu.kv_bytes_per_token.ratio);
    } catch (const palu::Error& e) {
        // Typed errors carry the stage, the object and a hint; exit codes as the CLI's.
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
