// palu pipeline: eval stage driver (perplexity, greedy generation).
#include "palu/pipeline/eval.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "palu/calib/text.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/log.h"
#include "palu/core/progress.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/hf_model.h"
#include "palu/model/blas.h"
#include "palu/model/latent_cache.h"
#include "palu/model/weights.h"
#include "palu/model/perplexity.h"
#include "palu/model/transformer.h"

namespace palu::pipeline {

namespace {

std::vector<int32_t> read_token_file(const std::string& path) {
    return calib::load_token_file(path);
}

}  // namespace

std::vector<int32_t> load_eval_tokens(const EvalPplParams& p, const WeightSource& src) {
    PALU_CHECK(p.text_path.empty() != p.tokens_path.empty(), UsageError,
               "eval: give exactly one of --text FILE or --tokens FILE.i32");
    if (!p.tokens_path.empty()) return read_token_file(p.tokens_path);
    auto tok = calib::find_tokenizer_for_model(
        p.model_path, src.config().n_vocab);
    const std::string text = calib::load_text(p.text_path, calib::parse_text_format(p.text_format));
    // The literature's convention: the whole corpus tokenized once, BOS only at its start.
    auto ids = tok->encode(text, /*add_bos=*/true);
    PALU_LOG_INFO("eval", "%s: %zu bytes -> %zu tokens (%s tokenizer)", p.text_path.c_str(),
                  text.size(), ids.size(), tok->kind().c_str());
    return ids;
}

int configure_latent_cache(model::Transformer& engine, const WeightSource& src, int latent_bits) {
    if (!model::has_low_rank_kv(src)) {
        PALU_CHECK(latent_bits == 0, UsageError,
                   "eval: --latent-bits applies to compressed palu checkpoints; %s is dense",
                   src.path().c_str());
        return 0;
    }
    model::LatentCacheOptions opts;
    opts.bits = 16;
    if (const auto* hf = dynamic_cast<const formats::HfModel*>(&src)) {
        const nlohmann::json& raw = hf->raw_config();
        const auto it = raw.find("palu");
        if (it != raw.end() && it->is_object() && it->contains("latent_quant")) {
            const nlohmann::json& q = (*it)["latent_quant"];
            try {
                opts.bits = q.value("bits", 16);
                opts.quant.group_size = q.value("group_size", int64_t{0});
                opts.quant.symmetric = q.value("symmetric", false);
                opts.quant.clip_ratio = q.value("clip_ratio", 1.0);
                opts.quant.include_zero = q.value("include_zero", false);
            } catch (const nlohmann::json::exception& e) {
                PALU_THROW(FormatError, "eval: %s: config.json palu.latent_quant: %s",
                           src.path().c_str(), e.what());
            }
        }
    }
    if (latent_bits != 0) opts.bits = latent_bits;
    PALU_CHECK(opts.bits == 2 || opts.bits == 3 || opts.bits == 4 || opts.bits == 8 ||
                   opts.bits == 16 || opts.bits == 32,
               UsageError, "eval: latent bits must be 2, 3, 4, 8, 16 or 32, got %d", opts.bits);
    engine.set_cache_factory(model::latent_cache_factory(engine.weights(), opts));
    return opts.bits;
}

EvalPplResult run_eval_ppl(const EvalPplParams& p) {
    auto src = formats::open_model(p.model_path);
    std::vector<int32_t> loaded;
    if (!p.tokens) loaded = load_eval_tokens(p, *src);
    const std::vector<int32_t>& tokens = p.tokens ? *p.tokens : loaded;
    const auto t_load = std::chrono::steady_clock::now();
    model::Transformer engine(
        *src, p.streaming ? model::Residency::Streaming : model::Residency::Resident);
    engine.set_threads(p.n_threads);
    const int latent_bits = configure_latent_cache(engine, *src, p.latent_bits);
    PALU_LOG_INFO("eval", "%s (%s): weights converted in %.1f s; %d threads, BLAS kernels %s",
                  p.model_path.c_str(), src->format_name().c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count(),
                  engine.n_threads(), model::blas_core_name().c_str());
    const int64_t n_avail = static_cast<int64_t>(tokens.size()) / std::max<int64_t>(p.seqlen, 1);
    const int64_t n_windows = p.max_windows > 0 ? std::min(p.max_windows, n_avail) : n_avail;
    Progress progress("eval", "window", std::max<int64_t>(n_windows, 1));
    auto r = model::compute_perplexity(engine, tokens, p.seqlen, p.max_windows, p.n_batch,
                                       [&](int64_t done, int64_t) {
            if (p.progress) progress.update(done);
        });
    EvalPplResult out;
    out.model_path = p.model_path;
    out.format = src->format_name();
    out.nll = r.nll;
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

nlohmann::json to_json(const EvalPplResult& r) {
    return nlohmann::json{{"model", r.model_path},
                          {"format", r.format},
                          {"nll", r.nll},
                          {"ppl", r.ppl},
                          {"n_windows", r.n_windows},
                          {"n_tokens", r.n_tokens},
                          {"n_tokens_source", r.n_tokens_source},
                          {"seqlen", r.seqlen},
                          {"seconds", r.seconds},
                          {"tokens_per_s", r.tokens_per_s},
                          {"kv_bytes_per_token", r.kv_bytes_per_token},
                          {"latent_bits", r.latent_bits},
                          {"n_threads", r.n_threads},
                          {"window_nll", r.window_nll}};
}

GenerateResult run_generate(const GenerateParams& p) {
    PALU_CHECK(p.max_new >= 0, UsageError, "generate: --max-new must be >= 0, got %lld",
               static_cast<long long>(p.max_new));
    auto src = formats::open_model(p.model_path);
    auto tok = calib::find_tokenizer_for_model(p.model_path, src->config().n_vocab);
    model::Transformer engine(*src);
    engine.set_threads(p.n_threads);
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
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    out.decode_tokens_per_s = dt > 0 ? static_cast<double>(out.n_generated) / dt : 0.0;
    return out;
}

}  // namespace palu::pipeline
