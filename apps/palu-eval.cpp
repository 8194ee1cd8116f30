// palu-eval: perplexity of a model over non-overlapping windows of a text or token file, and greedy
// generation through the KV cache. MODEL: HF directory, .safetensors, .gguf or llama2.c .bin.
#include <cstdio>
#include <fstream>

#include "cli_common.h"
#include "palu/core/error.h"
#include "palu/model/blas.h"
#include "palu/pipeline/eval.h"

namespace {

CLI::App* add_ppl(CLI::App& app, palu::pipeline::EvalPplParams& p, std::string& json_out) {
    auto* c = app.add_subcommand("ppl", "Perplexity over non-overlapping windows of N tokens");
    c->add_option("--model,-m", p.model_path, "Model path")->required();
    palu::pipeline::EvalOptions& e = p.eval;
    auto* text = c->add_option("--text", e.text_path, "Text corpus")->check(CLI::ExistingFile);
    palu::cli::add_enum_option(*c, "--format", e.text_format, palu::cli::text_formats(),
                               "Text format: auto|wikitext|jsonl|plain");
    c->add_option("--tokens", e.tokens_path, "Token ids (raw little-endian int32, .i32)")
        ->check(CLI::ExistingFile)
        ->excludes(text);
    c->add_option("--seqlen", e.seqlen, "Window length N (N-1 predictions per window)")
        ->required()
        ->check(CLI::Range(2, 1 << 20));
    c->add_option("--max-windows", e.max_windows, "Score only the first K windows (0 = all)");
    c->add_option("--batch", e.n_batch, "Windows per forward")->check(CLI::Range(1, 4096));
    c->add_flag("--streaming", e.streaming, "Convert weights layer by layer on every use");
    c->add_option("--latent-bits", e.latent_bits,
                  "Compressed checkpoints: latent KV-cache storage, overriding the checkpoint's "
                  "setting: 2|3|4|8 (quantized, per-token scales), 16 (f16), 32 (f32)")
        ->check(CLI::IsMember({2, 3, 4, 8, 16, 32}));
    c->add_flag("--llama-cpp-windows", e.llama_cpp_windows,
                "Score as llama.cpp's llama-perplexity -c SEQLEN does: chunks of SEQLEN tokens, "
                "BOS in place of each chunk's first token, only the second half scored, "
                "ppl = exp(total NLL / predictions); comparable with its final estimate");
    c->add_option("--json", json_out, "Write the result as JSON to this file");
    return c;
}

CLI::App* add_generate(CLI::App& app, palu::pipeline::GenerateParams& g) {
    auto* c = app.add_subcommand("generate", "Greedy generation through the KV cache");
    c->add_option("--model,-m", g.model_path, "Model path")->required();
    c->add_option("--prompt,-p", g.prompt, "Prompt text")->required();
    c->add_option("--max-new,-n", g.max_new, "New tokens")->check(CLI::Range(0, 1 << 20));
    c->add_option("--latent-bits", g.latent_bits,
                  "Compressed checkpoints: latent KV-cache storage (2|3|4|8|16|32), overriding "
                  "the checkpoint's setting")
        ->check(CLI::IsMember({2, 3, 4, 8, 16, 32}));
    return c;
}

int print_ppl(const palu::pipeline::EvalPplResult& r, const std::string& json_out) {
    std::printf(
        "nll %.6f\nppl %.4f\nwindows %lld\ntokens %lld\nseqlen %lld\ntokens/s %.1f\n"
        "kv_bytes/token %lld\n",
        r.nll, r.ppl, (long long)r.n_windows, (long long)r.n_tokens, (long long)r.seqlen,
        r.tokens_per_s, (long long)r.kv_bytes_per_token);
    if (r.windows != "palu") std::printf("windows_scheme %s\n", r.windows.c_str());
    if (r.latent_bits > 0) std::printf("latent_bits %d\n", r.latent_bits);
    if (!json_out.empty()) {
        std::ofstream f(json_out);
        f << r.to_json().dump(2) << "\n";
        if (!f) throw palu::IoError("eval: " + json_out + ": cannot write the JSON result");
    }
    return 0;
}

int generate(palu::pipeline::GenerateParams& g) {
    g.on_text = [](const std::string& s) { std::fputs(s.c_str(), stdout), std::fflush(stdout); };
    auto r = palu::pipeline::run_generate(g);
    std::fprintf(stdout, "\n");
    std::fprintf(stderr,
                 "I eval: generate: %lld prompt + %lld new tokens, prefill %.3f s, "
                 "decode %.1f tokens/s, kv cache %lld bytes/token\n",
                 (long long)r.n_prompt, (long long)r.n_generated, r.prefill_s,
                 r.decode_tokens_per_s, (long long)r.kv_bytes_per_token);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    palu::model::blas_reexec_for_avx512(argc, argv);
    CLI::App app{"palu-eval: perplexity and greedy generation on the CPU engine", "palu-eval"};
    app.require_subcommand(1);
    palu::cli::CommonOptions common;
    palu::pipeline::EvalPplParams ppl;
    palu::pipeline::GenerateParams gen;
    std::string json_out;
    CLI::App* c_ppl = add_ppl(app, ppl, json_out);
    CLI::App* c_gen = add_generate(app, gen);
    palu::cli::add_common(*c_ppl, common);
    palu::cli::add_common(*c_gen, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        const int n_threads = palu::cli::apply_common(common);
        ppl.run.n_threads = gen.run.n_threads = n_threads;
        if (c_ppl->parsed()) return print_ppl(palu::pipeline::run_eval_ppl(ppl), json_out);
        return generate(gen);
    });
}
