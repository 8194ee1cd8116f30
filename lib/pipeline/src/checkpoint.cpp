// palu pipeline: the compressed checkpoint writer and the dense export (checkpoint.h; format spec
// docs/checkpoint.md; reference layout: palu-reference.md §8).
//
// Inputs  a dense WeightSource + one LowRankKV pair per layer (compress::decompose_projection).
// Output  an HF directory: k_proj/v_proj replaced by VT [Σ r_g, d_model] and U.{g} [s·d_head, r_g]
//         (+ U.{g}.bias), every other tensor copied, config.json with head_wise_ranks and the palu
//         block, the tokenizer files. export_dense re-multiplies W = concat_g U_g·VT_g in f64.
// Atomicity: everything goes into a hidden staging directory beside out_dir, renamed into place
// only when complete; the staging directory is removed on any error (StagingDir below).
#include "palu/pipeline/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <set>

#include "palu/calib/tokenizer.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/log.h"
#include "palu/core/sysinfo.h"
#include "palu/formats/gguf.h"
#include "palu/formats/gguf_writer.h"
#include "palu/formats/hf_model.h"
#include "palu/formats/model_loader.h"
#include "palu/formats/safetensors.h"

namespace palu::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;
using ll = long long;

namespace {

constexpr int kFormatVersion = 1;

// Tokenizer side files of an HF directory, copied as they are.
const char* const kHfTokenizerFiles[] = {"tokenizer.json",          "tokenizer_config.json",
                                         "special_tokens_map.json", "tokenizer.model",
                                         "generation_config.json",  "tokenizer.gguf"};

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The dense k_proj / v_proj weight or bias of a layer (replaced by factors in a compressed one).
bool is_dense_kv(const std::string& name) {
    for (const char* s : {".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                          ".self_attn.k_proj.bias", ".self_attn.v_proj.bias"})
        if (ends_with(name, s)) return true;
    return false;
}

// Any tensor of a k_proj / v_proj module (dense or factor).
bool is_kv_module_tensor(const std::string& name) {
    return name.find(".self_attn.k_proj.") != std::string::npos ||
           name.find(".self_attn.v_proj.") != std::string::npos;
}

std::string kv_prefix(int64_t layer, char which) {
    return strfmt("model.layers.%lld.self_attn.%c_proj", static_cast<ll>(layer), which);
}

struct ArchNames {
    const char* base_class;  // transformers class of the base model
    const char* palu_type;   // reference model_type
    const char* palu_class;  // reference architectures entry (its spelling, §8)
};

ArchNames arch_names(const std::string& arch) {
    if (arch == "llama") return {"LlamaForCausalLM", "palullama", "PaluLlamaForCausalLM"};
    if (arch == "mistral") return {"MistralForCausalLM", "palumistral", "PaluMistralForCausalLM"};
    if (arch == "qwen2") return {"Qwen2ForCausalLM", "paluqwen2", "PaluQwenForCausalLM"};
    PALU_THROW(UsageError,
               "checkpoint: architecture '%s' is not supported: expected llama, mistral "
               "or qwen2",
               arch.c_str());
}

DType parse_float_dtype(const std::string& s, const char* option) {
    if (s == "f32") return DType::F32;
    if (s == "f16") return DType::F16;
    if (s == "bf16") return DType::BF16;
    PALU_THROW(UsageError, "checkpoint: %s '%s' is not supported: expected f32, f16 or bf16",
               option, s.c_str());
}

// Tensors to write: borrowed bytes (mmap'd source) or bytes owned here, alive until the write.
struct TensorList {
    std::deque<std::vector<uint8_t>> storage;
    std::vector<formats::TensorToWrite> list;

    void add_raw(std::string name, DType dt, std::vector<int64_t> shape,
                 std::span<const uint8_t> bytes) {
        list.push_back({std::move(name), dt, std::move(shape), bytes});
    }
    // f32 values -> `dt` (round to nearest even). Non-finite values, or values that overflow the
    // half type, would silently corrupt the model: NumericalError naming the tensor.
    void add_f32(std::string name, DType dt, std::vector<int64_t> shape, const float* v, size_t n,
                 const char* stage) {
        std::vector<uint8_t> bytes(n * dtype_size(dt));
        for (size_t i = 0; i < n; ++i) {
            PALU_CHECK(std::isfinite(v[i]), NumericalError,
                       "%s: tensor '%s' element %zu is %g: expected a finite value", stage,
                       name.c_str(), i, static_cast<double>(v[i]));
            if (dt == DType::F32) {
                std::memcpy(bytes.data() + 4 * i, &v[i], 4);
                continue;
            }
            const uint16_t h = dt == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
            const float back = dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
            PALU_CHECK(std::isfinite(back), NumericalError,
                       "%s: tensor '%s' element %zu = %g overflows %s; hint: store it as f32",
                       stage, name.c_str(), i, static_cast<double>(v[i]), dtype_name(dt));
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
        storage.push_back(std::move(bytes));
        list.push_back({std::move(name), dt, std::move(shape), storage.back()});
    }
};

// A hidden directory beside the destination that becomes the destination on commit() and is
// removed otherwise (any exception between construction and commit leaves out_dir untouched).
class StagingDir {
   public:
    StagingDir(const fs::path& out_dir, bool overwrite, const fs::path& source_dir,
               const char* stage)
        : stage_(stage) {
        PALU_CHECK(!out_dir.empty(), UsageError, "%s: empty output directory; hint: pass --out",
                   stage);
        std::error_code ec;
        final_ = fs::absolute(out_dir, ec).lexically_normal();
        if (final_.filename().empty()) final_ = final_.parent_path();  // "dir/"
        const std::string where = final_.string();
        if (fs::exists(final_, ec)) {
            PALU_CHECK(fs::is_directory(final_, ec), UsageError,
                       "%s: %s exists and is not a directory; hint: choose another --out", stage,
                       where.c_str());
            // Replacing out_dir must never delete the model being read (its directory or one
            // above it).
            const fs::path rel = fs::weakly_canonical(source_dir, ec)
                                     .lexically_relative(fs::weakly_canonical(final_, ec));
            const bool holds_source = !source_dir.empty() && !rel.empty() && *rel.begin() != "..";
            PALU_CHECK(!holds_source, UsageError,
                       "%s: %s contains the source model (%s): expected a new directory; hint: "
                       "choose another --out",
                       stage, where.c_str(), source_dir.string().c_str());
            PALU_CHECK(overwrite || fs::is_empty(final_, ec), UsageError,
                       "%s: %s exists and is not empty; hint: pass --overwrite to replace it or "
                       "choose another --out",
                       stage, where.c_str());
        }
        const fs::path parent = final_.parent_path();
        fs::create_directories(parent, ec);
        PALU_CHECK(!ec, IoError, "%s: cannot create directory %s: %s; hint: choose another --out",
                   stage, parent.string().c_str(), ec.message().c_str());
        std::string name = ".";
        name += final_.filename().string();
        const std::string pid = std::to_string(static_cast<long>(::getpid()));
        tmp_ = parent / (name + ".tmp-" + pid);
        backup_ = parent / (name + ".old-" + pid);
        fs::remove_all(tmp_, ec);  // a leftover of a killed run with the same pid
        ec.clear();
        fs::create_directory(tmp_, ec);
        PALU_CHECK(!ec, IoError, "%s: cannot create directory %s: %s; hint: choose another --out",
                   stage, tmp_.string().c_str(), ec.message().c_str());
        // Root ignores directory permissions for mkdir; a real write also catches read-only mounts.
        const fs::path probe = tmp_ / ".write-test";
        std::ofstream f(probe);
        f << "x";
        f.close();
        PALU_CHECK(f.good(), IoError, "%s: cannot write into %s; hint: choose another --out", stage,
                   parent.string().c_str());
        fs::remove(probe, ec);
    }
    StagingDir(const StagingDir&) = delete;
    StagingDir& operator=(const StagingDir&) = delete;
    ~StagingDir() {
        if (committed_) return;
        std::error_code ec;
        fs::remove_all(tmp_, ec);
    }

    const fs::path& path() const { return tmp_; }
    const fs::path& final_path() const { return final_; }

    /// Moves the staged directory into place; an existing out_dir (checked empty or --overwrite)
    /// is moved aside first and deleted only after the rename succeeded.
    void commit() {
        std::error_code ec;
        const bool had_old = fs::exists(final_, ec);
        if (had_old) {
            fs::remove_all(backup_, ec);
            fs::rename(final_, backup_, ec);
            PALU_CHECK(!ec, IoError, "%s: cannot move the old %s aside: %s", stage_,
                       final_.string().c_str(), ec.message().c_str());
        }
        fs::rename(tmp_, final_, ec);
        if (ec) {
            std::error_code ec2;
            if (had_old) fs::rename(backup_, final_, ec2);
            PALU_THROW(IoError, "%s: cannot rename %s to %s: %s; hint: choose another --out",
                       stage_, tmp_.string().c_str(), final_.string().c_str(),
                       ec.message().c_str());
        }
        committed_ = true;
        if (had_old) fs::remove_all(backup_, ec);
    }

   private:
    const char* stage_;
    fs::path final_, tmp_, backup_;
    bool committed_ = false;
};

// Written and fsync'ed before the directory rename, like the safetensors files.
void write_text_file(const fs::path& path, const std::string& text, const char* stage) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    size_t done = 0;
    while (ok && done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        ok = n > 0;
        if (ok) done += static_cast<size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    if (fd >= 0) ok = ::close(fd) == 0 && ok;
    PALU_CHECK(ok, IoError, "%s: cannot write %s: %s; hint: choose another --out", stage,
               path.string().c_str(), std::strerror(errno));
}

void copy_file_into(const fs::path& src, const fs::path& dir, const char* stage) {
    std::error_code ec;
    fs::copy_file(src, dir / src.filename(), fs::copy_options::overwrite_existing, ec);
    PALU_CHECK(!ec, IoError, "%s: cannot copy %s into %s: %s", stage, src.string().c_str(),
               dir.string().c_str(), ec.message().c_str());
}

// config.json text: keys sorted (as transformers' save_pretrained writes them), except that the
// palu block starts with format_version and head_wise_ranks (when given) is in layer order.
std::string config_text(const json& cfg, const nlohmann::ordered_json* head_wise = nullptr) {
    nlohmann::ordered_json out = nlohmann::ordered_json::parse(cfg.dump());
    // Layer order (0, 1, ..., 10), as the reference writes it, rather than string order.
    if (head_wise) out["head_wise_ranks"] = *head_wise;
    if (cfg.contains("palu") && cfg["palu"].is_object() && cfg["palu"].contains("format_version")) {
        nlohmann::ordered_json p;
        p["format_version"] = nlohmann::ordered_json::parse(cfg["palu"]["format_version"].dump());
        for (const auto& [k, v] : cfg["palu"].items())
            if (k != "format_version") p[k] = nlohmann::ordered_json::parse(v.dump());
        out["palu"] = std::move(p);
    }
    return out.dump(2) + "\n";
}

// The source's tokenizer, as checkpoint.h lists it. Returns the file names written.
std::vector<std::string> copy_source_tokenizer(const WeightSource& src, const fs::path& dir) {
    std::vector<std::string> written;
    const fs::path model_path = src.path();
    if (src.format_name() == "gguf") {
        auto g = formats::GgufFile::open(model_path);
        formats::GgufWriter w;
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
    if (const auto* hf = dynamic_cast<const formats::HfModel*>(&src)) {
        const fs::path src_dir = hf->config_path().parent_path();
        for (const char* name : kHfTokenizerFiles) {
            if (!fs::is_regular_file(src_dir / name)) continue;
            copy_file_into(src_dir / name, dir, "checkpoint");
            written.push_back(name);
        }
    }
    // llama2.c tok<N>.bin: beside the .bin, in the HF directory or in its parent (stories260K/hf).
    for (const auto& c : calib::tokenizer_candidates(model_path, src.config().n_vocab)) {
        const std::string name = c.filename().string();
        if (name.rfind("tok", 0) != 0 || !ends_with(name, ".bin") || !fs::is_regular_file(c))
            continue;
        if (!fs::exists(dir / name)) {
            copy_file_into(c, dir, "checkpoint");
            written.push_back(name);
        }
        break;
    }
    return written;
}

// Factor shapes against the config, before anything is written. UsageError naming the layer.
void check_factors(const ModelConfig& c, const compress::LowRankKV& kv, int64_t layer, char which,
                   bool want_bias) {
    const std::string what = strfmt("checkpoint: layer %lld %c_proj factors", (ll)layer, which);
    PALU_CHECK(kv.d_model == c.d_model && kv.d_head == c.d_head, UsageError,
               "%s: expected d_model=%lld, d_head=%lld (config), got %lld, %lld", what.c_str(),
               (ll)c.d_model, (ll)c.d_head, (ll)kv.d_model, (ll)kv.d_head);
    PALU_CHECK(
        kv.group_size >= 1 && kv.n_groups() >= 1 && kv.n_groups() * kv.group_size == c.n_kv_heads,
        UsageError,
        "%s: expected n_groups x group_size = num_key_value_heads=%lld, got %lld x %lld",
        what.c_str(), (ll)c.n_kv_heads, (ll)kv.n_groups(), (ll)kv.group_size);
    int64_t sum_r = 0;
    for (int64_t r : kv.ranks) {
        PALU_CHECK(r >= 1, UsageError, "%s: expected ranks >= 1, got %lld", what.c_str(), (ll)r);
        sum_r += r;
    }
    PALU_CHECK(kv.vt.rows() == sum_r && kv.vt.cols() == c.d_model, UsageError,
               "%s: VT has wrong shape; expected [%lld,%lld] (sum of ranks, d_model), got "
               "[%lld,%lld]",
               what.c_str(), (ll)sum_r, (ll)c.d_model, (ll)kv.vt.rows(), (ll)kv.vt.cols());
    PALU_CHECK(static_cast<int64_t>(kv.u.size()) == kv.n_groups(), UsageError,
               "%s: expected %lld U factors (one per group), got %zu", what.c_str(),
               (ll)kv.n_groups(), kv.u.size());
    const int64_t w = kv.group_width();
    for (int64_t g = 0; g < kv.n_groups(); ++g) {
        const auto& u = kv.u[static_cast<size_t>(g)];
        const int64_t r = kv.ranks[static_cast<size_t>(g)];
        PALU_CHECK(u.rows() == w && u.cols() == r, UsageError,
                   "%s: U.%lld has wrong shape; expected [%lld,%lld] (group_size*d_head, rank), "
                   "got [%lld,%lld]",
                   what.c_str(), (ll)g, (ll)w, (ll)r, (ll)u.rows(), (ll)u.cols());
    }
    if (want_bias) {
        bool ok = static_cast<int64_t>(kv.bias.size()) == kv.n_groups();
        for (size_t g = 0; ok && g < kv.bias.size(); ++g)
            ok = static_cast<int64_t>(kv.bias[g].size()) == w;
        PALU_CHECK(ok, UsageError,
                   "%s: the source has a %c_proj bias: expected %lld group biases of %lld values, "
                   "got %zu groups",
                   what.c_str(), which, (ll)kv.n_groups(), (ll)w, kv.bias.size());
    } else {
        bool none = true;
        for (const auto& b : kv.bias) none = none && b.empty();
        PALU_CHECK(none, UsageError, "%s: the source has no %c_proj bias: expected no group biases",
                   what.c_str(), which);
    }
}

void add_factors(TensorList& out, const compress::LowRankKV& kv, const std::string& prefix,
                 DType dt) {
    out.add_f32(prefix + ".VT.weight", dt, {kv.vt.rows(), kv.vt.cols()}, kv.vt.data(),
                static_cast<size_t>(kv.vt.size()), "checkpoint");
    for (int64_t g = 0; g < kv.n_groups(); ++g) {
        const auto& u = kv.u[static_cast<size_t>(g)];
        const std::string ug = strfmt("%s.U.%lld", prefix.c_str(), (ll)g);
        out.add_f32(ug + ".weight", dt, {u.rows(), u.cols()}, u.data(),
                    static_cast<size_t>(u.size()), "checkpoint");
        if (!kv.bias.empty() && !kv.bias[static_cast<size_t>(g)].empty()) {
            const auto& b = kv.bias[static_cast<size_t>(g)];
            out.add_f32(ug + ".bias", dt, {static_cast<int64_t>(b.size())}, b.data(), b.size(),
                        "checkpoint");
        }
    }
}

fs::path source_dir_of(const WeightSource& src) {
    if (const auto* hf = dynamic_cast<const formats::HfModel*>(&src))
        return hf->config_path().parent_path();
    const fs::path p = src.path();
    return fs::is_directory(p) ? p : p.parent_path();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* torch_dtype_name(DType dt) {
    return dt == DType::F16 ? "float16" : dt == DType::BF16 ? "bfloat16" : "float32";
}

}  // namespace

bool is_compressed_checkpoint(const WeightSource& src) {
    return src.has_tensor("model.layers.0.self_attn.k_proj.VT.weight");
}

json config_json_for(const ModelConfig& c, const std::string& torch_dtype) {
    const ArchNames names = arch_names(c.architecture);
    // parse_hf_config derives the bias flags from model_type + attention_bias; refuse what it
    // cannot express rather than write a config that reads back as another model.
    if (c.architecture == "qwen2") {
        PALU_CHECK(c.qkv_bias && !c.o_bias, UsageError,
                   "checkpoint: qwen2 config with qkv_bias=%d, o_bias=%d: expected q/k/v biases "
                   "and no o_proj bias (what config.json can express for qwen2)",
                   c.qkv_bias, c.o_bias);
    } else {
        PALU_CHECK(c.qkv_bias == c.o_bias, UsageError,
                   "checkpoint: %s config with qkv_bias=%d, o_bias=%d: expected both or neither "
                   "(config.json attention_bias)",
                   c.architecture.c_str(), c.qkv_bias, c.o_bias);
    }
    json j;
    j["architectures"] = {names.base_class};
    j["model_type"] = c.architecture;
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_ff;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.n_kv_heads;
    j["head_dim"] = c.d_head;
    j["vocab_size"] = c.n_vocab;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["rms_norm_eps"] = c.rms_norm_eps;
    j["rope_theta"] = c.rope_theta;
    const RopeScaling& rs = c.rope_scaling;
    if (rs.type == "none") {
        j["rope_scaling"] = nullptr;
    } else if (rs.type == "linear") {
        j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
    } else if (rs.type == "llama3") {
        j["rope_scaling"] = {
            {"rope_type", "llama3"},
            {"factor", rs.factor},
            {"low_freq_factor", rs.low_freq_factor},
            {"high_freq_factor", rs.high_freq_factor},
            {"original_max_position_embeddings", rs.original_max_position_embeddings}};
    } else {
        PALU_THROW(UsageError,
                   "checkpoint: rope scaling '%s' is not supported: expected none, "
                   "linear or llama3",
                   rs.type.c_str());
    }
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    if (c.architecture != "qwen2") j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
    j["hidden_act"] = "silu";
    j["bos_token_id"] = c.bos_token_id >= 0 ? json(c.bos_token_id) : json(nullptr);
    if (c.eos_token_ids.empty())
        j["eos_token_id"] = nullptr;
    else if (c.eos_token_ids.size() == 1)
        j["eos_token_id"] = c.eos_token_ids[0];
    else
        j["eos_token_id"] = c.eos_token_ids;
    j["torch_dtype"] = torch_dtype;
    j["use_cache"] = true;
    return j;
}

void write_compressed_checkpoint(const WeightSource& src,
                                 const std::vector<CompressedLayer>& layers, const json& palu_block,
                                 const fs::path& out_dir, const CheckpointWriteOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = src.config();
    const ArchNames names = arch_names(c.architecture);
    PALU_CHECK(!is_compressed_checkpoint(src), UsageError,
               "checkpoint: %s is already a compressed palu checkpoint: expected a dense model; "
               "hint: compress the original model",
               src.path().c_str());
    PALU_CHECK(static_cast<int64_t>(layers.size()) == c.n_layers, UsageError,
               "checkpoint: expected factors for %lld layers (num_hidden_layers), got %zu",
               (ll)c.n_layers, layers.size());
    PALU_CHECK(palu_block.is_object() || palu_block.is_null(), UsageError,
               "checkpoint: palu block: expected a JSON object, got %s", palu_block.type_name());
    if (palu_block.is_object() && palu_block.contains("format_version"))
        PALU_CHECK(palu_block["format_version"] == kFormatVersion, UsageError,
                   "checkpoint: palu.format_version: expected %d, got %s", kFormatVersion,
                   palu_block["format_version"].dump().c_str());
    for (size_t l = 0; l < layers.size(); ++l) {
        const int64_t li = static_cast<int64_t>(l);
        check_factors(c, layers[l].k, li, 'k', src.has_tensor(kv_prefix(li, 'k') + ".bias"));
        check_factors(c, layers[l].v, li, 'v', src.has_tensor(kv_prefix(li, 'v') + ".bias"));
    }

    DType factor_dt = DType::F32;
    if (options.factor_dtype == "auto") {
        const std::string k0 = kv_prefix(0, 'k') + ".weight";
        for (const auto& t : src.tensors())
            if (t.name == k0 && (t.storage_type == "F16" || t.storage_type == "BF16"))
                factor_dt = *parse_dtype(t.storage_type);
    } else {
        factor_dt = parse_float_dtype(options.factor_dtype, "factor dtype");
    }

    StagingDir stage(out_dir, options.overwrite, source_dir_of(src), "checkpoint");
    const auto* hf = dynamic_cast<const formats::HfModel*>(&src);

    // Untouched tensors: raw bytes from safetensors sources; f32 (as the engine sees them) from
    // GGUF / llama2.c sources, whose storage has no safetensors equivalent.
    TensorList tensors;
    std::deque<Tensor> converted;
    size_t n_copied = 0;
    for (const auto& t : src.tensors()) {
        if (is_dense_kv(t.name)) continue;
        ++n_copied;
        if (hf) {
            const auto& e = hf->checkpoint().at(t.name);
            tensors.add_raw(t.name, e.info->dtype, e.info->shape, e.file->bytes(*e.info));
        } else {
            converted.push_back(src.load_f32(t.name));
            const Tensor& x = converted.back();
            const auto* p = reinterpret_cast<const uint8_t*>(x.data());
            tensors.add_raw(t.name, DType::F32, x.shape(),
                            std::span<const uint8_t>(p, x.vec().size() * sizeof(float)));
        }
    }
    nlohmann::ordered_json head_wise = nlohmann::ordered_json::object();
    for (size_t l = 0; l < layers.size(); ++l) {
        const int64_t li = static_cast<int64_t>(l);
        add_factors(tensors, layers[l].k, kv_prefix(li, 'k'), factor_dt);
        add_factors(tensors, layers[l].v, kv_prefix(li, 'v'), factor_dt);
        head_wise[kv_prefix(li, 'k')] = layers[l].k.ranks;
        head_wise[kv_prefix(li, 'v')] = layers[l].v.ranks;
    }
    const size_t n_tensors = tensors.list.size();
    uint64_t n_bytes = 0;
    for (const auto& t : tensors.list) n_bytes += t.bytes.size();
    const std::map<std::string, std::string> metadata = {
        {"format", "pt"}, {"palu_format_version", std::to_string(kFormatVersion)}};
    formats::write_safetensors(stage.path(), std::move(tensors.list), metadata,
                               options.max_shard_bytes);

    json cfg = hf ? hf->raw_config() : config_json_for(c, "float32");
    cfg["model_type"] = names.palu_type;
    cfg["architectures"] = {names.palu_class};
    cfg["head_wise_ranks"] = json::parse(head_wise.dump());
    json block = palu_block.is_object() ? palu_block : json::object();
    block["format_version"] = kFormatVersion;
    cfg["palu"] = std::move(block);
    write_text_file(stage.path() / "config.json", config_text(cfg, &head_wise), "checkpoint");

    const auto tok = copy_source_tokenizer(src, stage.path());
    if (tok.empty())
        PALU_LOG_WARN("checkpoint",
                      "no tokenizer found for %s; the checkpoint has none (pass "
                      "--tokenizer when using it)",
                      src.path().c_str());
    stage.commit();
    std::string tok_list;
    for (const auto& t : tok) tok_list += (tok_list.empty() ? "" : ", ") + t;
    PALU_LOG_INFO("checkpoint",
                  "wrote %s: %zu tensors (%zu copied, factors %s), %s, tokenizer: %s; %.2f s, "
                  "peak RSS %s",
                  stage.final_path().string().c_str(), n_tensors, n_copied, dtype_name(factor_dt),
                  bytes_str(static_cast<double>(n_bytes)).c_str(),
                  tok_list.empty() ? "none" : tok_list.c_str(), seconds_since(t0),
                  bytes_str(static_cast<double>(peak_rss_bytes())).c_str());
}

void export_dense(const WeightSource& compressed, const fs::path& out_dir,
                  const DenseExportOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    PALU_CHECK(is_compressed_checkpoint(compressed), UsageError,
               "export: %s is not a compressed palu checkpoint: expected tensor "
               "'model.layers.0.self_attn.k_proj.VT.weight', got none; hint: export the output "
               "of palu-compress",
               compressed.path().c_str());
    const auto* hf = dynamic_cast<const formats::HfModel*>(&compressed);
    PALU_CHECK(hf != nullptr, UsageError,
               "export: %s: expected a Hugging Face directory (a palu checkpoint), got %s",
               compressed.path().c_str(), compressed.format_name().c_str());
    const DType dt = parse_float_dtype(options.dtype, "--dtype");
    const ModelConfig& c = hf->config();
    const json& raw = hf->raw_config();
    const std::string src_name = hf->config_path().string();
    PALU_CHECK(raw.contains("head_wise_ranks") && raw["head_wise_ranks"].is_object(), FormatError,
               "export: %s: key 'head_wise_ranks': expected an object of per-group ranks, got %s",
               src_name.c_str(),
               raw.contains("head_wise_ranks") ? raw["head_wise_ranks"].type_name() : "none");
    const json& hw = raw["head_wise_ranks"];
    const ArchNames names = arch_names(c.architecture);

    StagingDir stage(out_dir, options.overwrite, hf->config_path().parent_path(), "export");
    TensorList tensors;
    size_t n_copied = 0;
    for (const auto& e : hf->checkpoint().tensors()) {
        if (is_kv_module_tensor(e.info->name)) continue;
        tensors.add_raw(e.info->name, e.info->dtype, e.info->shape, e.file->bytes(*e.info));
        ++n_copied;
    }

    for (int64_t l = 0; l < c.n_layers; ++l) {
        for (char which : {'k', 'v'}) {
            const std::string prefix = kv_prefix(l, which);
            PALU_CHECK(hw.contains(prefix) && hw[prefix].is_array() && !hw[prefix].empty(),
                       FormatError,
                       "export: %s: head_wise_ranks['%s']: expected a non-empty list of ranks, "
                       "got %s",
                       src_name.c_str(), prefix.c_str(),
                       hw.contains(prefix) ? hw[prefix].dump().c_str() : "none");
            std::vector<int64_t> ranks;
            int64_t sum_r = 0;
            for (const auto& r : hw[prefix]) {
                PALU_CHECK(r.is_number_integer() && r.get<int64_t>() >= 1, FormatError,
                           "export: %s: head_wise_ranks['%s']: expected integers >= 1, got %s",
                           src_name.c_str(), prefix.c_str(), r.dump().c_str());
                ranks.push_back(r.get<int64_t>());
                sum_r += ranks.back();
            }
            const int64_t n_groups = static_cast<int64_t>(ranks.size());
            PALU_CHECK(c.n_kv_heads % n_groups == 0, FormatError,
                       "export: %s: head_wise_ranks['%s'] has %lld groups: expected a divisor of "
                       "num_key_value_heads=%lld",
                       src_name.c_str(), prefix.c_str(), (ll)n_groups, (ll)c.n_kv_heads);
            const int64_t width = c.n_kv_heads / n_groups * c.d_head;
            const Tensor vt = hf->load_f32(prefix + ".VT.weight");  // [Σ r_g, d_model]
            const std::vector<int64_t> vt_want{sum_r, c.d_model};
            PALU_CHECK(vt.shape() == vt_want, ShapeError,
                       "export: %s: tensor '%s.VT.weight' has wrong shape; expected %s, got %s "
                       "(head_wise_ranks, hidden_size=%lld)",
                       src_name.c_str(), prefix.c_str(), shape_str(vt_want).c_str(),
                       shape_str(vt.shape()).c_str(), (ll)c.d_model);
            Eigen::Map<const RowMatrixXf> vt_m(vt.data(), sum_r, c.d_model);
            // W [n_kv·d_head, d_model] = concat_g U_g·VT_g: f64 products, rounded once.
            RowMatrixXf w(c.d_kv(), c.d_model);
            std::vector<float> bias;
            int64_t off = 0;
            for (int64_t g = 0; g < n_groups; ++g) {
                const int64_t r = ranks[static_cast<size_t>(g)];
                const std::string ug = strfmt("%s.U.%lld", prefix.c_str(), (ll)g);
                const Tensor u = hf->load_f32(ug + ".weight");  // [s·d_head, r_g]
                const std::vector<int64_t> u_want{width, r};
                PALU_CHECK(u.shape() == u_want, ShapeError,
                           "export: %s: tensor '%s.weight' has wrong shape; expected %s, got %s "
                           "(head_wise_ranks, num_key_value_heads=%lld, head_dim=%lld)",
                           src_name.c_str(), ug.c_str(), shape_str(u_want).c_str(),
                           shape_str(u.shape()).c_str(), (ll)c.n_kv_heads, (ll)c.d_head);
                Eigen::Map<const RowMatrixXf> u_m(u.data(), width, r);
                const RowMatrixXd prod =
                    u_m.cast<double>() * vt_m.middleRows(off, r).cast<double>();
                w.middleRows(g * width, width) = prod.cast<float>();
                off += r;
                const bool has_bias = hf->has_tensor(ug + ".bias");
                PALU_CHECK(has_bias == c.qkv_bias, FormatError,
                           "export: %s: tensor '%s.bias': expected %s (config: q/k/v bias %s), "
                           "got %s",
                           src_name.c_str(), ug.c_str(), c.qkv_bias ? "present" : "absent",
                           c.qkv_bias ? "on" : "off", has_bias ? "one" : "none");
                if (has_bias) {
                    const Tensor b = hf->load_f32(ug + ".bias");
                    PALU_CHECK(b.numel() == width && b.ndim() == 1, ShapeError,
                               "export: %s: tensor '%s.bias' has wrong shape; expected [%lld], "
                               "got %s",
                               src_name.c_str(), ug.c_str(), (ll)width,
                               shape_str(b.shape()).c_str());
                    bias.insert(bias.end(), b.vec().begin(), b.vec().end());
                }
            }
            tensors.add_f32(prefix + ".weight", dt, {c.d_kv(), c.d_model}, w.data(),
                            static_cast<size_t>(w.size()), "export");
            if (!bias.empty())
                tensors.add_f32(prefix + ".bias", dt, {c.d_kv()}, bias.data(), bias.size(),
                                "export");
        }
    }
    const size_t n_tensors = tensors.list.size();
    formats::write_safetensors(stage.path(), std::move(tensors.list), {{"format", "pt"}});

    json cfg = raw;
    cfg.erase("head_wise_ranks");
    cfg["model_type"] = c.architecture;
    cfg["architectures"] = {names.base_class};
    json block = cfg.contains("palu") && cfg["palu"].is_object() ? cfg["palu"] : json::object();
    block["exported"] = "dense";
    block["exported_dtype"] = torch_dtype_name(dt);
    cfg["palu"] = std::move(block);
    write_text_file(stage.path() / "config.json", config_text(cfg), "export");

    // The compressed directory's tokenizer files, as they are.
    const fs::path src_dir = hf->config_path().parent_path();
    std::set<std::string> tok_names(std::begin(kHfTokenizerFiles), std::end(kHfTokenizerFiles));
    std::vector<std::string> copied;
    for (const auto& entry : fs::directory_iterator(src_dir)) {
        const std::string name = entry.path().filename().string();
        const bool tok_bin = name.rfind("tok", 0) == 0 && ends_with(name, ".bin");
        if (!entry.is_regular_file() || !(tok_names.count(name) || tok_bin)) continue;
        copy_file_into(entry.path(), stage.path(), "export");
        copied.push_back(name);
    }
    if (copied.empty())
        PALU_LOG_WARN("export", "%s has no tokenizer files; the export has none",
                      src_dir.string().c_str());
    stage.commit();
    PALU_LOG_INFO("export",
                  "wrote %s: dense %s k/v_proj for %lld layers, %zu tensors (%zu "
                  "copied), %zu tokenizer files; %.2f s, peak RSS %s",
                  stage.final_path().string().c_str(), dtype_name(dt), (ll)c.n_layers, n_tensors,
                  n_copied, copied.size(), seconds_since(t0),
                  bytes_str(static_cast<double>(peak_rss_bytes())).c_str());
}

void run_export(const ExportParams& p) {
    PALU_CHECK(p.to != "mla" && p.to != "gguf", UsageError,
               "export: --to %s is not implemented yet: expected dense", p.to.c_str());
    PALU_CHECK(p.to == "dense", UsageError, "export: --to '%s': expected dense, mla or gguf",
               p.to.c_str());
    PALU_CHECK(!p.out_path.empty(), UsageError, "export: no output directory; hint: pass --out");
    auto src = formats::open_model(p.model_path);
    export_dense(*src, p.out_path, p.dense);
}

}  // namespace palu::pipeline
