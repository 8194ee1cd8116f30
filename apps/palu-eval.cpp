// palu-eval: perplexity of a model over non-overlapping windows of a text or token file, and greedy
// generation through the KV cache. MODEL: HF directory, .safetensors, .gguf or llama2.c .bin.
#include <cstdio>
#include <fstream>

#include "cli_common.h"
#include "palu/core/error.h"
#include "palu/model/blas.h"
#include "palu/pipeline/eval.h"

namespace {
int print_ppl(const palu::pipeline::EvalPplResult& r, const std::string& json_out);
}

int main(int argc, char** argv) {
    palu::model::blas_reexec_for_avx512(argc, argv);
    CLI::App app{"palu-eval: perplexity and greedy generation on the CPU engine", "palu-eval"};
    app.require_subcommand(1);
    palu::cli::CommonOptions common;
    palu::pipeline::EvalPplParams ppl;
    palu::pipeline::GenerateParams gen;
    std::string json_out;
    auto* c_ppl = app.add_subcommand("ppl", "Perplexity over non-overlapping windows of N tokens");
    c_ppl->add_option("--model,-m", ppl.model_path, "Model path")->required();
    auto* o_text = c_ppl->add_option("--text", ppl.text_path, "Text corpus")->check(CLI::ExistingFile);
    c_ppl->add_option("--format", ppl.text_format, "Text format")
        ->check(CLI::IsMember({"auto", "wikitext", "jsonl", "plain"}));
    c_ppl->add_option("--tokens", ppl.tokens_path, "Token ids (.i32)")->check(CLI::ExistingFile)->excludes(o_text);
    c_ppl->add_option("--seqlen", ppl.seqlen, "Window length N")->required()->check(CLI::Range(2, 1 << 20));
    c_ppl->add_option("--max-windows", ppl.max_windows, "Score only the first K windows (0 = all)");
    c_ppl->add_option("--batch", ppl.n_batch, "Windows per forward")->check(CLI::Range(1, 4096));
    c_ppl->add_flag("--streaming", ppl.streaming, "Convert weights layer by layer on every use");
    c_ppl->add_option("--json", json_out, "Write the result as JSON to this file");
    palu::cli::add_common(*c_ppl, common);
    auto* c_gen = app.add_subcommand("generate", "Greedy generation through the KV cache");
    c_gen->add_option("--model,-m", gen.model_path, "Model path")->required();
    c_gen->add_option("--prompt,-p", gen.prompt, "Prompt text")->required();
    c_gen->add_option("--max-new,-n", gen.max_new, "New tokens")->check(CLI::Range(0, 1 << 20));
    palu::cli::add_common(*c_gen, common);
    return palu::cli::run_main(app, argc, argv, [&] {
        const int n_threads = palu::cli::apply_common(common);
        if (c_ppl->parsed()) return (ppl.n_threads = n_threads), print_ppl(palu::pipeline::run_eval_ppl(ppl), json_out);
        gen.n_threads = n_threads;
        gen.on_text = [](const std::string& s) { std::fputs(s.c_str(), stdout), std::fflush(stdout); };
        auto r = palu::pipeline::run_generate(gen);
        std::fprintf(stdout, "\n");
        std::fprintf(stderr, "I eval: generate: %lld prompt + %lld new tokens, prefill %.3f s, decode %.1f tokens/s\n",
                     (long long)r.n_prompt, (long long)r.n_generated, r.prefill_s, r.decode_tokens_per_s);
        return 0;
    });
}

namespace {
int print_ppl(const palu::pipeline::EvalPplResult& r, const std::string& json_out) {
    std::printf("nll %.6f\nppl %.4f\nwindows %lld\ntokens %lld\nseqlen %lld\ntokens/s %.1f\nkv_bytes/token %lld\n",
                r.nll, r.ppl, (long long)r.n_windows, (long long)r.n_tokens, (long long)r.seqlen,
                r.tokens_per_s, (long long)r.kv_bytes_per_token);
    if (!json_out.empty()) {
        std::ofstream f(json_out);
        f << palu::pipeline::to_json(r).dump(2) << "\n";
        if (!f) throw palu::IoError("eval: " + json_out + ": cannot write the JSON result");
    }
    return 0;
}
}  // namespace
