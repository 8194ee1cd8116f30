// palu pipeline: the calibrate stage (calibrate.h).
#include "palu/pipeline/calibrate.h"

#include <filesystem>

#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/fingerprint.h"
#include "palu/formats/model_loader.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;
using ll = long long;

namespace {

std::string layer_name(const char* prefix, int64_t l) {
    return strfmt("%s/layer_%lld", prefix, static_cast<ll>(l));
}

const char* shift_name(model::LabelShift s) {
    return s == model::LabelShift::Double ? "double" : "single";
}

// Everything besides the model and data files that determines the statistics (the settings a
// stats file records; an existing file is reused only when they are equal).
json settings_json(const CalibrationOptions& c, bool fisher, int32_t bos_id) {
    json j{{"format", "palu.calibrate"},
           {"source", c.tokens_path.empty() ? "text" : "tokens"},
           {"sampler", calib::sampler_name(c.sampler)},
           {"n_samples", c.n_samples},
           {"seqlen", c.seqlen},
           {"bos_id", c.sampler == calib::SamplerKind::Contiguous ? -1 : bos_id},
           {"gram", true},
           {"fisher", fisher}};
    if (!c.text_path.empty()) j["text_format"] = calib::text_format_name(c.text_format);
    if (c.sampler == calib::SamplerKind::Random) j["seed"] = c.seed;
    if (c.sampler == calib::SamplerKind::Offsets)
        j["offsets_sha256"] = formats::fingerprint_file(c.offsets_path);
    if (fisher) j["fisher_shift"] = shift_name(c.fisher_shift);
    return j;
}

std::vector<int32_t> load_calib_tokens(const CalibrationOptions& c, const WeightSource& src) {
    const int64_t n_vocab = src.config().n_vocab;
    if (!c.tokens_path.empty()) {
        auto ids = calib::load_token_file(c.tokens_path);
        for (const int32_t id : ids)
            PALU_CHECK(id >= 0 && id < n_vocab, UsageError,
                       "calibrate: %s: token id %d outside the model's vocabulary [0, %lld)",
                       c.tokens_path.c_str(), id, static_cast<ll>(n_vocab));
        return ids;
    }
    auto tok = calib::find_tokenizer_for_model(src.path(), n_vocab);
    const std::string text = calib::load_text(c.text_path, c.text_format);
    auto ids = tok->encode(text, /*add_bos=*/true);
    PALU_LOG_INFO("calibrate", "%s: %zu bytes -> %zu tokens (%s tokenizer)", c.text_path.c_str(),
                  text.size(), ids.size(), tok->kind().c_str());
    return ids;
}

// True when stats_path holds statistics of exactly these inputs; UsageError when it holds others.
bool existing_matches(const CalibrationOptions& c, const formats::StatsFileInfo& want) {
    if (c.overwrite_stats || c.stats_path.empty() || !fs::exists(c.stats_path)) return false;
    formats::StatsStore store = [&] {
        try {
            return formats::StatsStore::open(c.stats_path,
                                             {want.model_fingerprint, want.data_fingerprint});
        } catch (const UsageError& e) {
            throw UsageError(std::string(e.what()) +
                             "; hint: choose another --stats path or pass --overwrite-stats");
        }
    }();
    const auto have = json::parse(store.info().settings_json, nullptr, false);
    PALU_CHECK(have == json::parse(want.settings_json), UsageError,
               "calibrate: %s: was made with other settings (%s), this run asks for %s; hint: "
               "choose another --stats path or pass --overwrite-stats",
               c.stats_path.c_str(), store.info().settings_json.c_str(),
               want.settings_json.c_str());
    return true;
}

bool stats_file_has_fisher(const std::string& path) {
    if (path.empty() || !fs::exists(path)) return false;
    try {
        return formats::StatsStore::open(path).has("fisher/n_samples");
    } catch (const Error&) {
        return false;  // unreadable: the real open below gives the error
    }
}

std::vector<double> read_array(const formats::StatsStore& s, const std::string& name,
                               const std::vector<int64_t>& shape) {
    formats::StatsDataset ds = s.read(name);
    PALU_CHECK(ds.shape == shape, FormatError,
               "calibrate: %s: dataset '%s' has shape %s; expected %s; hint: re-run "
               "palu-calibrate for this model",
               s.path().c_str(), name.c_str(), shape_str(ds.shape).c_str(),
               shape_str(shape).c_str());
    return std::move(ds.values);
}

// The record of statistics calibrated here from `c` (source, sampler, ...).
formats::CalibrationRecord record_for(const CalibrationOptions& c, const CalibrationStats& s) {
    formats::CalibrationRecord r;
    r.source = c.text_path.empty() ? c.tokens_path : c.text_path;
    r.sha256 = s.info.data_fingerprint;
    r.stats_path = c.stats_path;
    r.n_samples = c.n_samples;
    r.seqlen = c.seqlen;
    r.n_tokens = s.info.n_tokens;
    r.sampler = calib::sampler_name(c.sampler);
    r.seed = c.seed;
    if (s.fisher) r.fisher_shift = shift_name(c.fisher_shift);
    return r;
}

CalibrationStats collect(const WeightSource& src, const CalibrationOptions& c,
                         formats::StatsFileInfo info, bool with_fisher, const RunOptions& run) {
    const calib::CalibWindows windows = calibration_windows(src, c);
    model::Transformer engine(src);
    engine.set_threads(run.n_threads);
    calib::CollectOptions opts;
    opts.progress = run.progress;
    CalibrationStats out;
    out.gram = calib::collect_gram(engine, windows, opts);
    if (with_fisher) out.fisher = calib::collect_fisher(engine, windows, c.fisher_shift, opts);
    info.n_tokens = out.gram.n_tokens;
    out.info = std::move(info);
    return out;
}

}  // namespace

calib::CalibWindows calibration_windows(const WeightSource& src, const CalibrationOptions& c) {
    const std::vector<int32_t> stream = load_calib_tokens(c, src);
    calib::SamplingParams sp;
    sp.kind = c.sampler;
    sp.n_samples = c.n_samples;
    sp.seqlen = c.seqlen;
    sp.seed = c.seed;
    sp.bos_id = static_cast<int32_t>(src.config().bos_token_id);
    if (c.sampler == calib::SamplerKind::Offsets)
        sp.offsets = calib::read_offsets_file(c.offsets_path);
    calib::CalibWindows windows = calib::sample_windows(stream, sp);
    PALU_LOG_INFO("calibrate", "%lld %s windows of %lld tokens from %zu tokens",
                  static_cast<ll>(windows.n_samples()), calib::sampler_name(c.sampler),
                  static_cast<ll>(c.seqlen), stream.size());
    return windows;
}

void check_calibration_inputs(const CalibrationOptions& c, bool need_stats, const char* st,
                              const std::string& need_what) {
    PALU_CHECK(!(c.text_path.size() && c.tokens_path.size()), UsageError,
               "%s: give one of --calib TEXT or --calib-tokens FILE, not both", st);
    PALU_CHECK(c.n_samples > 0 && c.seqlen >= 2, UsageError,
               "%s: need --calib-samples > 0 and --calib-seqlen >= 2, got %lld and %lld", st,
               static_cast<ll>(c.n_samples), static_cast<ll>(c.seqlen));
    PALU_CHECK((c.sampler == calib::SamplerKind::Offsets) == !c.offsets_path.empty(), UsageError,
               "%s: --offsets FILE goes with --sampler offsets (and only with it)", st);
    if (c.has_source()) {
        const std::string& f = c.text_path.empty() ? c.tokens_path : c.text_path;
        PALU_CHECK(fs::is_regular_file(f), IoError,
                   "%s: calibration file %s does not exist; hint: pass a text corpus with --calib",
                   st, f.c_str());
        PALU_CHECK(fs::file_size(f) > 0, UsageError,
                   "%s: calibration file %s is empty; hint: pass a text corpus with --calib", st,
                   f.c_str());
    }
    PALU_CHECK(!need_stats || c.has_source() || (!c.stats_path.empty() && fs::exists(c.stats_path)),
               UsageError,
               "%s: %s needs calibration statistics; hint: pass --calib TEXT (or --calib-tokens "
               "FILE), or --stats FILE.h5 from palu-calibrate",
               st, need_what.c_str());
}

CalibrationStats calibrate(const WeightSource& src, const std::string& model_fp,
                           const CalibrationOptions& c, FisherNeed fisher, const RunOptions& run) {
    const bool need_fisher = fisher == FisherNeed::Required;
    const auto t0 = std::chrono::steady_clock::now();
    CalibrationStats out;
    if (!c.has_source()) {
        PALU_LOG_INFO("calibrate", "reusing calibration statistics %s", c.stats_path.c_str());
        out = load_stats(c.stats_path, model_fp, src.config());
    } else {
        // An existing stats file with Fisher also serves a run that needs only the Gram matrices
        // (a uniform sweep after a fisher_uniform one): ask for the settings it was made with.
        const bool with_fisher = need_fisher || (fisher == FisherNeed::IfInStatsFile &&
                                                 stats_file_has_fisher(c.stats_path));
        formats::StatsFileInfo info;
        info.model_fingerprint = model_fp;
        info.data_fingerprint =
            formats::fingerprint_file(c.text_path.empty() ? c.tokens_path : c.text_path);
        info.seed = c.sampler == calib::SamplerKind::Random ? static_cast<int64_t>(c.seed) : 0;
        info.settings_json =
            settings_json(c, with_fisher, static_cast<int32_t>(src.config().bos_token_id)).dump();
        const bool reuse = existing_matches(c, info);
        if (reuse) {
            PALU_LOG_INFO("calibrate", "%s: same model, data and settings: reusing it",
                          c.stats_path.c_str());
            out = load_stats(c.stats_path, model_fp, src.config());
        } else {
            out = collect(src, c, std::move(info), with_fisher, run);
            if (!c.stats_path.empty()) save_stats(out, c.stats_path);
        }
        out.record = record_for(c, out);
        out.record.stats_reused = reuse;
    }
    PALU_CHECK(!need_fisher || out.fisher, UsageError,
               "calibrate: %s has no Fisher information (calibrated with --no-fisher); hint: "
               "re-run palu-calibrate with Fisher, or use --rank-search uniform",
               c.stats_path.c_str());
    out.seconds = seconds_since(t0);
    PALU_LOG_INFO("calibrate", "%lld tokens, Gram of %zu layers%s, %.1f s, peak RSS %s",
                  static_cast<ll>(out.info.n_tokens), out.gram.gram.size(),
                  out.fisher ? " + Fisher" : "", out.seconds,
                  bytes_str(static_cast<double>(peak_rss_bytes())).c_str());
    return out;
}

void save_stats(const CalibrationStats& s, const std::string& path) {
    formats::StatsWriter writer(path, s.info);
    const int64_t d = s.gram.d;
    for (size_t l = 0; l < s.gram.gram.size(); ++l)
        writer.write_f64(layer_name("gram", static_cast<int64_t>(l)), std::vector<int64_t>{d, d},
                         s.gram.gram[l]);
    if (s.fisher) {
        const calib::FisherStats& f = *s.fisher;
        const std::vector<int64_t> shape{f.n_out, f.d};
        for (size_t l = 0; l < f.k.size(); ++l) {
            writer.write_f64(layer_name("fisher/k", static_cast<int64_t>(l)), shape, f.k[l]);
            writer.write_f64(layer_name("fisher/v", static_cast<int64_t>(l)), shape, f.v[l]);
        }
        writer.write_f64("fisher/n_samples", std::vector<int64_t>{},
                         std::vector<double>{static_cast<double>(f.n_samples)});
        writer.write_f64("fisher/mean_loss", std::vector<int64_t>{},
                         std::vector<double>{f.mean_loss});
    }
    writer.commit();
    PALU_LOG_INFO("calibrate", "statistics written to %s", path.c_str());
}

CalibrationStats load_stats(const std::string& path, const std::string& model_fp,
                            const ModelConfig& c, bool with_gram) {
    const formats::StatsStore store = formats::StatsStore::open(path, {model_fp, ""});
    CalibrationStats out;
    out.info = store.info();
    out.gram.d = c.d_model;
    out.gram.n_tokens = out.info.n_tokens;
    for (int64_t l = 0; with_gram && l < c.n_layers; ++l)
        out.gram.gram.push_back(read_array(store, layer_name("gram", l), {c.d_model, c.d_model}));
    if (store.has("fisher/n_samples")) {
        calib::FisherStats f;
        f.n_out = c.d_kv();
        f.d = c.d_model;
        f.n_samples = static_cast<int64_t>(store.read("fisher/n_samples").values.at(0));
        PALU_CHECK(f.n_samples >= 1, FormatError, "calibrate: %s: fisher/n_samples is %lld",
                   path.c_str(), static_cast<ll>(f.n_samples));
        if (store.has("fisher/mean_loss"))
            f.mean_loss = store.read("fisher/mean_loss").values.at(0);
        for (int64_t l = 0; l < c.n_layers; ++l) {
            f.k.push_back(read_array(store, layer_name("fisher/k", l), {f.n_out, f.d}));
            f.v.push_back(read_array(store, layer_name("fisher/v", l), {f.n_out, f.d}));
        }
        out.fisher = std::move(f);
    }
    // What the file says of its making (the settings JSON it was written with).
    const json settings = json::parse(out.info.settings_json, nullptr, false);
    formats::CalibrationRecord& r = out.record;
    r.stats_path = path;
    r.stats_reused = true;
    r.sha256 = out.info.data_fingerprint;
    r.n_tokens = out.info.n_tokens;
    r.seed = static_cast<uint64_t>(out.info.seed);
    if (settings.is_object()) {
        r.n_samples = settings.value("n_samples", int64_t{0});
        r.seqlen = settings.value("seqlen", int64_t{0});
        r.sampler = settings.value("sampler", std::string());
        if (out.fisher) r.fisher_shift = settings.value("fisher_shift", std::string());
    }
    return out;
}

CalibrateResult run_calibrate(const CalibrateParams& p) {
    const auto t0 = std::chrono::steady_clock::now();
    PALU_CHECK(!p.calib.stats_path.empty(), UsageError, "calibrate: --out is required");
    PALU_CHECK(p.calib.text_path.empty() != p.calib.tokens_path.empty(), UsageError,
               "calibrate: give exactly one of --text FILE or --tokens FILE.i32");
    const CalibrationOptions& c = p.calib;
    PALU_CHECK(c.n_samples > 0 && c.seqlen >= 2, UsageError,
               "calibrate: need --samples > 0 and --seqlen >= 2, got %lld and %lld",
               static_cast<ll>(c.n_samples), static_cast<ll>(c.seqlen));
    PALU_CHECK((c.sampler == calib::SamplerKind::Offsets) == !c.offsets_path.empty(), UsageError,
               "calibrate: --offsets FILE goes with --sampler offsets (and only with it)");
    auto src = formats::open_model(p.model_path);
    const std::string fp = formats::fingerprint_model(*src);
    const bool had = fs::exists(p.calib.stats_path);
    const CalibrationStats s =
        calibrate(*src, fp, p.calib, p.fisher ? FisherNeed::Required : FisherNeed::None, p.run);
    CalibrateResult r;
    r.out_path = p.calib.stats_path;
    r.reused = had && s.record.stats_reused;
    r.n_samples = p.calib.n_samples;
    r.n_tokens = s.info.n_tokens;
    r.fisher_mean_loss = s.fisher ? s.fisher->mean_loss : 0.0;
    r.seconds = seconds_since(t0);
    r.model_fingerprint = fp;
    r.data_fingerprint = s.info.data_fingerprint;
    return r;
}

}  // namespace palu::pipeline
