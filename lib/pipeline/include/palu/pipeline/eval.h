// palu pipeline: the `eval` stage — perplexity over non-overlapping windows, and greedy generation
// through the KV cache. Input: any model path formats::open_model accepts, plus a text corpus
// (tokenized with the model's own tokenizer) or a token file. Output: EvalPplResult / JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "palu/core/weight_source.h"

namespace palu::model {
class Transformer;
}

namespace palu::pipeline {

struct EvalPplParams {
    std::string model_path;
    std::string text_path;             // corpus (exclusive with tokens_path)
    std::string text_format = "auto";  // auto|wikitext|jsonl|plain
    std::string tokens_path;           // raw little-endian int32 ids (.i32)
    int64_t seqlen = 2048;             // window length N (N - 1 predictions per window)
    int64_t max_windows = 0;           // 0 = every full window
    int64_t n_batch = 1;               // windows per forward
    int n_threads = 0;                 // 0 = all cores
    bool streaming = false;            // convert weights per layer on every use (low memory)
    bool progress = true;              // progress line with ETA on stderr
    /// Compressed checkpoints: latent storage of the KV cache. 0 = the checkpoint's setting
    /// (palu.latent_quant.bits: 16 = f16 latents, 2/3/4/8 = quantized); 32 = f32 latents;
    /// 2/3/4/8/16 override it (quantizer settings from the checkpoint, else the defaults).
    int latent_bits = 0;
    /// Already tokenized ids (e.g. the same text for the original and the compressed model);
    /// when non-null, text_path / tokens_path are not read.
    const std::vector<int32_t>* tokens = nullptr;
};

struct EvalPplResult {
    std::string model_path;
    std::string format;  // hf-safetensors | gguf | llama2c
    double nll = 0.0;    // mean over windows of the window's mean NLL (nats)
    double ppl = 0.0;    // exp(nll)
    int64_t n_windows = 0;
    int64_t n_tokens = 0;         // tokens scored (n_windows * seqlen)
    int64_t n_tokens_source = 0;  // tokens in the corpus
    int64_t seqlen = 0;
    double seconds = 0.0;            // model time (forward + NLL), excluding loading
    double tokens_per_s = 0.0;       // n_tokens / seconds
    int64_t kv_bytes_per_token = 0;  // from the KV cache object
    int latent_bits = 0;             // latent cache storage bits (0: dense cache)
    int n_threads = 0;
    std::vector<double> window_nll;
};

/// The evaluation token ids of `p`: its token file, or its text tokenized once with the model's
/// tokenizer (BOS only at the start). Throws UsageError (no/both inputs), IoError, FormatError.
std::vector<int32_t> load_eval_tokens(const EvalPplParams& p, const WeightSource& src);

/// Loads the model and the tokens, then scores the windows with a progress line per batch.
/// Throws UsageError (no/both inputs, too few tokens), IoError, FormatError, ShapeError.
EvalPplResult run_eval_ppl(const EvalPplParams& params);
nlohmann::json to_json(const EvalPplResult& r);

struct GenerateParams {
    std::string model_path;
    int latent_bits = 0;  // as EvalPplParams::latent_bits
    std::string prompt;
    int64_t max_new = 64;
    int n_threads = 0;
    /// Called with each new piece of text as soon as its token is decoded (may be empty).
    std::function<void(const std::string&)> on_text;
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // prompt (with BOS) + generated
    int64_t n_prompt = 0;
    int64_t n_generated = 0;
    std::string text;  // generated text only
    double prefill_s = 0.0;
    double decode_tokens_per_s = 0.0;
    int64_t kv_bytes_per_token = 0;
};

/// Sets the latent KV cache of `engine` when `src` is a compressed checkpoint (bits as
/// EvalPplParams::latent_bits); returns the bits used, 0 for a dense model.
int configure_latent_cache(class ::palu::model::Transformer& engine, const ::palu::WeightSource& src,
                           int latent_bits);

/// Greedy decoding through the KV cache until max_new tokens or EOS.
GenerateResult run_generate(const GenerateParams& params);

}  // namespace palu::pipeline
