// palu pipeline: the eval stage (eval.h).
#include "palu/pipeline/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/log.h"
#include "palu/core/progress.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/palu_checkpoint.h"
#include "palu/model/blas.h"
#include "palu/model/latent_cache.h"
#include "palu/model/perplexity.h"
#include "palu/model/transformer.h"

namespace palu::pipeline {

std::vector<int32_t> load_eval_tokens(const EvalOptions& e, const WeightSource& src) {
    PALU_CHECK(e.text_path.empty() != e.tokens_path.empty(), UsageError,
               "eval: give exactly one of --text FILE or --tokens FILE.i32");
    if (!e.tokens_path.empty()) return calib::load_token_file(e.tokens_path);
    auto tok = calib::find_tokenizer_for_model(src.path(), src.config().n_vocab);
    const std::string text = calib::load_text(e.text_path, e.text_format);
    // The literature's convention: the whole corpus tokenized once, BOS only at its start.
    auto ids = tok->encode(text, /*add_bos=*/true);
    PALU_LOG_INFO("eval", "%s: %zu bytes -> %zu tokens (%s tokenizer)", e.text_path.c_str(),
                  text.size(), ids.size(), tok->kind().c_str());
    return ids;
}

int configure_latent_cache(model::Transformer& engine, const WeightSource& src, int latent_bits) {
    if (!formats::is_palu_checkpoint(src)) {
        PALU_CHECK(latent_bits == 0, UsageError,
                   "eval: --latent-bits applies to compressed palu checkpoints; %s is dense",
                   src.path().c_str());
        return 0;
    }
    model::LatentCacheOptions opts;
    opts.quant = formats::read_palu_checkpoint(src).block.latent_quant;
    opts.bits = opts.quant.bits;
    if (latent_bits != 0) opts.bits = latent_bits;
    PALU_CHECK(opts.bits == 2 || opts.bits == 3 || opts.bits == 4 || opts.bits == 8 ||
                   opts.bits == 16 || opts.bits == 32,
               UsageError, "eval: latent bits must be 2, 3, 4, 8, 16 or 32, got %d", opts.bits);
    engine.set_cache_factory(model::latent_cache_factory(engine.weights(), opts));
    return opts.bits;
}

namespace {

// llama-perplexity's scheme (perplexity.cpp, perplexity()): BOS in place of each chunk's first
// token, logits of the second half only. The first half is run with last_only (its logits are not
// needed), the second half at positions N/2 .. N−1 against the cached first half.
model::PerplexityResult llama_cpp_perplexity(const model::Transformer& engine,
                                             const std::vector<int32_t>& tokens, int64_t n_ctx,
                                             int64_t max_windows, int32_t bos,
                                             const std::function<void(int64_t, int64_t)>& on) {
    PALU_CHECK(n_ctx >= 4, UsageError,
               "eval: --llama-cpp-windows needs --seqlen >= 4 (llama.cpp's -c), got %lld",
               static_cast<long long>(n_ctx));
    const int64_t n_avail = static_cast<int64_t>(tokens.size()) / n_ctx;
    // llama-perplexity refuses fewer than 2·n_ctx tokens.
    PALU_CHECK(static_cast<int64_t>(tokens.size()) >= 2 * n_ctx, UsageError,
               "eval: %zu tokens: --llama-cpp-windows needs at least 2·seqlen = %lld (as "
               "llama-perplexity); hint: lower --seqlen",
               tokens.size(), static_cast<long long>(2 * n_ctx));
    model::PerplexityResult res;
    res.seqlen = n_ctx;
    res.n_windows = max_windows > 0 ? std::min(max_windows, n_avail) : n_avail;
    res.n_tokens = res.n_windows * n_ctx;
    const int64_t first = n_ctx / 2, n_pred = n_ctx - first - 1, n_vocab = engine.config().n_vocab;
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0.0;
    std::vector<int32_t> win(static_cast<size_t>(n_ctx));
    for (int64_t w = 0; w < res.n_windows; ++w) {
        std::copy_n(tokens.begin() + w * n_ctx, n_ctx, win.begin());
        if (bos >= 0) win[0] = bos;
        auto cache = engine.make_cache(1, n_ctx);
        res.kv_bytes_per_token = cache->bytes_per_token();
        engine.forward(win.data(), 1, first, *cache, /*last_only=*/true);
        // [n_ctx − first, n_vocab]: logits at positions first .. n_ctx − 1.
        const Tensor logits = engine.forward(win.data() + first, 1, n_ctx - first, *cache);
        const double nll = model::mean_nll(logits.data(), n_vocab, win.data() + first + 1, n_pred);
        res.window_nll.push_back(nll);
        total += nll * static_cast<double>(n_pred);
        if (on) on(w + 1, res.n_windows);
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.nll = total / static_cast<double>(res.n_windows * n_pred);
    res.ppl = std::exp(res.nll);
    return res;
}

// The BOS llama-perplexity puts at each chunk start: the vocabulary's BOS when its tokenizer adds
// one (llama_vocab_get_add_bos; SmolLM2's does not), else none. Without a tokenizer file (token-id
// input), the config's bos_token_id.
int32_t llama_cpp_bos(const WeightSource& src) {
    std::unique_ptr<calib::Tokenizer> tok;
    try {
        tok = calib::find_tokenizer_for_model(src.path(), src.config().n_vocab);
    } catch (const IoError&) {
        return static_cast<int32_t>(src.config().bos_token_id);
    }
    return tok->adds_bos() ? tok->bos_id() : -1;
}

}  // namespace

EvalPplResult eval_ppl(const WeightSource& src, const std::vector<int32_t>& tokens,
                       const EvalOptions& e, const RunOptions& run) {
    const auto t_load = std::chrono::steady_clock::now();
    model::Transformer engine(
        src, e.streaming ? model::Residency::Streaming : model::Residency::Resident);
    engine.set_threads(run.n_threads);
    const int latent_bits = configure_latent_cache(engine, src, e.latent_bits);
    PALU_LOG_INFO("eval", "%s (%s): weights converted in %.1f s; %d threads, BLAS kernels %s",
                  src.path().c_str(), src.format_name().c_str(), seconds_since(t_load),
                  engine.n_threads(), model::blas_core_name().c_str());
    const int64_t n_avail = static_cast<int64_t>(tokens.size()) / std::max<int64_t>(e.seqlen, 1);
    const int64_t n_windows = e.max_windows > 0 ? std::min(e.max_windows, n_avail) : n_avail;
    Progress progress("eval", "window", std::max<int64_t>(n_windows, 1));
    const auto on_window = [&](int64_t done, int64_t) {
        if (run.progress) progress.update(done);
    };
    const int32_t bos = e.llama_cpp_windows ? llama_cpp_bos(src) : -1;
    auto r = e.llama_cpp_windows
                 ? llama_cpp_perplexity(engine, tokens, e.seqlen, e.max_windows, bos, on_window)
                 : model::compute_perplexity(engine, tokens, e.seqlen, e.max_windows, e.n_batch,
                                             on_window);
    EvalPplResult out;
    out.model_path = src.path();
    out.format = src.format_name();
    out.nll = r.nll;
    out.windows = e.llama_cpp_windows ? "llama.cpp" : "palu";
    out.ppl = r.ppl;
    out.n_windows = r.n_windows;
    out.n_tokens = r.n_tokens;
    out.n_tokens_source = static_cast<int64_t>(tokens.size());
    out.seqlen = r.seqlen;
    out.seconds = r.seconds;
    out.tokens_per_s = r.seconds > 0 ? static_cast<double>(r.n_tokens) / r.seconds : 0.0;
    out.kv_bytes_per_token = r.kv_bytes_per_token;
    out.latent_bits = latent_bits;
    out.n_threads = engine.n_threads();
    out.window_nll = r.window_nll;
    return out;
}

EvalPplResult run_eval_ppl(const EvalPplParams& p) {
    auto src = formats::open_model(p.model_path);
    const std::vector<int32_t> tokens = load_eval_tokens(p.eval, *src);
    EvalPplResult r = eval_ppl(*src, tokens, p.eval, p.run);
    r.model_path = p.model_path;
    return r;
}

nlohmann::json EvalPplResult::to_json() const {
    return nlohmann::json{{"model", model_path},
                          {"format", format},
                          {"nll", nll},
                          {"windows", windows},
                          {"ppl", ppl},
                          {"n_windows", n_windows},
                          {"n_tokens", n_tokens},
                          {"n_tokens_source", n_tokens_source},
                          {"seqlen", seqlen},
                          {"seconds", seconds},
                          {"tokens_per_s", tokens_per_s},
                          {"kv_bytes_per_token", kv_bytes_per_token},
                          {"latent_bits", latent_bits},
                          {"n_threads", n_threads},
                          {"window_nll", window_nll}};
}

GenerateResult run_generate(const GenerateParams& p) {
    PALU_CHECK(p.max_new >= 0, UsageError, "generate: --max-new must be >= 0, got %lld",
               static_cast<long long>(p.max_new));
    auto src = formats::open_model(p.model_path);
    auto tok = calib::find_tokenizer_for_model(p.model_path, src->config().n_vocab);
    model::Transformer engine(*src);
    engine.set_threads(p.run.n_threads);
    configure_latent_cache(engine, *src, p.latent_bits);
    GenerateResult out;
    out.tokens = tok->encode(p.prompt, /*add_bos=*/true);
    PALU_CHECK(!out.tokens.empty(), UsageError, "generate: the prompt encodes to no tokens");
    out.n_prompt = static_cast<int64_t>(out.tokens.size());
    const int64_t n_vocab = engine.config().n_vocab;
    auto cache = engine.make_cache(1, out.n_prompt + std::max<int64_t>(p.max_new, 1));
    out.kv_bytes_per_token = cache->bytes_per_token();
    const auto t0 = std::chrono::steady_clock::now();
    Tensor logits = engine.forward(out.tokens.data(), 1, out.n_prompt, *cache, /*last_only=*/true);
    const auto t1 = std::chrono::steady_clock::now();
    out.prefill_s = std::chrono::duration<double>(t1 - t0).count();
    const int32_t eos = tok->eos_id();
    for (int64_t i = 0; i < p.max_new; ++i) {
        const int32_t next = static_cast<int32_t>(
            std::max_element(logits.data(), logits.data() + n_vocab) - logits.data());
        const std::string piece = tok->decode_piece(out.tokens.back(), next);
        out.tokens.push_back(next);
        ++out.n_generated;
        if (next == eos) break;
        out.text += piece;
        if (p.on_text) p.on_text(piece);
        if (i + 1 < p.max_new) logits = engine.forward(&out.tokens.back(), 1, 1, *cache);
    }
    const double decode_s = seconds_since(t1);
    out.decode_tokens_per_s = decode_s > 0 ? static_cast<double>(out.n_generated) / decode_s : 0.0;
    return out;
}

}  // namespace palu::pipeline
