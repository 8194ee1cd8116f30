// palu pipeline: the eval stage — perplexity over non-overlapping windows, and greedy generation
// through the KV cache (a latent cache for compressed checkpoints, in the format their palu
// block records). Stage functions take an open WeightSource; run_* open the model themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "palu/calib/text.h"
#include "palu/core/weight_source.h"
#include "palu/pipeline/run.h"

namespace palu::model {
class Transformer;
}

namespace palu::pipeline {

/// What to score and how.
struct EvalOptions {
    std::string text_path;  ///< corpus (exclusive with tokens_path)
    calib::TextFormat text_format = calib::TextFormat::Auto;
    std::string tokens_path;  ///< raw little-endian int32 ids (.i32)
    int64_t seqlen = 2048;    ///< window length N (N − 1 predictions per window)
    int64_t max_windows = 0;  ///< 0 = every full window
    int64_t n_batch = 1;      ///< windows per forward
    bool streaming = false;   ///< convert weights per layer on every use (low memory)
    /// Compressed checkpoints: latent storage of the KV cache. 0 = the checkpoint's setting
    /// (palu.latent_quant.bits: 16 = f16 latents, 2/3/4/8 = quantized); 32 = f32 latents;
    /// 2/3/4/8/16 override it (quantizer settings from the checkpoint, else the defaults).
    int latent_bits = 0;
    /// Score as llama.cpp's llama-perplexity does (tools/perplexity, default mode): chunks
    /// tokens[i·N, (i+1)·N) with the first token replaced by BOS (when the model's tokenizer adds
    /// one; without a tokenizer file, config bos_token_id when set), only the
    /// second half scored (positions N/2 .. N−2 predicting the next token: N − N/2 − 1 predictions
    /// per chunk), ppl = exp(total NLL / total predictions). `seqlen` is llama.cpp's -c.
    bool llama_cpp_windows = false;
    bool has_source() const { return !text_path.empty() || !tokens_path.empty(); }
    const std::string& source() const { return text_path.empty() ? tokens_path : text_path; }
};

struct EvalPplResult {
    std::string model_path;
    std::string format;  ///< hf-safetensors | gguf | llama2c (+palu: compressed in memory)
    double nll = 0.0;    ///< mean over windows of the window's mean NLL (nats)
    std::string windows = "palu";  ///< "palu" (N − 1 predictions per window) | "llama.cpp"
    double ppl = 0.0;              ///< exp(nll)
    int64_t n_windows = 0;
    int64_t n_tokens = 0;         ///< tokens scored (n_windows * seqlen)
    int64_t n_tokens_source = 0;  ///< tokens in the corpus
    int64_t seqlen = 0;
    double seconds = 0.0;  ///< model time (forward + NLL), excluding loading
    double tokens_per_s = 0.0;
    int64_t kv_bytes_per_token = 0;  ///< from the KV cache object
    int latent_bits = 0;             ///< latent cache storage bits (0: dense cache)
    int n_threads = 0;
    std::vector<double> window_nll;
    nlohmann::json to_json() const;
};

/// The evaluation token ids: the token file, or the text tokenized once with `src`'s tokenizer
/// (BOS only at the start). Throws UsageError (no/both inputs), IoError, FormatError.
std::vector<int32_t> load_eval_tokens(const EvalOptions& eval, const WeightSource& src);

/// Sets the latent KV cache of `engine` when `src` is a compressed checkpoint (bits as
/// EvalOptions::latent_bits, quantizer settings from its palu block); returns the bits used, 0
/// for a dense model (where latent_bits must be 0).
int configure_latent_cache(model::Transformer& engine, const WeightSource& src, int latent_bits);

/// The stage: perplexity of `src` on `tokens`. Throws UsageError (too few tokens).
EvalPplResult eval_ppl(const WeightSource& src, const std::vector<int32_t>& tokens,
                       const EvalOptions& eval, const RunOptions& run = {});

/// palu-eval ppl.
struct EvalPplParams {
    std::string model_path;
    EvalOptions eval;
    RunOptions run;
};
EvalPplResult run_eval_ppl(const EvalPplParams& params);

struct GenerateParams {
    std::string model_path;
    int latent_bits = 0;  ///< as EvalOptions::latent_bits
    std::string prompt;
    int64_t max_new = 64;
    RunOptions run;
    /// Called with each new piece of text as soon as its token is decoded (may be empty).
    std::function<void(const std::string&)> on_text;
};

struct GenerateResult {
    std::vector<int32_t> tokens;  ///< prompt (with BOS) + generated
    int64_t n_prompt = 0;
    int64_t n_generated = 0;
    std::string text;  ///< generated text only
    double prefill_s = 0.0;
    double decode_tokens_per_s = 0.0;
    int64_t kv_bytes_per_token = 0;
};

/// Greedy decoding through the KV cache until max_new tokens or EOS.
GenerateResult run_generate(const GenerateParams& params);

}  // namespace palu::pipeline
