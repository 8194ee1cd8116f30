// palu formats: llama2.c legacy (v0) checkpoint reader -> WeightSource (HF names and RoPE layout).
// Validation happens on the 28-byte header and the file size alone, before the file is mapped;
// tensors are copied out of the mapping and their Q/K rows permuted only when asked for.
#include "palu/formats/llama2c.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "io_util.h"
#include "palu/core/checked.h"
#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/formats/model_loader.h"

namespace palu::formats {

namespace {

// llama2.c's export.py writes versions >= 1 with this magic ("ak42" as a little-endian uint32).
constexpr uint32_t kLlama2cV1Magic = 0x616b3432;

std::string header_str(const Llama2cHeader& h) {
    return strfmt(
        "dim=%d hidden_dim=%d n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d "
        "seq_len=%d",
        h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len);
}

void check_range(const std::string& source, const Llama2cHeader& h, const char* field,
                 int64_t value, int64_t max) {
    PALU_CHECK(value >= 1 && value <= max, FormatError,
               "formats: %s: llama2.c header field %s: expected 1..%lld, got %lld (header %s); "
               "hint: not a llama2.c legacy checkpoint?",
               source.c_str(), field, static_cast<long long>(max), static_cast<long long>(value),
               header_str(h).c_str());
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

Llama2cLayout parse_llama2c_layout(std::span<const uint8_t> head, uint64_t file_size,
                                   const std::string& source) {
    PALU_CHECK(file_size >= kLlama2cHeaderBytes, FormatError,
               "formats: %s: llama2.c checkpoint too small: expected at least %llu header bytes, "
               "got %llu; hint: incomplete download?",
               source.c_str(), static_cast<unsigned long long>(kLlama2cHeaderBytes),
               static_cast<unsigned long long>(file_size));
    PALU_ASSERT(head.size() >= kLlama2cHeaderBytes, "caller passes the first 28 bytes");

    Llama2cLayout out;
    Llama2cHeader& h = out.header;
    int32_t fields[7];
    std::memcpy(fields, head.data(), sizeof(fields));
    h = Llama2cHeader{fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]};

    uint32_t magic;
    std::memcpy(&magic, head.data(), 4);
    if (magic == kLlama2cV1Magic) {
        int32_t version;
        std::memcpy(&version, head.data() + 4, 4);
        PALU_THROW(FormatError,
                   "formats: %s: llama2.c export version %d (magic 0x616b3432 'ak42'): expected "
                   "the legacy "
                   "v0 format (7 x int32 header); hint: re-export with llama2.c export.py "
                   "--version 0",
                   source.c_str(), version);
    }

    check_range(source, h, "dim", h.dim, kLlama2cMaxDim);
    check_range(source, h, "hidden_dim", h.hidden_dim, kLlama2cMaxHiddenDim);
    check_range(source, h, "n_layers", h.n_layers, kLlama2cMaxLayers);
    check_range(source, h, "n_heads", h.n_heads, h.dim);
    check_range(source, h, "n_kv_heads", h.n_kv_heads, h.n_heads);
    // int64 before abs: vocab_size may be INT32_MIN.
    const int64_t n_vocab = h.vocab_size < 0 ? -int64_t(h.vocab_size) : int64_t(h.vocab_size);
    check_range(source, h, "|vocab_size|", n_vocab, kLlama2cMaxVocab);
    check_range(source, h, "seq_len", h.seq_len, kLlama2cMaxSeqLen);
    PALU_CHECK(h.dim % h.n_heads == 0, FormatError,
               "formats: %s: llama2.c header: dim=%d is not a multiple of n_heads=%d",
               source.c_str(), h.dim, h.n_heads);
    PALU_CHECK(h.n_heads % h.n_kv_heads == 0, FormatError,
               "formats: %s: llama2.c header: n_heads=%d is not a multiple of n_kv_heads=%d",
               source.c_str(), h.n_heads, h.n_kv_heads);
    const int64_t d_head = h.dim / h.n_heads;
    PALU_CHECK(d_head % 2 == 0, FormatError,
               "formats: %s: llama2.c header: head size dim/n_heads=%lld must be even for RoPE "
               "pairs (header %s)",
               source.c_str(), static_cast<long long>(d_head), header_str(h).c_str());

    out.shared_classifier = h.vocab_size > 0;
    const int64_t dim = h.dim, hidden = h.hidden_dim, n_layers = h.n_layers;
    const int64_t d_kv = d_head * h.n_kv_heads;

    ModelConfig& c = out.config;
    c.architecture = "llama";
    c.d_model = dim;
    c.n_layers = n_layers;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.d_head = d_head;
    c.d_ff = hidden;
    c.n_vocab = n_vocab;
    c.max_position_embeddings = h.seq_len;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = out.shared_classifier;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    c.validate(source);

    // Sections in file order. The bounds above keep every product far below 2^63, but the sums
    // go through the checked helpers anyway so that a change of bounds cannot introduce overflow.
    std::vector<std::pair<std::string, std::vector<int64_t>>> plan = {
        {"token_embedding", {n_vocab, dim}},
        {"rms_att", {n_layers, dim}},
        {"wq", {n_layers, dim, dim}},
        {"wk", {n_layers, d_kv, dim}},
        {"wv", {n_layers, d_kv, dim}},
        {"wo", {n_layers, dim, dim}},
        {"rms_ffn", {n_layers, dim}},
        {"w1", {n_layers, hidden, dim}},
        {"w2", {n_layers, dim, hidden}},
        {"w3", {n_layers, hidden, dim}},
        {"rms_final", {dim}},
        {"freq_cis_real", {int64_t(h.seq_len), d_head / 2}},
        {"freq_cis_imag", {int64_t(h.seq_len), d_head / 2}},
    };
    if (!out.shared_classifier) plan.push_back({"wcls", {n_vocab, dim}});

    uint64_t offset = kLlama2cHeaderBytes;
    for (auto& [name, shape] : plan) {
        auto numel = numel_no_overflow(shape);
        std::optional<uint64_t> n_bytes =
            numel ? mul_no_overflow(*numel, sizeof(float)) : std::nullopt;
        std::optional<uint64_t> end = n_bytes ? add_no_overflow(offset, *n_bytes) : std::nullopt;
        PALU_CHECK(end.has_value(), FormatError,
                   "formats: %s: llama2.c section '%s' %s: byte size overflows (header %s)",
                   source.c_str(), name.c_str(), shape_str(shape).c_str(), header_str(h).c_str());
        out.sections.push_back(Llama2cSection{name, shape, offset, *n_bytes});
        offset = *end;
    }
    out.expected_file_size = offset;

    if (file_size < out.expected_file_size) {
        const Llama2cSection* cut = nullptr;
        for (const auto& s : out.sections)
            if (s.offset + s.n_bytes > file_size) {
                cut = &s;
                break;
            }
        PALU_ASSERT(cut != nullptr, "a short file cuts some section");
        PALU_THROW(
            FormatError,
            "formats: %s: llama2.c checkpoint truncated: expected %llu bytes, got %llu "
            "(%llu bytes missing; section '%s' %s at bytes [%llu, %llu) is cut; header %s); "
            "hint: incomplete download?",
            source.c_str(), static_cast<unsigned long long>(out.expected_file_size),
            static_cast<unsigned long long>(file_size),
            static_cast<unsigned long long>(out.expected_file_size - file_size), cut->name.c_str(),
            shape_str(cut->shape).c_str(), static_cast<unsigned long long>(cut->offset),
            static_cast<unsigned long long>(cut->offset + cut->n_bytes), header_str(h).c_str());
    }
    PALU_CHECK(file_size == out.expected_file_size, FormatError,
               "formats: %s: llama2.c checkpoint size: expected %llu bytes, got %llu (%llu "
               "trailing bytes; header %s); hint: not a legacy v0 checkpoint, or a header from "
               "another model?",
               source.c_str(), static_cast<unsigned long long>(out.expected_file_size),
               static_cast<unsigned long long>(file_size),
               static_cast<unsigned long long>(file_size - out.expected_file_size),
               header_str(h).c_str());
    return out;
}

void llama2c_rows_to_rotate_half(const float* src, float* dst, int64_t n_heads, int64_t d_head,
                                 int64_t n_in) {
    PALU_ASSERT(d_head % 2 == 0, "odd d_head");
    const int64_t half = d_head / 2;
    const size_t row_bytes = size_t(n_in) * sizeof(float);
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < half; ++i)
            for (int64_t j = 0; j < 2; ++j)
                std::memcpy(dst + (h * d_head + j * half + i) * n_in,
                            src + (h * d_head + 2 * i + j) * n_in, row_bytes);
}

void rotate_half_rows_to_llama2c(const float* src, float* dst, int64_t n_heads, int64_t d_head,
                                 int64_t n_in) {
    PALU_ASSERT(d_head % 2 == 0, "odd d_head");
    const int64_t half = d_head / 2;
    const size_t row_bytes = size_t(n_in) * sizeof(float);
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < half; ++i)
            for (int64_t j = 0; j < 2; ++j)
                std::memcpy(dst + (h * d_head + 2 * i + j) * n_in,
                            src + (h * d_head + j * half + i) * n_in, row_bytes);
}

// ---- Llama2cModel -----------------------------------------------------------------------------

struct Llama2cModel::Storage {
    detail::MappedFile map;      // a memory-mapped file, or
    std::vector<uint8_t> owned;  // an in-memory copy
    const uint8_t* data() const { return map.data() ? map.data() : owned.data(); }
};

Llama2cModel::Llama2cModel(std::unique_ptr<Storage> storage, std::string path)
    : storage_(std::move(storage)), path_(std::move(path)) {}

Llama2cModel::~Llama2cModel() = default;

std::unique_ptr<Llama2cModel> Llama2cModel::open(const std::filesystem::path& file) {
    const std::string src = file.string();
    Fd fd;
    fd.fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    PALU_CHECK(fd.fd >= 0, IoError, "formats: %s: cannot open for reading: %s", src.c_str(),
               std::strerror(errno));
    struct stat st {};
    PALU_CHECK(::fstat(fd.fd, &st) == 0, IoError, "formats: %s: cannot stat: %s", src.c_str(),
               std::strerror(errno));
    PALU_CHECK(S_ISREG(st.st_mode), IoError, "formats: %s: not a regular file", src.c_str());
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);

    uint8_t head[kLlama2cHeaderBytes] = {};
    size_t n_head = size_t(std::min<uint64_t>(file_size, kLlama2cHeaderBytes));
    ssize_t got = ::pread(fd.fd, head, n_head, 0);
    PALU_CHECK(got == ssize_t(n_head), IoError, "formats: %s: cannot read the header: %s",
               src.c_str(), got < 0 ? std::strerror(errno) : "short read");
    Llama2cLayout layout =
        parse_llama2c_layout(std::span<const uint8_t>(head, n_head), file_size, src);

    auto storage = std::make_unique<Storage>();
    storage->map = detail::MappedFile::map(fd.fd, static_cast<size_t>(file_size), src);

    std::unique_ptr<Llama2cModel> m(new Llama2cModel(std::move(storage), src));
    m->layout_ = std::move(layout);
    m->index_tensors();
    return m;
}

std::unique_ptr<Llama2cModel> Llama2cModel::from_bytes(std::span<const uint8_t> bytes,
                                                       const std::string& source) {
    Llama2cLayout layout = parse_llama2c_layout(bytes, bytes.size(), source);
    auto storage = std::make_unique<Storage>();
    storage->owned.assign(bytes.begin(), bytes.end());
    std::unique_ptr<Llama2cModel> m(new Llama2cModel(std::move(storage), source));
    m->layout_ = std::move(layout);
    m->index_tensors();
    return m;
}

void Llama2cModel::index_tensors() {
    const ModelConfig& c = layout_.config;
    auto section = [&](const char* name) -> const Llama2cSection& {
        for (const auto& s : layout_.sections)
            if (s.name == name) return s;
        PALU_ASSERT(false, "missing section %s", name);
    };
    auto add_global = [&](const std::string& hf, const char* sec) {
        const auto& s = section(sec);
        entries_[hf] = Entry{s.shape, s.offset, 0};
    };
    // Per-layer sections are stacked [n_layers, ...]: layer l starts at offset + l * layer_bytes.
    auto add_layers = [&](const std::string& suffix, const char* sec, int64_t n_rope_heads) {
        const auto& s = section(sec);
        std::vector<int64_t> shape(s.shape.begin() + 1, s.shape.end());
        const uint64_t layer_bytes = s.n_bytes / uint64_t(c.n_layers);
        for (int64_t l = 0; l < c.n_layers; ++l)
            entries_[strfmt("model.layers.%lld.%s", static_cast<long long>(l), suffix.c_str())] =
                Entry{shape, s.offset + uint64_t(l) * layer_bytes, n_rope_heads};
    };
    add_global("model.embed_tokens.weight", "token_embedding");
    add_layers("input_layernorm.weight", "rms_att", 0);
    add_layers("self_attn.q_proj.weight", "wq", c.n_heads);
    add_layers("self_attn.k_proj.weight", "wk", c.n_kv_heads);
    add_layers("self_attn.v_proj.weight", "wv", 0);
    add_layers("self_attn.o_proj.weight", "wo", 0);
    add_layers("post_attention_layernorm.weight", "rms_ffn", 0);
    add_layers("mlp.gate_proj.weight", "w1", 0);
    add_layers("mlp.down_proj.weight", "w2", 0);
    add_layers("mlp.up_proj.weight", "w3", 0);
    add_global("model.norm.weight", "rms_final");
    if (!layout_.shared_classifier) add_global("lm_head.weight", "wcls");
}

std::vector<StoredTensorInfo> Llama2cModel::tensors() const {
    std::vector<StoredTensorInfo> out;
    out.reserve(entries_.size());
    for (const auto& [name, e] : entries_) {
        uint64_t numel = *numel_no_overflow(e.shape);
        out.push_back(StoredTensorInfo{name, e.shape, "F32", numel * sizeof(float)});
    }
    return out;
}

bool Llama2cModel::has_tensor(const std::string& name) const {
    return entries_.count(name) > 0;
}

Tensor Llama2cModel::load_f32(const std::string& name) const {
    auto it = entries_.find(name);
    PALU_CHECK(it != entries_.end(), FormatError,
               "formats: %s: no tensor '%s' in this llama2.c checkpoint", path_.c_str(),
               name.c_str());
    const Entry& e = it->second;
    Tensor t(e.shape);
    const uint8_t* src = storage_->data() + e.offset;
    if (e.n_rope_heads > 0) {
        // Copy first: the permutation works on float rows, the mapping is raw bytes.
        std::vector<float> raw(size_t(t.numel()));
        std::memcpy(raw.data(), src, raw.size() * sizeof(float));
        llama2c_rows_to_rotate_half(raw.data(), t.data(), e.n_rope_heads, layout_.config.d_head,
                                    e.shape[1]);
    } else {
        std::memcpy(t.data(), src, size_t(t.numel()) * sizeof(float));
    }
    return t;
}

std::unique_ptr<WeightSource> open_llama2c_model(const std::filesystem::path& file) {
    return Llama2cModel::open(file);
}

}  // namespace palu::formats
