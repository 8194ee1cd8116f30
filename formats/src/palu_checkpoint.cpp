// palu formats: the compressed palu checkpoint (palu_checkpoint.h; spec docs/checkpoint.md;
// reference layout palu-reference.md §8).
#include "palu/formats/palu_checkpoint.h"

#include <chrono>
#include <deque>
#include <map>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_writer.h"
#include "palu/formats/hf_config.h"
#include "palu/formats/safetensors.h"
#include "palu/formats/staging.h"

namespace palu::formats {

namespace fs = std::filesystem;
using nlohmann::json;
using ll = long long;

// ---- tensor names ------------------------------------------------------------------------------

std::string kv_proj_prefix(int64_t layer, KvProj which) {
    return strfmt("model.layers.%lld.self_attn.%c_proj", static_cast<ll>(layer),
                  static_cast<char>(which));
}
std::string kv_dense_weight_name(int64_t l, KvProj w) {
    return kv_proj_prefix(l, w) + ".weight";
}
std::string kv_dense_bias_name(int64_t l, KvProj w) {
    return kv_proj_prefix(l, w) + ".bias";
}
std::string kv_vt_name(int64_t l, KvProj w) {
    return kv_proj_prefix(l, w) + ".VT.weight";
}
std::string kv_u_name(int64_t l, KvProj w, int64_t g) {
    return strfmt("%s.U.%lld.weight", kv_proj_prefix(l, w).c_str(), static_cast<ll>(g));
}
std::string kv_u_bias_name(int64_t l, KvProj w, int64_t g) {
    return strfmt("%s.U.%lld.bias", kv_proj_prefix(l, w).c_str(), static_cast<ll>(g));
}

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Typed access to a JSON object with the key path in every error.
class JsonReader {
   public:
    JsonReader(const json& j, std::string path, const std::string& source)
        : j_(j), path_(std::move(path)), source_(source) {
        PALU_CHECK(j.is_object(), FormatError, "palu: %s: '%s': expected an object, got %s",
                   source.c_str(), path_.c_str(), j.type_name());
    }
    template <class T>
    T get(const char* key, T fallback) const {
        const auto it = j_.find(key);
        if (it == j_.end() || it->is_null()) return fallback;
        try {
            return it->get<T>();
        } catch (const json::exception&) {
            PALU_THROW(FormatError, "palu: %s: '%s.%s': wrong JSON type (%s)", source_.c_str(),
                       path_.c_str(), key, it->dump().c_str());
        }
    }
    bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
    JsonReader sub(const char* key) const {
        return JsonReader(has(key) ? j_[key] : empty(), path_ + "." + key, source_);
    }

   private:
    static const json& empty() {
        static const json e = json::object();
        return e;
    }
    const json& j_;
    std::string path_;
    const std::string& source_;
};

json optional_json(const std::optional<double>& v) {
    return v ? json(*v) : json(nullptr);
}

}  // namespace

bool is_dense_kv_tensor(const std::string& name) {
    for (const char* s : {".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                          ".self_attn.k_proj.bias", ".self_attn.v_proj.bias"})
        if (ends_with(name, s)) return true;
    return false;
}

bool is_kv_module_tensor(const std::string& name) {
    return name.find(".self_attn.k_proj.") != std::string::npos ||
           name.find(".self_attn.v_proj.") != std::string::npos;
}

bool is_palu_checkpoint(const WeightSource& src) {
    return src.has_tensor(kv_vt_name(0, KvProj::K));
}

// ---- the palu block ----------------------------------------------------------------------------

json to_json(const CalibrationRecord& c) {
    return {{"source", c.source},
            {"sha256", c.sha256},
            {"stats", c.stats_path.empty() ? json(nullptr) : json(c.stats_path)},
            {"stats_reused", c.stats_reused},
            {"n_samples", c.n_samples},
            {"seqlen", c.seqlen},
            {"n_tokens", c.n_tokens},
            {"sampler", c.sampler},
            {"seed", c.seed},
            {"fisher_shift", c.fisher_shift.empty() ? json(nullptr) : json(c.fisher_shift)}};
}

json to_json(const PaluBlock& b) {
    const json calibration = b.calibration ? to_json(*b.calibration) : json(nullptr);
    const quant::LatentQuantSpec& q = b.latent_quant;
    json j = {{"format_version", b.format_version},
              {"group_size", b.group_size},
              {"rank_search",
               {{"method", b.rank_search.method},
                {"target_ratio", b.rank_search.target_ratio},
                {"target_kv_bytes_per_token", optional_json(b.rank_search.target_kv_bytes)},
                {"achieved_ratio", b.rank_search.achieved_ratio},
                {"rank_multiple", b.rank_search.rank_multiple},
                {"kept_dims", b.rank_search.kept_dims},
                {"full_dims", b.rank_search.full_dims}}},
              {"decompose",
               {{"method", b.decompose.method},
                {"damp", b.decompose.damp},
                {"eig_fallback_eps", b.decompose.eig_fallback_eps},
                {"gram_fallbacks", b.decompose.gram_fallbacks},
                {"max_gram_shift", b.decompose.max_gram_shift}}},
              {"calibration", calibration},
              {"hadamard", {{"fused", b.hadamard.fused}, {"seed", b.hadamard.seed}}},
              {"latent_quant",
               {{"bits", q.bits},
                {"group_size", q.group_size},
                {"symmetric", q.symmetric},
                {"clip_ratio", q.clip_ratio},
                {"include_zero", q.include_zero}}},
              {"head_permutation", nullptr},
              {"kv_bytes_per_token",
               {{"original_f16", b.kv_bytes_per_token.original_f16},
                {"compressed", b.kv_bytes_per_token.compressed},
                {"ratio", b.kv_bytes_per_token.ratio},
                {"includes", b.kv_bytes_per_token.includes}}},
              {"source_model",
               {{"path", b.source_model.path},
                {"format", b.source_model.format},
                {"fingerprint", b.source_model.fingerprint}}}};
    if (!b.exported.empty()) {
        j["exported"] = b.exported;
        j["exported_dtype"] = b.exported_dtype;
    }
    return j;
}

PaluBlock palu_block_from_json(const json& j, const std::string& source) {
    const JsonReader r(j, "palu", source);
    PaluBlock b;
    b.format_version = r.get("format_version", kPaluFormatVersion);
    PALU_CHECK(b.format_version == kPaluFormatVersion, FormatError,
               "palu: %s: palu.format_version is %d: expected %d; hint: re-compress the model "
               "with this palu",
               source.c_str(), b.format_version, kPaluFormatVersion);
    b.group_size = r.get("group_size", int64_t{0});
    const JsonReader rs = r.sub("rank_search");
    b.rank_search.method = rs.get("method", std::string());
    b.rank_search.target_ratio = rs.get("target_ratio", 0.0);
    if (rs.has("target_kv_bytes_per_token"))
        b.rank_search.target_kv_bytes = rs.get("target_kv_bytes_per_token", 0.0);
    b.rank_search.achieved_ratio = rs.get("achieved_ratio", 0.0);
    b.rank_search.rank_multiple = rs.get("rank_multiple", int64_t{0});
    b.rank_search.kept_dims = rs.get("kept_dims", int64_t{0});
    b.rank_search.full_dims = rs.get("full_dims", int64_t{0});
    const JsonReader d = r.sub("decompose");
    b.decompose.method = d.get("method", std::string());
    b.decompose.damp = d.get("damp", 0.0);
    b.decompose.eig_fallback_eps = d.get("eig_fallback_eps", 1e-3);
    b.decompose.gram_fallbacks = d.get("gram_fallbacks", int64_t{0});
    b.decompose.max_gram_shift = d.get("max_gram_shift", 0.0);
    if (r.has("calibration")) {
        const JsonReader c = r.sub("calibration");
        CalibrationRecord cr;
        cr.source = c.get("source", std::string());
        cr.sha256 = c.get("sha256", std::string());
        cr.stats_path = c.get("stats", std::string());
        cr.stats_reused = c.get("stats_reused", false);
        cr.n_samples = c.get("n_samples", int64_t{0});
        cr.seqlen = c.get("seqlen", int64_t{0});
        cr.n_tokens = c.get("n_tokens", int64_t{0});
        cr.sampler = c.get("sampler", std::string());
        cr.seed = c.get("seed", uint64_t{0});
        cr.fisher_shift = c.get("fisher_shift", std::string());
        b.calibration = std::move(cr);
    }
    const JsonReader h = r.sub("hadamard");
    b.hadamard.fused = h.get("fused", false);
    b.hadamard.seed = h.get("seed", uint64_t{0});
    const JsonReader q = r.sub("latent_quant");
    b.latent_quant.bits = q.get("bits", 16);
    b.latent_quant.group_size = q.get("group_size", int64_t{0});
    b.latent_quant.symmetric = q.get("symmetric", false);
    b.latent_quant.clip_ratio = q.get("clip_ratio", 1.0);
    b.latent_quant.include_zero = q.get("include_zero", false);
    const JsonReader kv = r.sub("kv_bytes_per_token");
    b.kv_bytes_per_token.original_f16 = kv.get("original_f16", int64_t{0});
    b.kv_bytes_per_token.compressed = kv.get("compressed", int64_t{0});
    b.kv_bytes_per_token.ratio = kv.get("ratio", 0.0);
    b.kv_bytes_per_token.includes = kv.get("includes", b.kv_bytes_per_token.includes);
    const JsonReader sm = r.sub("source_model");
    b.source_model.path = sm.get("path", std::string());
    b.source_model.format = sm.get("format", std::string());
    b.source_model.fingerprint = sm.get("fingerprint", std::string());
    b.exported = r.get("exported", std::string());
    b.exported_dtype = r.get("exported_dtype", std::string());
    return b;
}

PaluCheckpointInfo read_palu_checkpoint(const WeightSource& src) {
    const std::string where = src.path();
    PALU_CHECK(is_palu_checkpoint(src), UsageError,
               "palu: %s is not a compressed palu checkpoint: expected tensor '%s', got none; "
               "hint: pass the output of palu-compress",
               where.c_str(), kv_vt_name(0, KvProj::K).c_str());
    const std::string text = src.config_json_text();
    PALU_CHECK(!text.empty(), FormatError,
               "palu: %s (%s) has the palu factors but no config.json: expected a Hugging Face "
               "directory",
               where.c_str(), src.format_name().c_str());
    const json cfg = json::parse(text, nullptr, /*allow_exceptions=*/false);
    PALU_CHECK(cfg.is_object(), FormatError, "palu: %s: config.json is not a JSON object",
               where.c_str());
    PaluCheckpointInfo info;
    if (cfg.contains("palu") && !cfg["palu"].is_null())
        info.block = palu_block_from_json(cfg["palu"], where);
    const ModelConfig& c = src.config();
    const auto hw = cfg.find("head_wise_ranks");
    PALU_CHECK(hw != cfg.end() && hw->is_object(), FormatError,
               "palu: %s: config.json key 'head_wise_ranks': expected an object of per-group "
               "ranks, got %s",
               where.c_str(), hw == cfg.end() ? "none" : hw->type_name());
    for (int64_t l = 0; l < c.n_layers; ++l)
        for (KvProj which : {KvProj::K, KvProj::V}) {
            const std::string key = kv_proj_prefix(l, which);
            const auto it = hw->find(key);
            PALU_CHECK(it != hw->end() && it->is_array() && !it->empty(), FormatError,
                       "palu: %s: head_wise_ranks['%s']: expected a non-empty list of ranks, "
                       "got %s",
                       where.c_str(), key.c_str(), it == hw->end() ? "none" : it->dump().c_str());
            std::vector<int64_t> ranks;
            for (const auto& r : *it) {
                PALU_CHECK(r.is_number_integer() && r.get<int64_t>() >= 1, FormatError,
                           "palu: %s: head_wise_ranks['%s']: expected integers >= 1, got %s",
                           where.c_str(), key.c_str(), r.dump().c_str());
                ranks.push_back(r.get<int64_t>());
            }
            PALU_CHECK(c.n_kv_heads % static_cast<int64_t>(ranks.size()) == 0, FormatError,
                       "palu: %s: head_wise_ranks['%s'] has %zu groups: expected a divisor of "
                       "num_key_value_heads=%lld",
                       where.c_str(), key.c_str(), ranks.size(), static_cast<ll>(c.n_kv_heads));
            (which == KvProj::K ? info.k_ranks : info.v_ranks).push_back(std::move(ranks));
        }
    return info;
}

// ---- writing -----------------------------------------------------------------------------------

std::string palu_config_text(const json& cfg) {
    nlohmann::ordered_json out = nlohmann::ordered_json::parse(cfg.dump());
    // head_wise_ranks in layer order (0, 1, ..., 10), as the reference writes it, not string order.
    if (cfg.contains("head_wise_ranks") && cfg["head_wise_ranks"].is_object()) {
        std::map<std::pair<int64_t, std::string>, json> ordered;
        for (const auto& [k, v] : cfg["head_wise_ranks"].items()) {
            int64_t layer = -1;
            std::sscanf(k.c_str(), "model.layers.%lld.", reinterpret_cast<ll*>(&layer));
            ordered[{layer, k}] = v;
        }
        nlohmann::ordered_json hw = nlohmann::ordered_json::object();
        for (const auto& [key, v] : ordered)
            hw[key.second] = nlohmann::ordered_json::parse(v.dump());
        out["head_wise_ranks"] = std::move(hw);
    }
    if (cfg.contains("palu") && cfg["palu"].is_object() && cfg["palu"].contains("format_version")) {
        nlohmann::ordered_json p;
        p["format_version"] = nlohmann::ordered_json::parse(cfg["palu"]["format_version"].dump());
        for (const auto& [k, v] : cfg["palu"].items())
            if (k != "format_version") p[k] = nlohmann::ordered_json::parse(v.dump());
        out["palu"] = std::move(p);
    }
    return out.dump(2) + "\n";
}

std::vector<std::string> copy_tokenizer_files(const WeightSource& src, const fs::path& dir,
                                              const char* stage) {
    static const char* const kHfFiles[] = {"tokenizer.json",          "tokenizer_config.json",
                                           "special_tokens_map.json", "tokenizer.model",
                                           "generation_config.json",  "tokenizer.gguf"};
    std::vector<std::string> written;
    if (src.format_name() == "gguf") {
        auto g = GgufFile::open(src.path());
        GgufWriter w;
        if (const auto* a = g->find("general.architecture")) w.set("general.architecture", *a);
        size_t n = 0;
        for (const auto& key : g->keys()) {
            if (key.rfind("tokenizer.", 0) != 0) continue;
            w.set(key, *g->find(key));
            ++n;
        }
        if (n > 0) {
            w.write(dir / "tokenizer.gguf");
            written.push_back("tokenizer.gguf");
        }
        return written;
    }
    const fs::path src_dir = src.source_dir();
    if (!src.config_json_text().empty())
        for (const char* name : kHfFiles) {
            if (!fs::is_regular_file(src_dir / name)) continue;
            copy_file_into(src_dir / name, dir, stage);
            written.push_back(name);
        }
    // llama2.c tok<N>.bin: beside the model, or in the folder above (stories260K/hf).
    const std::string tok_bin = "tok" + std::to_string(src.config().n_vocab) + ".bin";
    for (const fs::path& d : {src_dir, src_dir.parent_path()})
        if (fs::is_regular_file(d / tok_bin) && !fs::exists(dir / tok_bin)) {
            copy_file_into(d / tok_bin, dir, stage);
            written.push_back(tok_bin);
            break;
        }
    return written;
}

DType resolve_factor_dtype(const WeightSource& src, std::optional<DType> requested) {
    if (requested) return *requested;
    const std::string k0 = kv_dense_weight_name(0, KvProj::K);
    for (const auto& t : src.tensors())
        if (t.name == k0 && (t.storage_type == "F16" || t.storage_type == "BF16"))
            return *parse_dtype(t.storage_type);
    return DType::F32;
}

namespace {

// Factor shapes against the config, before anything is written. UsageError naming the layer.
void check_factors(const ModelConfig& c, const PaluFactorsView& f, int64_t layer, KvProj which,
                   bool want_bias) {
    const char w = static_cast<char>(which);
    const std::string what = strfmt("checkpoint: layer %lld %c_proj factors", (ll)layer, w);
    PALU_CHECK(f.d_model == c.d_model && f.d_head == c.d_head, UsageError,
               "%s: expected d_model=%lld, d_head=%lld (config), got %lld, %lld", what.c_str(),
               (ll)c.d_model, (ll)c.d_head, (ll)f.d_model, (ll)f.d_head);
    const int64_t n_groups = static_cast<int64_t>(f.ranks.size());
    PALU_CHECK(f.group_size >= 1 && n_groups >= 1 && n_groups * f.group_size == c.n_kv_heads,
               UsageError,
               "%s: expected n_groups x group_size = num_key_value_heads=%lld, got %lld x %lld",
               what.c_str(), (ll)c.n_kv_heads, (ll)n_groups, (ll)f.group_size);
    int64_t sum_r = 0;
    for (int64_t r : f.ranks) {
        PALU_CHECK(r >= 1, UsageError, "%s: expected ranks >= 1, got %lld", what.c_str(), (ll)r);
        sum_r += r;
    }
    PALU_CHECK(f.vt.data != nullptr && f.vt.rows == sum_r && f.vt.cols == c.d_model, UsageError,
               "%s: VT has wrong shape; expected [%lld,%lld] (sum of ranks, d_model), got "
               "[%lld,%lld]",
               what.c_str(), (ll)sum_r, (ll)c.d_model, (ll)f.vt.rows, (ll)f.vt.cols);
    PALU_CHECK(static_cast<int64_t>(f.u.size()) == n_groups, UsageError,
               "%s: expected %lld U factors (one per group), got %zu", what.c_str(), (ll)n_groups,
               f.u.size());
    const int64_t width = f.group_size * f.d_head;
    for (int64_t g = 0; g < n_groups; ++g) {
        const MatrixView& u = f.u[static_cast<size_t>(g)];
        const int64_t r = f.ranks[static_cast<size_t>(g)];
        PALU_CHECK(u.data != nullptr && u.rows == width && u.cols == r, UsageError,
                   "%s: U.%lld has wrong shape; expected [%lld,%lld] (group_size*d_head, rank), "
                   "got [%lld,%lld]",
                   what.c_str(), (ll)g, (ll)width, (ll)r, (ll)u.rows, (ll)u.cols);
    }
    if (want_bias) {
        bool ok = static_cast<int64_t>(f.bias.size()) == n_groups;
        for (size_t g = 0; ok && g < f.bias.size(); ++g)
            ok = static_cast<int64_t>(f.bias[g].size()) == width;
        PALU_CHECK(ok, UsageError,
                   "%s: the source has a %c_proj bias: expected %lld group biases of %lld values, "
                   "got %zu groups",
                   what.c_str(), w, (ll)n_groups, (ll)width, f.bias.size());
    } else {
        PALU_CHECK(f.bias.empty(), UsageError,
                   "%s: the source has no %c_proj bias: expected no group biases", what.c_str(), w);
    }
}

void add_factors(TensorWriteList& out, const PaluFactorsView& f, int64_t layer, KvProj which,
                 DType dt) {
    out.add_f32(kv_vt_name(layer, which), dt, {f.vt.rows, f.vt.cols}, f.vt.data,
                static_cast<size_t>(f.vt.rows * f.vt.cols), "checkpoint");
    for (size_t g = 0; g < f.u.size(); ++g) {
        const int64_t gi = static_cast<int64_t>(g);
        const MatrixView& u = f.u[g];
        out.add_f32(kv_u_name(layer, which, gi), dt, {u.rows, u.cols}, u.data,
                    static_cast<size_t>(u.rows * u.cols), "checkpoint");
        if (!f.bias.empty())
            out.add_f32(kv_u_bias_name(layer, which, gi), dt,
                        {static_cast<int64_t>(f.bias[g].size())}, f.bias[g].data(),
                        f.bias[g].size(), "checkpoint");
    }
}

}  // namespace

void write_palu_checkpoint(const WeightSource& src, const std::vector<PaluLayerView>& layers,
                           const PaluBlock& block, const fs::path& out_dir,
                           const PaluWriteOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = src.config();
    const HfArchNames names = hf_arch_names(c.architecture);
    PALU_CHECK(!is_palu_checkpoint(src), UsageError,
               "checkpoint: %s is already a compressed palu checkpoint: expected a dense model; "
               "hint: compress the original model",
               src.path().c_str());
    PALU_CHECK(static_cast<int64_t>(layers.size()) == c.n_layers, UsageError,
               "checkpoint: expected factors for %lld layers (num_hidden_layers), got %zu",
               (ll)c.n_layers, layers.size());
    PALU_CHECK(block.format_version == kPaluFormatVersion, UsageError,
               "checkpoint: palu.format_version: expected %d, got %d", kPaluFormatVersion,
               block.format_version);
    for (size_t l = 0; l < layers.size(); ++l) {
        const int64_t li = static_cast<int64_t>(l);
        check_factors(c, layers[l].k, li, KvProj::K,
                      src.has_tensor(kv_dense_bias_name(li, KvProj::K)));
        check_factors(c, layers[l].v, li, KvProj::V,
                      src.has_tensor(kv_dense_bias_name(li, KvProj::V)));
    }
    const DType factor_dt = resolve_factor_dtype(src, options.factor_dtype);
    PALU_CHECK(factor_dt == DType::F32 || factor_dt == DType::F16 || factor_dt == DType::BF16,
               UsageError,
               "checkpoint: factor dtype %s is not supported: expected f32, f16 or bf16",
               dtype_name(factor_dt));
    StagingDir stage(out_dir, options.overwrite, src.source_dir(), "checkpoint");

    // Untouched tensors: stored bytes from safetensors sources; f32 (as the engine sees them)
    // from GGUF / llama2.c sources, whose storage has no safetensors equivalent.
    TensorWriteList tensors;
    std::deque<Tensor> converted;
    size_t n_copied = 0;
    for (const auto& t : src.tensors()) {
        if (is_dense_kv_tensor(t.name)) continue;
        ++n_copied;
        if (auto raw = src.raw_tensor(t.name)) {
            tensors.add_raw(t.name, raw->dtype, raw->shape, raw->bytes);
            continue;
        }
        converted.push_back(src.load_f32(t.name));
        const Tensor& x = converted.back();
        const auto* p = reinterpret_cast<const uint8_t*>(x.data());
        tensors.add_raw(t.name, DType::F32, x.shape(),
                        std::span<const uint8_t>(p, x.vec().size() * sizeof(float)));
    }
    json head_wise = json::object();
    for (size_t l = 0; l < layers.size(); ++l) {
        const int64_t li = static_cast<int64_t>(l);
        add_factors(tensors, layers[l].k, li, KvProj::K, factor_dt);
        add_factors(tensors, layers[l].v, li, KvProj::V, factor_dt);
        head_wise[kv_proj_prefix(li, KvProj::K)] = layers[l].k.ranks;
        head_wise[kv_proj_prefix(li, KvProj::V)] = layers[l].v.ranks;
    }
    const size_t n_tensors = tensors.size();
    const uint64_t n_bytes = tensors.n_bytes();
    const std::map<std::string, std::string> metadata = {
        {"format", "pt"}, {"palu_format_version", std::to_string(kPaluFormatVersion)}};
    write_safetensors(stage.path(), tensors.take(), metadata, options.max_shard_bytes);

    const std::string own_config = src.config_json_text();
    json cfg = own_config.empty() ? hf_config_json(c, "float32") : json::parse(own_config);
    cfg["model_type"] = names.palu_type;
    cfg["architectures"] = {names.palu_class};
    cfg["head_wise_ranks"] = std::move(head_wise);
    cfg["palu"] = to_json(block);
    write_text_file(stage.path() / "config.json", palu_config_text(cfg), "checkpoint");

    const auto tok = copy_tokenizer_files(src, stage.path(), "checkpoint");
    if (tok.empty())
        PALU_LOG_WARN("checkpoint",
                      "no tokenizer found for %s; the checkpoint has none (pass --tokenizer when "
                      "using it)",
                      src.path().c_str());
    stage.commit();
    std::string tok_list;
    for (const auto& t : tok) tok_list += (tok_list.empty() ? "" : ", ") + t;
    PALU_LOG_INFO("checkpoint",
                  "wrote %s: %zu tensors (%zu copied, factors %s), %s, tokenizer: %s; %.2f s, "
                  "peak RSS %s",
                  stage.final_path().string().c_str(), n_tensors, n_copied, dtype_name(factor_dt),
                  bytes_str(static_cast<double>(n_bytes)).c_str(),
                  tok_list.empty() ? "none" : tok_list.c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                  bytes_str(static_cast<double>(peak_rss_bytes())).c_str());
}

}  // namespace palu::formats
