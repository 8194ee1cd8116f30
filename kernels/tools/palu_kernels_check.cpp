// palu-kernels-check: validates the fused latent decode attention (issue #5) on the current GPU
// against the double-precision CPU reference, over a grid of shapes (MHA/GQA, d_head 64/128,
// group sizes, ranks, f16/bf16, 16/4/3/2-bit latents, ragged lengths, forced token splits), with
// fresh random inputs per run (the seed is printed; --seed reproduces a run).
// Pass criterion per case: relative Frobenius error of both outputs (o_lat f32, out in dtype)
// <= 1e-3 for f16 and 1e-2 for bf16, and every output element finite (outputs are NaN-poisoned).
// Results table on stdout, one line per case; exit code 0 when all pass, 1 otherwise.
//
// Engine mode (--checkpoint DIR or --problems FILE): the kernel against the CPU engine's own latent
// attention on a compressed checkpoint (engine_check.h): real factors, the engine's latent cache
// (f16 or 4/3/2-bit codes, byte for byte), real tokens (--text / --token-ids) or random ids. The
// engine half runs on the CPU and can be saved (--save-problems FILE, no GPU needed) and replayed
// on a GPU machine without the checkpoint (--problems FILE). Pass: kernel vs engine relative
// Frobenius error <= 1e-3 (f16) / 1e-2 (bf16) per layer; --cpu-only reports the reference vs the
// engine only.
//
// Low-precision study (--lowp-study [--problems FILE], no GPU): what an FP8 (e4m3) or INT8 key
// reconstruction would cost in accuracy, by CPU emulation (low_precision_study.h); a table, exit 0.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine_check.h"
#include "latent_attention_reference.h"
#include "low_precision_study.h"
#include "palu/calib/text.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/model_loader.h"
#include "palu/model/transformer.h"

using namespace palu::cuda;
using namespace palu::cuda::testing;

namespace {

struct Case {
    ProblemShape shape;
    int32_t n_splits;
};

std::vector<Case> make_grid(bool quick) {
    std::vector<Case> cases;
    struct Geo {
        int32_t n_heads, n_kv, s, d, r_k, r_v;
    };
    const std::vector<Geo> geos = {
        {8, 8, 1, 128, 64, 64},     // MHA, M-LRD (Llama-2 kept 0.5 per head)
        {8, 8, 4, 128, 256, 256},   // MHA, G-LRD s=4 (Llama-2 kept 0.5)
        {16, 4, 4, 128, 160, 160},  // GQA n_rep 4, s=4 (Llama-3 kept 0.3)
        {16, 8, 1, 128, 32, 64},    // GQA n_rep 2, M-LRD, r_k != r_v
        {8, 4, 2, 64, 96, 64},      // d_head 64, s=2
        {12, 2, 2, 64, 128, 96},    // GQA n_rep 6, d_head 64
        {32, 8, 1, 128, 64, 64},    // GQA n_rep 4, M-LRD (Llama-3 kept 0.5 per head)
        {16, 2, 1, 128, 128, 128},  // GQA n_rep 8, rank 128 (warp kernel's largest accumulators)
    };
    const int bit_pairs[][2] = {{16, 16}, {4, 4}, {3, 3}, {2, 2}, {16, 4}};
    int idx = 0;
    for (const Geo& g : geos) {
        for (LatentDType dt : {LatentDType::F16, LatentDType::BF16}) {
            for (const auto& bp : bit_pairs) {
                ++idx;
                if (quick && idx % 3 != 0) continue;
                ProblemShape s;
                s.n_heads = g.n_heads;
                s.n_kv_heads = g.n_kv;
                s.group_size = g.s;
                s.d_head = g.d;
                s.r_k = g.r_k;
                s.r_v = g.r_v;
                s.bits_k = bp[0];
                s.bits_v = bp[1];
                s.dtype = dt;
                s.batch = 3;
                s.capacity = 400;
                s.seq_lens = {400, 1, 131};  // full, a single token, a ragged tail
                s.llama3_scaling = (idx % 2) == 0;
                s.rope_theta = s.llama3_scaling ? 500000.0 : 10000.0;
                cases.push_back({s, idx % 4 == 0 ? 3 : 0});
            }
        }
    }
    // Long context, few splits vs many: one sequence, positions near 100K (RoPE range reduction);
    // G-LRD s = 4 (block kernel) and M-LRD s = 1 (block and warp kernels, f16 and 4-bit).
    for (int geo = 0; geo < 3; ++geo) {
        for (LatentDType dt : {LatentDType::F16, LatentDType::BF16}) {
            ProblemShape s;
            s.n_heads = 8;
            s.n_kv_heads = 8;
            s.group_size = geo == 0 ? 4 : 1;
            s.r_k = geo == 0 ? 256 : 64;
            s.r_v = geo == 0 ? 256 : 64;
            s.bits_k = s.bits_v = geo == 2 ? 4 : 16;
            s.dtype = dt;
            s.capacity = quick ? 2048 : 8192;
            s.random_positions = true;
            s.rope_theta = 500000.0;
            s.llama3_scaling = true;
            cases.push_back({s, 0});
            cases.push_back({s, 1});
        }
    }
    return cases;
}

struct EngineArgs {
    std::string checkpoint, problems, save_problems, text, tokenizer, token_ids, layer = "all";
    int64_t n_tokens = 512, n_batch = 1;
    int latent_bits = 16;
    std::string dtype = "f16";
    bool cpu_only = false;
    bool prefill = false;
};

// Engine mode; returns the exit code.
int run_engine_mode(const EngineArgs& a, uint64_t seed) {
    std::vector<EngineProblem> problems;
    std::map<std::string, std::string> meta;
    if (!a.problems.empty()) {
        problems = load_engine_problems(a.problems, &meta);
    } else {
        const auto src = palu::formats::open_model(a.checkpoint);
        palu::model::Transformer engine(*src);
        EngineCheckOptions o;
        o.latent_bits = a.latent_bits;
        PALU_CHECK(a.dtype == "f16" || a.dtype == "bf16", palu::UsageError,
                   "kernels: check: --dtype must be f16 or bf16, got '%s'", a.dtype.c_str());
        o.dtype = a.dtype == "f16" ? LatentDType::F16 : LatentDType::BF16;
        o.n_batch = a.n_batch;
        o.n_tokens = a.n_tokens;
        o.seed = seed;
        o.prefill = a.prefill;
        const int64_t need = a.n_batch * a.n_tokens;
        std::string token_source = "random ids";
        if (!a.token_ids.empty() || !a.text.empty()) {
            std::vector<int32_t> ids;
            if (!a.token_ids.empty()) {
                ids = palu::calib::load_token_file(a.token_ids);
                token_source = a.token_ids;
            } else {
                const auto tok = a.tokenizer.empty() ? palu::calib::find_tokenizer_for_model(
                                                           a.checkpoint, engine.config().n_vocab)
                                                     : palu::calib::load_tokenizer(a.tokenizer);
                ids = tok->encode(palu::calib::load_text(a.text), true);
                token_source = a.text;
            }
            PALU_CHECK(static_cast<int64_t>(ids.size()) >= need, palu::UsageError,
                       "kernels: check: %s gives %zu tokens, need %lld (batch x tokens); hint: "
                       "lower --tokens",
                       token_source.c_str(), ids.size(), static_cast<long long>(need));
            o.tokens.assign(ids.begin(), ids.begin() + need);
        }
        if (a.layer != "all") {  // "L" or "L1,L2,..."
            size_t at = 0;
            while (at <= a.layer.size()) {
                const size_t comma = std::min(a.layer.find(',', at), a.layer.size());
                const std::string item = a.layer.substr(at, comma - at);
                char* end = nullptr;
                const long long l = std::strtoll(item.c_str(), &end, 10);
                PALU_CHECK(!item.empty() && end && *end == '\0', palu::UsageError,
                           "kernels: check: --layer: expected 'all' or comma-separated layer "
                           "indices, got '%s'",
                           a.layer.c_str());
                o.layers.push_back(l);
                at = comma + 1;
            }
        }
        std::fprintf(stderr,
                     "kernels: check: engine on %s, %lld x %lld tokens (%s), latent bits %d\n",
                     a.checkpoint.c_str(), static_cast<long long>(a.n_batch),
                     static_cast<long long>(a.n_tokens), token_source.c_str(), a.latent_bits);
        problems = engine_problems(engine, o);
        meta["checkpoint"] = a.checkpoint;
        meta["tokens"] = token_source;
        if (!a.save_problems.empty()) {
            save_engine_problems(a.save_problems, problems, meta);
            std::fprintf(stderr, "kernels: check: saved %zu problems to %s\n", problems.size(),
                         a.save_problems.c_str());
        }
    }
    const bool device = !a.cpu_only;
    if (device) {
        std::string why;
        if (!cuda_device_available(&why)) {
            std::fprintf(stderr, "kernels: check: no CUDA device: %s; hint: --cpu-only\n",
                         why.c_str());
            return 7;
        }
    }
    std::printf("checkpoint %s, tokens %s\n\n",
                meta.count("checkpoint") ? meta["checkpoint"].c_str() : "?",
                meta.count("tokens") ? meta["tokens"].c_str() : "?");
    std::printf(
        "Pass: kernel vs reference <= tol (the kernel's own error, same rounded inputs), and "
        "kernel vs "
        "engine <= tol + (reference vs engine) (the cost of rounding q to the kernel dtype, "
        "measured).\n\n");
    std::printf(
        "| layer | ranks | kernel shape | kernels | tol | decode: kernel-ref | ref-engine | "
        "kernel-engine | "
        "prefill: kernel-ref | ref-engine | kernel-engine | result |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    int n_fail = 0;
    double worst_own = 0.0, worst_engine = 0.0;
    auto e = [](double v) { return v < 0 ? std::string("-") : palu::strfmt("%.2e", v); };
    for (EngineProblem& p : problems) {
        evaluate(p, device);
        const LayerCheck& c = p.check;
        const bool ok = passes(c, device);
        n_fail += ok ? 0 : 1;
        worst_own = std::max({worst_own, c.err_kernel_ref, c.err_prefill_ref});
        worst_engine = std::max({worst_engine, c.err_kernel_engine, c.err_prefill_engine});
        std::printf("| %lld | %s | %s | %s | %.0e | %s | %s | %s | %s | %s | %s | %s |\n",
                    static_cast<long long>(c.layer), c.ranks.c_str(), c.shape.describe().c_str(),
                    c.kernels.empty() ? "-" : c.kernels.c_str(), engine_tolerance(c.shape.dtype),
                    e(c.err_kernel_ref).c_str(), e(c.err_ref_engine).c_str(),
                    e(c.err_kernel_engine).c_str(), e(c.err_prefill_ref).c_str(),
                    e(c.err_prefill_ref_engine).c_str(), e(c.err_prefill_engine).c_str(),
                    device ? (ok ? "ok" : "FAIL") : "cpu-only");
        std::fflush(stdout);
    }
    std::printf("\n%zu layers, %d failed, worst kernel-ref %.2e, worst kernel-engine %.2e\n",
                problems.size(), n_fail, worst_own, worst_engine);
    return n_fail == 0 ? 0 : 1;
}

// Low-precision study (--lowp-study, CPU only): the accuracy cost of an FP8 (e4m3) / INT8 key
// reconstruction (low_precision_study.h), as the relative Frobenius error of `out` against the
// exact double reference, on the f16 synthetic grid or on saved engine problems (--problems).
// Columns: both operands rounded (what an FP8/INT8 MMA sees), and the breakdown for e4m3 (only B_k
// rounded, only h_k rounded) and int8 (only B_k rounded), and both operands after a per-channel
// balancing (LowpScaling::ChannelBalanced). Returns the exit code (0).
struct LowpErrors {
    double e4m3 = 0, int8 = 0, e4m3_up = 0, e4m3_lat = 0, int8_up = 0;  // vs the exact reference
    double e4m3_bal = 0, int8_bal = 0;  // ChannelBalanced, vs the reference
    double e4m3_engine = -1, int8_engine = -1, ref_engine = -1;  // vs the engine (−1: none)
};

LowpErrors lowp_errors(const HostProblem& pb, const std::vector<double>* engine_out) {
    const AttentionOutputs ref = reference_latent_attention(pb);
    auto err = [&](LowpMode m, LowpOperands o) {
        return reference_latent_attention_lowp(pb, m, o).out;
    };
    LowpErrors e;
    const std::vector<double> e4m3 = err(LowpMode::E4M3, LowpOperands::Both);
    const std::vector<double> int8 = err(LowpMode::INT8, LowpOperands::Both);
    e.e4m3 = rel_frobenius_error(e4m3, ref.out);
    e.int8 = rel_frobenius_error(int8, ref.out);
    e.e4m3_up = rel_frobenius_error(err(LowpMode::E4M3, LowpOperands::UpOnly), ref.out);
    e.e4m3_lat = rel_frobenius_error(err(LowpMode::E4M3, LowpOperands::LatentsOnly), ref.out);
    e.int8_up = rel_frobenius_error(err(LowpMode::INT8, LowpOperands::UpOnly), ref.out);
    auto bal = [&](LowpMode m) {
        return rel_frobenius_error(
            reference_latent_attention_lowp(pb, m, LowpOperands::Both, LowpScaling::ChannelBalanced)
                .out,
            ref.out);
    };
    e.e4m3_bal = bal(LowpMode::E4M3);
    e.int8_bal = bal(LowpMode::INT8);
    if (engine_out) {
        e.ref_engine = rel_frobenius_error(ref.out, *engine_out);
        e.e4m3_engine = rel_frobenius_error(e4m3, *engine_out);
        e.int8_engine = rel_frobenius_error(int8, *engine_out);
    }
    return e;
}

double median_of(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int run_lowp_study(const std::string& problems_path, bool quick, uint64_t seed) {
    std::vector<std::string> labels, shapes;
    std::vector<LowpErrors> rows;
    std::vector<double> tols;
    const bool engine = !problems_path.empty();
    std::map<std::string, std::string> meta;
    if (engine) {
        std::vector<EngineProblem> problems = load_engine_problems(problems_path, &meta);
        std::fprintf(stderr, "kernels: lowp study: %zu engine problems from %s\n", problems.size(),
                     problems_path.c_str());
        for (const EngineProblem& p : problems) {
            labels.push_back(palu::strfmt("%lld (%s)", static_cast<long long>(p.check.layer),
                                          p.check.ranks.c_str()));
            shapes.push_back(p.problem.shape.describe());
            tols.push_back(tolerance_for(p.problem.shape.dtype));
            rows.push_back(lowp_errors(p.problem, &p.engine_out));
        }
    } else {
        std::fprintf(
            stderr,
            "kernels: lowp study: f16 synthetic grid, base seed %llu (case i uses seed + i)\n",
            static_cast<unsigned long long>(seed));
        const auto cases = make_grid(quick);
        std::string last;
        for (size_t i = 0; i < cases.size(); ++i) {
            const ProblemShape& s = cases[i].shape;
            // f16 only; the grid's forced-split twins are the same problem on the CPU.
            if (s.dtype != LatentDType::F16 || s.describe() == last) continue;
            last = s.describe();
            const HostProblem pb = make_random_problem(s, seed + i);
            std::string lens;
            for (int32_t l : pb.seq_lens) lens += (lens.empty() ? "" : ",") + std::to_string(l);
            labels.push_back(palu::strfmt("%zu", i));
            shapes.push_back(s.describe() + " lens " + lens);
            tols.push_back(tolerance_for(s.dtype));
            rows.push_back(lowp_errors(pb, nullptr));
        }
    }
    if (engine)
        std::printf("lowp study: engine problems %s (checkpoint %s, tokens %s)\n\n",
                    problems_path.c_str(),
                    meta.count("checkpoint") ? meta["checkpoint"].c_str() : "?",
                    meta.count("tokens") ? meta["tokens"].c_str() : "?");
    else
        std::printf("lowp study: f16 synthetic grid, seed %llu\n\n",
                    static_cast<unsigned long long>(seed));
    std::printf(
        "Relative Frobenius error of `out` against the exact double reference (ref) when the key "
        "reconstruction B_k·h_k runs on e4m3 / int8 operands (per-row amax scales, exact "
        "accumulation); "
        "'balanced': latent channels divided by sqrt(channel amax), folded into B_k, before the "
        "per-row "
        "scales; tol = the f16/bf16 kernel tolerance.%s\n\n",
        engine ? " ref-engine = the exact reference vs the CPU engine (cost of the f16 inputs); "
                 "*-engine = the "
                 "emulation vs the engine."
               : "");
    std::printf(
        "| %s | shape | tol |%s e4m3 | int8 | e4m3 B_k only | e4m3 h_k only | int8 B_k only | e4m3 "
        "balanced | "
        "int8 balanced |%s\n",
        engine ? "layer (ranks)" : "#", engine ? " ref-engine |" : "",
        engine ? " e4m3-engine | int8-engine |" : "");
    std::printf("|---|---|---|%s---|---|---|---|---|---|---|%s\n", engine ? "---|" : "",
                engine ? "---|---|" : "");
    std::vector<double> v_e4m3, v_int8, v_e4m3_up, v_int8_up, v_e4m3_bal, v_int8_bal, v_e4m3_eng,
        v_int8_eng, v_ref_eng;
    for (size_t i = 0; i < rows.size(); ++i) {
        const LowpErrors& e = rows[i];
        std::printf("| %s | %s | %.0e |", labels[i].c_str(), shapes[i].c_str(), tols[i]);
        if (engine) std::printf(" %.2e |", e.ref_engine);
        std::printf(" %.2e | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e |", e.e4m3, e.int8, e.e4m3_up,
                    e.e4m3_lat, e.int8_up, e.e4m3_bal, e.int8_bal);
        if (engine) std::printf(" %.2e | %.2e |", e.e4m3_engine, e.int8_engine);
        std::printf("\n");
        v_e4m3.push_back(e.e4m3);
        v_int8.push_back(e.int8);
        v_e4m3_up.push_back(e.e4m3_up);
        v_int8_up.push_back(e.int8_up);
        v_e4m3_bal.push_back(e.e4m3_bal);
        v_int8_bal.push_back(e.int8_bal);
        v_e4m3_eng.push_back(e.e4m3_engine);
        v_int8_eng.push_back(e.int8_engine);
        v_ref_eng.push_back(e.ref_engine);
    }
    auto mx = [](const std::vector<double>& v) {
        return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
    };
    std::printf(
        "\n%zu cases. vs ref: e4m3 max %.2e median %.2e; int8 max %.2e median %.2e; B_k only: e4m3 "
        "max %.2e "
        "median %.2e, int8 max %.2e median %.2e; balanced: e4m3 max %.2e median %.2e, int8 max "
        "%.2e median %.2e",
        rows.size(), mx(v_e4m3), median_of(v_e4m3), mx(v_int8), median_of(v_int8), mx(v_e4m3_up),
        median_of(v_e4m3_up), mx(v_int8_up), median_of(v_int8_up), mx(v_e4m3_bal),
        median_of(v_e4m3_bal), mx(v_int8_bal), median_of(v_int8_bal));
    if (engine)
        std::printf(
            "; vs engine: ref max %.2e median %.2e, e4m3 max %.2e median %.2e, int8 max %.2e "
            "median %.2e",
            mx(v_ref_eng), median_of(v_ref_eng), mx(v_e4m3_eng), median_of(v_e4m3_eng),
            mx(v_int8_eng), median_of(v_int8_eng));
    std::printf("\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"palu-kernels-check: fused latent attention vs the CPU reference"};
    uint64_t seed = 0;
    bool quick = false;
    app.add_option("--seed", seed, "base seed (0: fresh from std::random_device)");
    app.add_flag("--quick", quick, "a third of the grid, shorter long-context case");
    EngineArgs ea;
    auto* o_ckpt = app.add_option("--checkpoint", ea.checkpoint,
                                  "compressed palu checkpoint: check against the CPU engine");
    auto* o_prob = app.add_option("--problems", ea.problems,
                                  "replay problems saved by --save-problems (no checkpoint needed)")
                       ->excludes(o_ckpt);
    app.add_option("--save-problems", ea.save_problems,
                   "write the engine problems to this .safetensors file")
        ->needs(o_ckpt);
    app.add_option("--layer", ea.layer, "layer index, comma-separated indices, or 'all'")
        ->needs(o_ckpt);
    app.add_option("--tokens", ea.n_tokens, "tokens per sequence (the query is the last)")
        ->needs(o_ckpt);
    app.add_option("--batch", ea.n_batch, "sequences")->needs(o_ckpt);
    auto* o_text =
        app.add_option("--text", ea.text, "text corpus to tokenize (default: random ids)")
            ->needs(o_ckpt);
    app.add_option("--tokenizer", ea.tokenizer, "tokenizer file (default: the checkpoint's)")
        ->needs(o_text);
    app.add_option("--token-ids", ea.token_ids, "token ids (.i32) instead of --text")
        ->needs(o_ckpt)
        ->excludes(o_text);
    app.add_option("--latent-bits", ea.latent_bits, "engine latent cache: 16 (f16), 4, 3 or 2")
        ->needs(o_ckpt);
    app.add_option("--dtype", ea.dtype, "kernel dtype: f16 or bf16 (bf16 needs quantized latents)")
        ->needs(o_ckpt);
    app.add_flag("--cpu-only", ea.cpu_only, "engine mode without a GPU: reference vs engine only");
    app.add_flag("--prefill", ea.prefill, "also check the prefill path at every position")
        ->needs(o_ckpt);
    bool lowp_study = false;
    app.add_flag("--lowp-study", lowp_study,
                 "CPU only: accuracy cost of an e4m3 / int8 key reconstruction (emulated) on the "
                 "f16 grid, or on "
                 "--problems (grid seed: --seed, 0 means 1 here so that runs reproduce)")
        ->excludes(o_ckpt);
    CLI11_PARSE(app, argc, argv);
    try {
        if (lowp_study) return run_lowp_study(ea.problems, quick, seed == 0 ? 1 : seed);
        if (!ea.checkpoint.empty() || !ea.problems.empty()) {
            if (seed == 0) seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
            return run_engine_mode(ea, seed);
        }
        (void)o_prob;
        std::string why;
        if (!cuda_device_available(&why)) {
            std::fprintf(stderr, "kernels: check: no CUDA device: %s\n", why.c_str());
            return 7;
        }
        if (seed == 0) seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
        std::fprintf(stderr, "kernels: check: base seed %llu (case i uses seed + i)\n",
                     (unsigned long long)seed);
        const auto cases = make_grid(quick);
        int n_fail = 0;
        std::printf(
            "| # | shape | lens | splits | kernel | err o_lat | err out | tol | result |\n"
            "|---|---|---|---|---|---|---|---|---|\n");
        int n_runs = 0;
        for (size_t i = 0; i < cases.size(); ++i) {
            const Case& c = cases[i];
            const HostProblem pb = make_random_problem(c.shape, seed + i);
            const AttentionOutputs ref = reference_latent_attention(pb);
            for (const LatentKernel k : kernels_to_check(pb)) {  // block, and warp where it applies
                const AttentionOutputs got = run_latent_attention_device(pb, c.n_splits, k);
                const double e_lat = rel_frobenius_error(got.out_latent, ref.out_latent);
                const double e_out = rel_frobenius_error(got.out, ref.out);
                const double tol = tolerance_for(c.shape.dtype);
                const bool ok = e_lat <= tol && e_out <= tol;
                n_fail += ok ? 0 : 1;
                ++n_runs;
                std::string lens;
                for (int32_t l : pb.seq_lens) lens += (lens.empty() ? "" : ",") + std::to_string(l);
                std::printf("| %zu | %s | %s | %s | %s | %.2e | %.2e | %.0e | %s |\n", i,
                            c.shape.describe().c_str(), lens.c_str(),
                            c.n_splits ? std::to_string(c.n_splits).c_str() : "auto",
                            kernel_name(k), e_lat, e_out, tol, ok ? "ok" : "FAIL");
                std::fflush(stdout);
            }
        }
        std::printf("\n%zu cases, %d kernel runs, %d failed (seed %llu)\n", cases.size(), n_runs,
                    n_fail, (unsigned long long)seed);
        return n_fail == 0 ? 0 : 1;
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
}
