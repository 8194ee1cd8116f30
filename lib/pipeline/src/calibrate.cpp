// palu pipeline: calibrate and rank-search stage drivers (see calibrate.h).
#include "palu/pipeline/calibrate.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "palu/calib/collect.h"
#include "palu/calib/sampling.h"
#include "palu/calib/text.h"
#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/stats_store.h"
#include "palu/model/transformer.h"

namespace palu::pipeline {

namespace {

std::string layer_name(const char* prefix, int64_t l) {
    return strfmt("%s/layer_%lld", prefix, static_cast<long long>(l));
}

model::LabelShift parse_shift(const std::string& s) {
    if (s == "single") return model::LabelShift::Single;
    if (s == "double") return model::LabelShift::Double;
    PALU_THROW(UsageError, "calibrate: --fisher-shift must be single or double, got '%s'", s.c_str());
}

calib::SamplerKind parse_sampler_or_throw(const std::string& s) {
    auto k = calib::parse_sampler(s);
    PALU_CHECK(k.has_value(), UsageError,
               "calibrate: --sampler must be random, contiguous or offsets, got '%s'", s.c_str());
    return *k;
}

// Everything besides the model and data files that determines the statistics.
nlohmann::json settings_json(const CalibrateParams& p, calib::SamplerKind kind, int32_t bos_id) {
    nlohmann::json j{{"format", "palu.calibrate"},
                     {"source", p.tokens_path.empty() ? "text" : "tokens"},
                     {"sampler", calib::sampler_name(kind)},
                     {"n_samples", p.n_samples},
                     {"seqlen", p.seqlen},
                     {"bos_id", kind == calib::SamplerKind::Contiguous ? -1 : bos_id},
                     {"gram", true},
                     {"fisher", p.fisher}};
    if (!p.text_path.empty()) j["text_format"] = p.text_format;
    if (kind == calib::SamplerKind::Random) j["seed"] = p.seed;
    if (kind == calib::SamplerKind::Offsets)
        j["offsets_sha256"] = formats::fingerprint_file(p.offsets_path);
    if (p.fisher) j["fisher_shift"] = p.fisher_shift;
    return j;
}

std::vector<int32_t> load_calib_tokens(const CalibrateParams& p, const WeightSource& src) {
    if (!p.tokens_path.empty()) {
        auto ids = calib::load_token_file(p.tokens_path);
        for (const int32_t id : ids)
            PALU_CHECK(id >= 0 && id < src.config().n_vocab, UsageError,
                       "calibrate: %s: token id %d outside the model's vocabulary [0, %lld)",
                       p.tokens_path.c_str(), id, static_cast<long long>(src.config().n_vocab));
        return ids;
    }
    auto tok = calib::find_tokenizer_for_model(p.model_path, src.config().n_vocab);
    const std::string text = calib::load_text(p.text_path, calib::parse_text_format(p.text_format));
    auto ids = tok->encode(text, /*add_bos=*/true);
    PALU_LOG_INFO("calibrate", "%s: %zu bytes -> %zu tokens (%s tokenizer)", p.text_path.c_str(),
                  text.size(), ids.size(), tok->kind().c_str());
    return ids;
}

// True when `path` holds stats for exactly these inputs; throws UsageError when it holds others.
bool existing_matches(const CalibrateParams& p, const formats::StatsFileInfo& want) {
    if (p.overwrite || !std::filesystem::exists(p.out_path)) return false;
    formats::StatsStore store = [&] {
        try {
            return formats::StatsStore::open(p.out_path, {want.model_fingerprint, want.data_fingerprint});
        } catch (const UsageError& e) {
            throw UsageError(std::string(e.what()) +
                             "; hint: choose another --out or pass --overwrite to replace it");
        }
    }();
    const auto have = nlohmann::json::parse(store.info().settings_json, nullptr, false);
    PALU_CHECK(have == nlohmann::json::parse(want.settings_json), UsageError,
               "calibrate: %s: was made with other settings (%s), this run asks for %s; hint: "
               "choose another --out or pass --overwrite to replace it",
               p.out_path.c_str(), store.info().settings_json.c_str(), want.settings_json.c_str());
    return true;
}

}  // namespace

CalibrateResult run_calibrate(const CalibrateParams& p) {
    const auto t0 = std::chrono::steady_clock::now();
    PALU_CHECK(!p.out_path.empty(), UsageError, "calibrate: --out is required");
    PALU_CHECK(p.text_path.empty() != p.tokens_path.empty(), UsageError,
               "calibrate: give exactly one of --text FILE or --tokens FILE.i32");
    const calib::SamplerKind kind = parse_sampler_or_throw(p.sampler);
    PALU_CHECK((kind == calib::SamplerKind::Offsets) == !p.offsets_path.empty(), UsageError,
               "calibrate: --offsets FILE goes with --sampler offsets (and only with it)");
    const model::LabelShift shift = parse_shift(p.fisher_shift);
    PALU_CHECK(p.n_samples > 0 && p.seqlen >= 2, UsageError,
               "calibrate: need --samples > 0 and --seqlen >= 2, got %lld and %lld",
               static_cast<long long>(p.n_samples), static_cast<long long>(p.seqlen));

    auto src = formats::open_model(p.model_path);
    const int32_t bos_id = static_cast<int32_t>(src->config().bos_token_id);
    formats::StatsFileInfo info;
    info.model_fingerprint = formats::fingerprint_model(*src);
    info.data_fingerprint = formats::fingerprint_file(p.tokens_path.empty() ? p.text_path : p.tokens_path);
    info.seed = kind == calib::SamplerKind::Random ? static_cast<int64_t>(p.seed) : 0;
    info.settings_json = settings_json(p, kind, bos_id).dump();

    CalibrateResult r;
    r.out_path = p.out_path;
    r.model_fingerprint = info.model_fingerprint;
    r.data_fingerprint = info.data_fingerprint;
    if (existing_matches(p, info)) {
        const auto store = formats::StatsStore::open(p.out_path);
        r.reused = true;
        r.n_samples = p.n_samples;
        r.n_tokens = store.info().n_tokens;
        PALU_LOG_INFO("calibrate", "%s: same model, data and settings: reusing it", p.out_path.c_str());
        return r;
    }

    const std::vector<int32_t> stream = load_calib_tokens(p, *src);
    calib::SamplingParams sp;
    sp.kind = kind;
    sp.n_samples = p.n_samples;
    sp.seqlen = p.seqlen;
    sp.seed = p.seed;
    sp.bos_id = bos_id;
    if (kind == calib::SamplerKind::Offsets) sp.offsets = calib::read_offsets_file(p.offsets_path);
    const calib::CalibWindows windows = calib::sample_windows(stream, sp);
    PALU_LOG_INFO("calibrate", "%lld %s windows of %lld tokens from %zu tokens",
                  static_cast<long long>(windows.n_samples()), calib::sampler_name(kind),
                  static_cast<long long>(p.seqlen), stream.size());

    model::Transformer engine(*src);
    engine.set_threads(p.n_threads);
    calib::CollectOptions opts;
    opts.progress = p.progress;
    const calib::GramStats gram = calib::collect_gram(engine, windows, opts);
    info.n_tokens = gram.n_tokens;

    formats::StatsWriter writer(p.out_path, info);
    const int64_t d = gram.d;
    for (size_t l = 0; l < gram.gram.size(); ++l)
        writer.write_f64(layer_name("gram", static_cast<int64_t>(l)), std::vector<int64_t>{d, d}, gram.gram[l]);
    if (p.fisher) {
        const calib::FisherStats f = calib::collect_fisher(engine, windows, shift, opts);
        const std::vector<int64_t> shape{f.n_out, f.d};
        for (size_t l = 0; l < f.k.size(); ++l) {
            writer.write_f64(layer_name("fisher/k", static_cast<int64_t>(l)), shape, f.k[l]);
            writer.write_f64(layer_name("fisher/v", static_cast<int64_t>(l)), shape, f.v[l]);
        }
        writer.write_f64("fisher/n_samples", std::vector<int64_t>{},
                         std::vector<double>{static_cast<double>(f.n_samples)});
        writer.write_f64("fisher/mean_loss", std::vector<int64_t>{}, std::vector<double>{f.mean_loss});
        r.fisher_mean_loss = f.mean_loss;
    }
    writer.commit();
    r.n_samples = windows.n_samples();
    r.n_tokens = gram.n_tokens;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    PALU_LOG_INFO("calibrate", "%s: %lld windows, %lld tokens, Gram of %zu layers%s, %.1f s, peak RSS %s",
                  p.out_path.c_str(), static_cast<long long>(r.n_samples),
                  static_cast<long long>(r.n_tokens), gram.gram.size(),
                  p.fisher ? strfmt(", Fisher (%s shift)", p.fisher_shift.c_str()).c_str() : "",
                  r.seconds, bytes_str(peak_rss_bytes()).c_str());
    return r;
}

compress::FisherScalars fisher_scalars_from_stats(const formats::StatsStore& stats,
                                                  const compress::KvShape& shape,
                                                  int64_t group_size) {
    PALU_CHECK(stats.has("fisher/n_samples"), UsageError,
               "rank: %s: holds no Fisher statistics; hint: re-run palu-calibrate without --no-fisher",
               stats.path().string().c_str());
    const double n = stats.read("fisher/n_samples").values.at(0);
    PALU_CHECK(n >= 1, FormatError, "rank: %s: fisher/n_samples is %g", stats.path().string().c_str(), n);
    PALU_CHECK(group_size > 0 && shape.n_kv_heads % group_size == 0, UsageError,
               "rank: --group-size %lld must divide the %lld KV heads",
               static_cast<long long>(group_size), static_cast<long long>(shape.n_kv_heads));
    compress::FisherScalars out;
    for (int64_t l = 0; l < shape.n_layers; ++l) {
        for (const char* kv : {"k", "v"}) {
            const std::string name = strfmt("fisher/%s/layer_%lld", kv, static_cast<long long>(l));
            const formats::StatsDataset ds = stats.read(name);
            PALU_CHECK(ds.shape.size() == 2 && ds.shape[0] == shape.width(), FormatError,
                       "rank: %s: %s has shape %s, expected [%lld, d_model]",
                       stats.path().string().c_str(), name.c_str(), shape_str(ds.shape).c_str(),
                       static_cast<long long>(shape.width()));
            RowMatrixXf rms(ds.shape[0], ds.shape[1]);
            for (int64_t i = 0; i < rms.size(); ++i)
                rms.data()[i] = static_cast<float>(std::sqrt(ds.values[static_cast<size_t>(i)] / n));
            const compress::FisherReduction red =
                compress::reduce_rms_gradient(rms, group_size * shape.d_head, name);
            (kv[0] == 'k' ? out.k : out.v).push_back(red.module_mean);
            (kv[0] == 'k' ? out.k_groups : out.v_groups).push_back(red.group_means);
        }
    }
    return out;
}

RankSearchResult run_rank_search(const RankSearchParams& p) {
    PALU_CHECK(p.kv_bytes > 0.0 || (p.ratio > 0.0 && p.ratio <= 1.0), UsageError,
               "rank: --ratio must be in (0, 1], got %g", p.ratio);
    const auto method = compress::parse_rank_search_method(p.method);
    PALU_CHECK(method.has_value(), UsageError,
               "rank: --method must be uniform, fisher or fisher_uniform, got '%s'", p.method.c_str());
    PALU_CHECK(p.round_to >= 0, UsageError, "rank: --round-to must be >= 0, got %lld",
               static_cast<long long>(p.round_to));
    auto src = formats::open_model(p.model_path);
    const auto& cfg = src->config();
    const compress::KvShape shape{cfg.n_layers, cfg.n_kv_heads, cfg.d_head};
    compress::RankSearchParams rp;
    rp.method = *method;
    rp.group_size = p.group_size;
    rp.ratio = p.kv_bytes > 0.0 ? 0.0 : p.ratio;
    rp.kv_bytes_per_token = p.kv_bytes;
    rp.quant.bits = p.latent_bits;
    rp.rank_multiple = p.round_to;
    compress::FisherScalars fisher;
    if (*method != compress::RankSearchMethod::Uniform) {
        PALU_CHECK(!p.stats_path.empty(), UsageError,
                   "rank: --stats is required for method %s; hint: run palu-calibrate first",
                   p.method.c_str());
        const auto stats = formats::StatsStore::open(p.stats_path, {formats::fingerprint_model(*src), ""});
        fisher = fisher_scalars_from_stats(stats, shape, p.group_size);
    }
    RankSearchResult r;
    r.plan = compress::search_ranks(shape, *method == compress::RankSearchMethod::Uniform ? nullptr : &fisher, rp);
    r.json = compress::rank_plan_to_json(r.plan);
    if (!p.out_path.empty()) {
        const std::filesystem::path out(p.out_path);
        const std::filesystem::path tmp = out.parent_path() / ("." + out.filename().string() + ".tmp");
        {
            std::ofstream f(tmp);
            f << r.json.dump(2) << "\n";
            PALU_CHECK(f.good(), IoError, "rank: %s: cannot write", tmp.string().c_str());
        }
        std::error_code ec;
        std::filesystem::rename(tmp, out, ec);
        if (ec) std::filesystem::remove(tmp);
        PALU_CHECK(!ec, IoError, "rank: %s: cannot write: %s", p.out_path.c_str(), ec.message().c_str());
    }
    PALU_LOG_INFO("rank", "%s, group size %lld, target ratio %.4f: kept %lld/%lld dims, achieved ratio %.4f",
                  compress::rank_search_method_name(r.plan.method), static_cast<long long>(r.plan.group_size),
                  r.plan.target_ratio, static_cast<long long>(r.plan.n_kept()), static_cast<long long>(r.plan.n_full()),
                  r.plan.achieved_ratio());
    return r;
}

}  // namespace palu::pipeline
