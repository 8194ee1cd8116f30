// palu formats: safetensors reader (mmap, validated before use) and sharded index; the writer
// is in safetensors_write.cpp. Inputs: .safetensors files / model.safetensors.index.json;
// outputs: validated tensor tables whose data stay mapped, and f32 tensors on request.
// Validation order follows STYLE.md "Error policy"; error ids follow the reference Rust crate's
// SafeTensorError names where one exists (HeaderTooSmall, InvalidHeaderLength, ...).
#include "palu/formats/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "io_util.h"
#include "palu/core/checked.h"
#include "palu/core/error.h"
#include "palu/core/format.h"

namespace palu::formats {

namespace fs = std::filesystem;
using nlohmann::json;
using ull = unsigned long long;

uint64_t SafetensorsTensorInfo::numel() const {
    auto n = numel_no_overflow(shape);
    PALU_ASSERT(n.has_value(), "validated shape overflowed");
    return *n;
}

struct SafetensorsFile::Impl {
    std::string path;
    std::vector<SafetensorsTensorInfo> tensors;  // sorted by name
    std::map<std::string, std::string> metadata;
    uint64_t data_offset = 0;
    uint64_t file_size = 0;
    const uint8_t* base = nullptr;  // first byte of the file
    detail::MappedFile map;
    std::vector<uint8_t> owned;  // from_memory
};

namespace {

std::string known_dtypes() {
    return "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";
}

// Steps 1-2 of the validation order: file >= 8 bytes, header length within bounds.
uint64_t check_header_length(const std::string& src, uint64_t file_size, const uint8_t* first8) {
    PALU_CHECK(
        file_size >= 8, FormatError,
        "formats: %s: file too small for a safetensors header: expected >= 8 bytes, got %llu "
        "(HeaderTooSmall)",
        src.c_str(), static_cast<ull>(file_size));
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | first8[i];  // little-endian u64
    PALU_CHECK(
        n <= kSafetensorsMaxHeader, FormatError,
        "formats: %s: header length too large: expected <= %llu bytes, got %llu; hint: not a "
        "safetensors file? (HeaderTooLarge)",
        src.c_str(), static_cast<ull>(kSafetensorsMaxHeader), static_cast<ull>(n));
    PALU_CHECK(
        n <= file_size - 8, FormatError,
        "formats: %s: header length past end of file: expected <= %llu bytes, got %llu; hint: "
        "truncated file or incomplete download? (InvalidHeaderLength)",
        src.c_str(), static_cast<ull>(file_size - 8), static_cast<ull>(n));
    return n;
}

uint64_t get_u64(const json& v, const std::string& src, const std::string& tensor,
                 const char* key) {
    PALU_CHECK(v.is_number_unsigned(), FormatError,
               "formats: %s: tensor '%s' %s: expected a non-negative integer, got %s %s "
               "(InvalidHeaderDeserialization)",
               src.c_str(), tensor.c_str(), key, v.type_name(), detail::brief_json(v).c_str());
    return v.get<uint64_t>();
}

// The __metadata__ entry: an object of strings, copied as is.
void read_metadata(const json& v, const std::string& src, SafetensorsFile::Impl& out) {
    PALU_CHECK(v.is_object(), FormatError,
               "formats: %s: __metadata__: expected an object of strings, got %s "
               "(InvalidHeaderDeserialization)",
               src.c_str(), v.type_name());
    for (auto& [k, s] : v.items()) {
        PALU_CHECK(s.is_string(), FormatError,
                   "formats: %s: __metadata__ key '%s': expected a string, got %s "
                   "(InvalidHeaderDeserialization)",
                   src.c_str(), k.c_str(), s.type_name());
        out.metadata.emplace(k, s.get<std::string>());
    }
}

// A tensor's "shape": an array of integer dims in [0, 2^63).
std::vector<int64_t> parse_shape(const json& js, const std::string& src, const std::string& name) {
    PALU_CHECK(js.is_array(), FormatError,
               "formats: %s: tensor '%s' shape: expected an array of integers, got %s "
               "(InvalidHeaderDeserialization)",
               src.c_str(), name.c_str(), js.type_name());
    std::vector<int64_t> shape;
    for (const json& d : js) {
        PALU_CHECK(d.is_number_integer(), FormatError,
                   "formats: %s: tensor '%s' shape %s: expected integer dims, got %s "
                   "(InvalidHeaderDeserialization)",
                   src.c_str(), name.c_str(), detail::brief_json(js).c_str(), d.type_name());
        bool ok =
            d.is_number_unsigned()
                ? d.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                : d.get<int64_t>() >= 0;
        PALU_CHECK(ok, FormatError,
                   "formats: %s: tensor '%s' shape %s: expected dims in [0, 2^63), got %s "
                   "(InvalidHeaderDeserialization)",
                   src.c_str(), name.c_str(), detail::brief_json(js).c_str(),
                   detail::brief_json(d).c_str());
        shape.push_back(d.get<int64_t>());
    }
    return shape;
}

// Steps 5-7 for one tensor entry: dtype known, byte size without overflow, end - begin == size.
SafetensorsTensorInfo parse_tensor_entry(const std::string& name, const json& v,
                                         const std::string& src) {
    PALU_CHECK(v.is_object(), FormatError,
               "formats: %s: tensor '%s': expected an object {dtype, shape, data_offsets}, got %s "
               "(InvalidHeaderDeserialization)",
               src.c_str(), name.c_str(), v.type_name());
    for (const char* key : {"dtype", "shape", "data_offsets"})
        PALU_CHECK(v.contains(key), FormatError,
                   "formats: %s: tensor '%s' has no '%s' (InvalidHeaderDeserialization)",
                   src.c_str(), name.c_str(), key);
    const json& jd = v["dtype"];
    const json& js = v["shape"];
    const json& jo = v["data_offsets"];
    SafetensorsTensorInfo t;
    t.name = name;

    PALU_CHECK(jd.is_string(), FormatError,
               "formats: %s: tensor '%s' dtype: expected a string, got %s "
               "(InvalidHeaderDeserialization)",
               src.c_str(), name.c_str(), jd.type_name());
    auto dt = parse_dtype(jd.get_ref<const std::string&>());
    PALU_CHECK(dt.has_value(), FormatError,
               "formats: %s: tensor '%s' has unknown dtype: expected one of %s, got '%s' "
               "(UnknownDtype)",
               src.c_str(), name.c_str(), known_dtypes().c_str(),
               jd.get_ref<const std::string&>().c_str());
    t.dtype = *dt;

    t.shape = parse_shape(js, src, name);
    auto numel = numel_no_overflow(t.shape);
    auto n_bytes = numel ? mul_no_overflow(*numel, dtype_size(t.dtype)) : std::nullopt;
    PALU_CHECK(n_bytes.has_value(), FormatError,
               "formats: %s: tensor '%s' shape %s %s: byte size overflows 64 bits "
               "(ValidationOverflow)",
               src.c_str(), name.c_str(), shape_str(t.shape).c_str(), dtype_name(t.dtype));

    PALU_CHECK(jo.is_array() && jo.size() == 2, FormatError,
               "formats: %s: tensor '%s' data_offsets: expected [begin, end], got %s "
               "(InvalidHeaderDeserialization)",
               src.c_str(), name.c_str(), detail::brief_json(jo).c_str());
    t.begin = get_u64(jo[0], src, name, "data_offsets[0]");
    t.end = get_u64(jo[1], src, name, "data_offsets[1]");
    PALU_CHECK(t.begin <= t.end, FormatError,
               "formats: %s: tensor '%s' data_offsets [%llu,%llu): expected begin <= end "
               "(InvalidOffset)",
               src.c_str(), name.c_str(), static_cast<ull>(t.begin), static_cast<ull>(t.end));
    PALU_CHECK(t.end - t.begin == *n_bytes, FormatError,
               "formats: %s: tensor '%s' data_offsets [%llu,%llu) = %llu bytes, but shape %s %s "
               "needs %llu (TensorInvalidInfo)",
               src.c_str(), name.c_str(), static_cast<ull>(t.begin), static_cast<ull>(t.end),
               static_cast<ull>(t.end - t.begin), shape_str(t.shape).c_str(), dtype_name(t.dtype),
               static_cast<ull>(*n_bytes));
    return t;
}

// Step 8: the tensors must tile the data buffer exactly, in offset order.
void check_offsets_tile_buffer(const std::vector<SafetensorsTensorInfo>& tensors,
                               uint64_t buffer_size, const std::string& src) {
    std::vector<const SafetensorsTensorInfo*> by_offset;
    by_offset.reserve(tensors.size());
    for (auto& t : tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t expected = 0;
    const SafetensorsTensorInfo* prev = nullptr;
    for (auto* t : by_offset) {
        PALU_CHECK(
            t->begin >= expected, FormatError,
            "formats: %s: tensor '%s' data_offsets [%llu,%llu) overlap tensor '%s' [%llu,%llu): "
            "expected begin %llu, got %llu (InvalidOffset)",
            src.c_str(), t->name.c_str(), static_cast<ull>(t->begin), static_cast<ull>(t->end),
            prev ? prev->name.c_str() : "", prev ? static_cast<ull>(prev->begin) : 0ull,
            prev ? static_cast<ull>(prev->end) : 0ull, static_cast<ull>(expected),
            static_cast<ull>(t->begin));
        PALU_CHECK(
            t->begin == expected, FormatError,
            "formats: %s: tensor '%s' data_offsets [%llu,%llu) leave a gap after %s: expected "
            "begin %llu, got %llu (InvalidOffset)",
            src.c_str(), t->name.c_str(), static_cast<ull>(t->begin), static_cast<ull>(t->end),
            prev ? ("tensor '" + prev->name + "'").c_str() : "the start of the data buffer",
            static_cast<ull>(expected), static_cast<ull>(t->begin));
        PALU_CHECK(
            t->end <= buffer_size, FormatError,
            "formats: %s: tensor '%s' data_offsets [%llu,%llu) past the end of the data buffer: "
            "expected end <= %llu, got %llu; hint: truncated file, incomplete download? "
            "(MetadataIncompleteBuffer)",
            src.c_str(), t->name.c_str(), static_cast<ull>(t->begin), static_cast<ull>(t->end),
            static_cast<ull>(buffer_size), static_cast<ull>(t->end));
        expected = t->end;
        prev = t;
    }
    PALU_CHECK(expected == buffer_size, FormatError,
               "formats: %s: tensors cover %llu bytes of the data buffer: expected %llu, got %llu; "
               "hint: incomplete download? (MetadataIncompleteBuffer)",
               src.c_str(), static_cast<ull>(expected), static_cast<ull>(expected),
               static_cast<ull>(buffer_size));
}

// Steps 3-8: JSON, duplicates, dtype, shape overflow, sizes, offsets vs. the data buffer size.
void parse_header(std::string_view header, uint64_t buffer_size, const std::string& src,
                  SafetensorsFile::Impl& out) {
    PALU_CHECK(!header.empty() && header[0] == '{', FormatError,
               "formats: %s: header must be a JSON object: expected '{', got %s; hint: not a "
               "safetensors file? (InvalidHeaderStart)",
               src.c_str(),
               header.empty()
                   ? "an empty header"
                   : strfmt("byte 0x%02x", static_cast<unsigned char>(header[0])).c_str());
    json j =
        detail::parse_json_strict(header, src, "header", "InvalidHeader", "DuplicateTensorName");
    PALU_CHECK(j.is_object(), FormatError,
               "formats: %s: header must be a JSON object, got %s (InvalidHeaderDeserialization)",
               src.c_str(), j.type_name());

    out.tensors.clear();
    out.tensors.reserve(j.size());
    for (auto& [name, v] : j.items()) {
        if (name == "__metadata__")
            read_metadata(v, src, out);
        else
            out.tensors.push_back(parse_tensor_entry(name, v, src));
    }
    check_offsets_tile_buffer(out.tensors, buffer_size, src);
    std::sort(out.tensors.begin(), out.tensors.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
}

}  // namespace

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
    auto impl = std::make_unique<Impl>();
    impl->path = path.string();
    const std::string& src = impl->path;

    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    PALU_CHECK(fd >= 0, IoError, "formats: %s: cannot open: %s", src.c_str(), std::strerror(errno));
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    PALU_CHECK(::fstat(fd, &st) == 0, IoError, "formats: %s: cannot stat: %s", src.c_str(),
               std::strerror(errno));
    PALU_CHECK(S_ISREG(st.st_mode), IoError, "formats: %s: not a regular file", src.c_str());
    uint64_t file_size = static_cast<uint64_t>(st.st_size);

    auto pread_all = [&](void* dst, size_t n, uint64_t off) {
        auto p = static_cast<char*>(dst);
        while (n > 0) {
            ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
            if (r < 0 && errno == EINTR) continue;
            PALU_CHECK(r > 0, IoError, "formats: %s: read failed at offset %llu: %s", src.c_str(),
                       static_cast<ull>(off),
                       r == 0 ? "unexpected end of file" : std::strerror(errno));
            p += r;
            off += static_cast<uint64_t>(r);
            n -= static_cast<size_t>(r);
        }
    };

    uint8_t first8[8] = {};
    if (file_size >= 8) pread_all(first8, 8, 0);
    uint64_t n_header = check_header_length(src, file_size, first8);
    std::string header(n_header, '\0');
    pread_all(header.data(), n_header, 8);
    impl->file_size = file_size;
    impl->data_offset = 8 + n_header;
    parse_header(header, file_size - impl->data_offset, src, *impl);

    // Validated: now map. MAP_PRIVATE + PROT_READ: the data are only ever read.
    impl->map = detail::MappedFile::map(fd, static_cast<size_t>(file_size), src);
    impl->base = impl->map.data();
    return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_memory(std::vector<uint8_t> bytes,
                                             const std::string& display_name) {
    auto impl = std::make_unique<Impl>();
    impl->path = display_name;
    impl->owned = std::move(bytes);
    const std::string& src = impl->path;
    uint64_t file_size = impl->owned.size();
    uint8_t first8[8] = {};
    if (file_size >= 8) std::memcpy(first8, impl->owned.data(), 8);
    uint64_t n_header = check_header_length(src, file_size, first8);
    impl->file_size = file_size;
    impl->data_offset = 8 + n_header;
    std::string_view header(reinterpret_cast<const char*>(impl->owned.data()) + 8, n_header);
    parse_header(header, file_size - impl->data_offset, src, *impl);
    impl->base = impl->owned.data();
    return SafetensorsFile(std::move(impl));
}

const std::string& SafetensorsFile::path() const {
    return impl_->path;
}
const std::vector<SafetensorsTensorInfo>& SafetensorsFile::tensors() const {
    return impl_->tensors;
}
const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
    return impl_->metadata;
}
uint64_t SafetensorsFile::data_offset() const {
    return impl_->data_offset;
}
uint64_t SafetensorsFile::file_size() const {
    return impl_->file_size;
}

const SafetensorsTensorInfo* SafetensorsFile::find(const std::string& name) const {
    auto& ts = impl_->tensors;
    auto it = std::lower_bound(
        ts.begin(), ts.end(), name,
        [](const SafetensorsTensorInfo& t, const std::string& n) { return t.name < n; });
    return (it != ts.end() && it->name == name) ? &*it : nullptr;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
    auto* t = find(name);
    PALU_CHECK(t != nullptr, FormatError, "formats: %s: no tensor named '%s' (%zu tensors in file)",
               impl_->path.c_str(), name.c_str(), impl_->tensors.size());
    return *t;
}

std::span<const uint8_t> SafetensorsFile::bytes(const SafetensorsTensorInfo& t) const {
    return {impl_->base + impl_->data_offset + t.begin, static_cast<size_t>(t.n_bytes())};
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
    return bytes(info(name));
}

Tensor SafetensorsFile::load_f32(const std::string& name) const {
    const auto& t = info(name);
    Tensor out(t.shape);
    // An empty tensor has no buffer at all (memcpy with null pointers is undefined even for n=0).
    if (t.numel() > 0)
        convert_to_f32(t.dtype, bytes(t).data(), out.data(), static_cast<size_t>(t.numel()));
    return out;
}

// ---- sharded checkpoints ----------------------------------------------------------------------

namespace {

using detail::kSafetensorsIndexName;
using detail::kSafetensorsSingleName;

// Where a checkpoint's tensors come from: one .safetensors file, or a shard index .json.
struct CheckpointSource {
    fs::path file;
    bool is_index = false;
};

// A directory holds model.safetensors (preferred) or the index; a .json path is an index; any
// other path is a single file.
CheckpointSource resolve_checkpoint_source(const fs::path& path) {
    std::error_code ec;
    PALU_CHECK(fs::exists(path, ec), IoError, "formats: %s: no such file or directory",
               path.string().c_str());
    if (fs::is_directory(path)) {
        if (fs::exists(path / kSafetensorsSingleName))
            return {path / kSafetensorsSingleName, false};
        if (fs::exists(path / kSafetensorsIndexName)) return {path / kSafetensorsIndexName, true};
        PALU_THROW(IoError,
                   "formats: %s: no %s or %s in this directory; hint: is it a Hugging Face model "
                   "directory?",
                   path.string().c_str(), kSafetensorsSingleName, kSafetensorsIndexName);
    }
    if (path.extension() == ".json") return {path, true};
    return {path, false};
}

// What the index says: the shard of every tensor, and the shards in the order they are opened.
struct ShardIndex {
    std::map<std::string, std::string> weight_map;  // tensor -> shard file name
    std::map<std::string, size_t> shards;           // shard file name -> position, sorted by name
};

// The index JSON: an object whose 'weight_map' maps each tensor to a plain relative file name.
ShardIndex read_shard_index(const fs::path& index_path, const std::string& src) {
    json idx = detail::parse_json_strict(detail::read_text_file(index_path, kSafetensorsMaxHeader),
                                         src, "index", "InvalidIndex", "DuplicateIndexEntry");
    PALU_CHECK(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(),
               FormatError,
               "formats: %s: expected an object with a 'weight_map' object, got %s (InvalidIndex)",
               src.c_str(),
               idx.is_object()
                   ? (idx.contains("weight_map") ? idx["weight_map"].type_name() : "no weight_map")
                   : idx.type_name());
    ShardIndex index;
    for (auto& [tensor, v] : idx["weight_map"].items()) {
        PALU_CHECK(
            v.is_string(), FormatError,
            "formats: %s: weight_map['%s']: expected a shard file name, got %s (InvalidIndex)",
            src.c_str(), tensor.c_str(), v.type_name());
        const auto& shard = v.get_ref<const std::string&>();
        fs::path sp(shard);
        bool plain =
            !shard.empty() && !sp.is_absolute() &&
            std::none_of(sp.begin(), sp.end(), [](const fs::path& c) { return c == ".."; });
        PALU_CHECK(plain, FormatError,
                   "formats: %s: weight_map['%s']: expected a file name relative to the index, got "
                   "'%s' (InvalidIndex)",
                   src.c_str(), tensor.c_str(), shard.c_str());
        index.weight_map.emplace(tensor, shard);
        index.shards.emplace(shard, 0);
    }
    PALU_CHECK(!index.shards.empty(), FormatError,
               "formats: %s: weight_map is empty: expected at least one tensor (InvalidIndex)",
               src.c_str());
    size_t position = 0;
    for (auto& [name, pos] : index.shards) pos = position++;
    return index;
}

// All shards are checked for existence before any is opened, so a partial download reports
// ShardMissing rather than the first shard's own header error.
void check_shards_exist(const ShardIndex& index, const fs::path& dir, const std::string& src) {
    for (const auto& [s, pos] : index.shards)
        PALU_CHECK(fs::exists(dir / s), FormatError,
                   "formats: %s: shard '%s' referenced by the index is missing: expected %s; hint: "
                   "incomplete download? (ShardMissing)",
                   src.c_str(), s.c_str(), (dir / s).string().c_str());
}

// Every tensor exactly once across shards, in the shard the index names; `shards` are opened in
// the order of index.shards.
void check_shards_match_index(const ShardIndex& index, const std::vector<SafetensorsFile>& shards,
                              const std::string& src) {
    std::map<std::string, size_t> where;
    for (size_t i = 0; i < shards.size(); ++i) {
        for (const auto& t : shards[i].tensors()) {
            auto [it, fresh] = where.emplace(t.name, i);
            PALU_CHECK(fresh, FormatError,
                       "formats: %s: tensor '%s' appears in two shards: '%s' and '%s'; expected "
                       "exactly once (DuplicateTensorName)",
                       src.c_str(), t.name.c_str(), shards[it->second].path().c_str(),
                       shards[i].path().c_str());
            auto w = index.weight_map.find(t.name);
            PALU_CHECK(w != index.weight_map.end(), FormatError,
                       "formats: %s: tensor '%s' of shard '%s' is not in the index weight_map "
                       "(IndexMismatch)",
                       src.c_str(), t.name.c_str(), shards[i].path().c_str());
            PALU_CHECK(index.shards.at(w->second) == i, FormatError,
                       "formats: %s: tensor '%s': expected in shard '%s' (index), got it in '%s' "
                       "(IndexMismatch)",
                       src.c_str(), t.name.c_str(), w->second.c_str(), shards[i].path().c_str());
        }
    }
    for (const auto& [tensor, shard] : index.weight_map)
        PALU_CHECK(where.count(tensor) == 1, FormatError,
                   "formats: %s: tensor '%s' is listed in the index but missing from shard '%s' "
                   "(IndexMismatch)",
                   src.c_str(), tensor.c_str(), shard.c_str());
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const fs::path& path) {
    SafetensorsCheckpoint ck;
    ck.path_ = path.string();
    const CheckpointSource source = resolve_checkpoint_source(path);
    if (!source.is_index) {
        ck.shards_.push_back(SafetensorsFile::open(source.file));
    } else {
        ck.sharded_ = true;
        const std::string src = source.file.string();
        const ShardIndex index = read_shard_index(source.file, src);
        const fs::path dir = source.file.parent_path();
        check_shards_exist(index, dir, src);
        for (const auto& [s, pos] : index.shards)
            ck.shards_.push_back(SafetensorsFile::open(dir / s));
        check_shards_match_index(index, ck.shards_, src);
    }

    for (const auto& f : ck.shards_)
        for (const auto& t : f.tensors()) ck.entries_.push_back(Entry{&t, &f});
    std::sort(ck.entries_.begin(), ck.entries_.end(),
              [](const Entry& a, const Entry& b) { return a.info->name < b.info->name; });
    return ck;
}

const SafetensorsCheckpoint::Entry* SafetensorsCheckpoint::find(const std::string& name) const {
    auto it =
        std::lower_bound(entries_.begin(), entries_.end(), name,
                         [](const Entry& e, const std::string& n) { return e.info->name < n; });
    return (it != entries_.end() && it->info->name == name) ? &*it : nullptr;
}

const SafetensorsCheckpoint::Entry& SafetensorsCheckpoint::at(const std::string& name) const {
    auto* e = find(name);
    PALU_CHECK(e != nullptr, FormatError,
               "formats: %s: no tensor named '%s' (%zu tensors in checkpoint)", path_.c_str(),
               name.c_str(), entries_.size());
    return *e;
}

std::span<const uint8_t> SafetensorsCheckpoint::bytes(const std::string& name) const {
    const auto& e = at(name);
    return e.file->bytes(*e.info);
}

Tensor SafetensorsCheckpoint::load_f32(const std::string& name) const {
    const auto& e = at(name);
    Tensor out(e.info->shape);
    if (e.info->numel() > 0)
        convert_to_f32(e.info->dtype, e.file->bytes(*e.info).data(), out.data(),
                       static_cast<size_t>(e.info->numel()));
    return out;
}

const std::map<std::string, std::string>& SafetensorsCheckpoint::metadata() const {
    static const std::map<std::string, std::string> empty;
    return shards_.empty() ? empty : shards_.front().metadata();
}

}  // namespace palu::formats
