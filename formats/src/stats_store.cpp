// palu formats: HDF5 calibration-statistics store (see stats_store.h for the file layout).
// Uses the HDF5 C API with small RAII handles; HDF5's own error printing is switched off and its
// error stack is folded into our messages instead.
#include "palu/formats/stats_store.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <system_error>

#include "palu/core/checked.h"
#include "palu/core/error.h"
#include "palu/core/format.h"

namespace palu::formats {

namespace fs = std::filesystem;

namespace {

/// Owns one HDF5 identifier and closes it with the matching H5*close.
class Hid {
   public:
    Hid() = default;
    Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    Hid(Hid&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
    Hid& operator=(Hid&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = o.id_;
            close_ = o.close_;
            o.id_ = -1;
        }
        return *this;
    }
    Hid(const Hid&) = delete;
    Hid& operator=(const Hid&) = delete;
    ~Hid() { reset(); }
    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    /// Closes now and reports whether the close succeeded.
    bool close() {
        if (id_ < 0) return true;
        herr_t r = close_(id_);
        id_ = -1;
        return r >= 0;
    }
    void reset() { close(); }

   private:
    hid_t id_ = -1;
    herr_t (*close_)(hid_t) = nullptr;
};

void silence_hdf5() {
    // HDF5 prints its error stack to stderr by default; we report errors ourselves.
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

herr_t collect_error(unsigned n, const H5E_error2_t* e, void* data) {
    auto* out = static_cast<std::string*>(data);
    if (n == 0 && e->desc && *e->desc) *out = e->desc;  // innermost: the root cause
    return 0;
}

/// The innermost HDF5 error description, or "" when the stack is empty.
std::string hdf5_detail() {
    std::string s;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &s);
    H5Eclear2(H5E_DEFAULT);
    return s.empty() ? std::string() : " (" + s + ")";
}

void check_h5(herr_t r, const fs::path& path, const char* what) {
    PALU_CHECK(r >= 0, IoError, "formats: %s: HDF5 %s failed%s", path.c_str(), what,
               hdf5_detail().c_str());
}

Hid check_id(hid_t id, herr_t (*close)(hid_t), const fs::path& path, const char* what) {
    PALU_CHECK(id >= 0, IoError, "formats: %s: HDF5 %s failed%s", path.c_str(), what,
               hdf5_detail().c_str());
    return Hid(id, close);
}

bool valid_component_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

void check_dataset_name(const std::string& name, const fs::path& path) {
    bool ok = !name.empty() && name.size() <= 1024 && name.front() != '/' && name.back() != '/';
    size_t start = 0;
    while (ok && start <= name.size()) {
        size_t end = name.find('/', start);
        if (end == std::string::npos) end = name.size();
        std::string comp = name.substr(start, end - start);
        ok = !comp.empty() && comp != "." && comp != ".." &&
             std::all_of(comp.begin(), comp.end(), valid_component_char);
        start = end + 1;
    }
    PALU_CHECK(ok, UsageError,
               "formats: %s: stats dataset name '%s' is invalid: expected components of "
               "[A-Za-z0-9_.-] separated by '/'",
               path.c_str(), name.c_str());
}

/// Chunk shape of at most ~1 MiB: keep the trailing dims whole and shrink leading ones, so a
/// [d, d] Gram matrix is chunked by blocks of whole rows.
std::vector<hsize_t> chunk_dims(const std::vector<hsize_t>& dims, size_t elem_size) {
    constexpr uint64_t kTarget = uint64_t(1) << 20;
    std::vector<hsize_t> c = dims;
    uint64_t bytes = elem_size;
    for (hsize_t d : c) bytes *= d;  // numel checked by the caller
    for (size_t i = 0; i < c.size() && bytes > kTarget; ++i) {
        uint64_t rest = bytes / c[i];  // bytes of one slice along dim i
        hsize_t keep = std::max<hsize_t>(1, hsize_t(kTarget / std::max<uint64_t>(rest, 1)));
        keep = std::min(keep, c[i]);
        // Balance the chunks along dim i: HDF5 stores edge chunks at full size, so 576 rows in
        // chunks of 227 would waste 18%; 3 chunks of 192 waste nothing.
        hsize_t n_chunks = (c[i] + keep - 1) / keep;
        keep = (c[i] + n_chunks - 1) / n_chunks;
        bytes = rest * keep;
        c[i] = keep;
    }
    return c;
}

void write_string_attr(hid_t obj, const char* name, const std::string& value,
                       const fs::path& path) {
    Hid type = check_id(H5Tcopy(H5T_C_S1), H5Tclose, path, "H5Tcopy");
    check_h5(H5Tset_size(type.get(), std::max<size_t>(value.size(), 1)), path, "H5Tset_size");
    check_h5(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), path, "H5Tset_strpad");
    check_h5(H5Tset_cset(type.get(), H5T_CSET_UTF8), path, "H5Tset_cset");
    Hid space = check_id(H5Screate(H5S_SCALAR), H5Sclose, path, "H5Screate");
    Hid attr = check_id(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        H5Aclose, path, "create attribute");
    std::string buf = value.empty() ? std::string(1, '\0') : value;
    check_h5(H5Awrite(attr.get(), type.get(), buf.data()), path, "write attribute");
}

void write_int_attr(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, const void* value,
                    const fs::path& path) {
    Hid space = check_id(H5Screate(H5S_SCALAR), H5Sclose, path, "H5Screate");
    Hid attr = check_id(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        H5Aclose, path, "create attribute");
    check_h5(H5Awrite(attr.get(), mem_type, value), path, "write attribute");
}

Hid open_root_attr(hid_t file, const char* name, const fs::path& path) {
    htri_t exists = H5Aexists(file, name);
    PALU_CHECK(exists > 0, FormatError,
               "formats: %s: not a palu stats file: root attribute '%s' is missing; hint: "
               "re-run palu-calibrate to produce it",
               path.c_str(), name);
    return check_id(H5Aopen(file, name, H5P_DEFAULT), H5Aclose, path, "open attribute");
}

std::string read_string_attr(hid_t file, const char* name, const fs::path& path) {
    Hid attr = open_root_attr(file, name, path);
    Hid type = check_id(H5Aget_type(attr.get()), H5Tclose, path, "H5Aget_type");
    PALU_CHECK(H5Tget_class(type.get()) == H5T_STRING, FormatError,
               "formats: %s: stats attribute '%s': expected a string", path.c_str(), name);
    Hid space = check_id(H5Aget_space(attr.get()), H5Sclose, path, "H5Aget_space");
    PALU_CHECK(H5Sget_simple_extent_npoints(space.get()) == 1, FormatError,
               "formats: %s: stats attribute '%s': expected a scalar string", path.c_str(), name);
    if (H5Tis_variable_str(type.get()) > 0) {
        Hid mem = check_id(H5Tcopy(H5T_C_S1), H5Tclose, path, "H5Tcopy");
        check_h5(H5Tset_size(mem.get(), H5T_VARIABLE), path, "H5Tset_size");
        char* p = nullptr;
        check_h5(H5Aread(attr.get(), mem.get(), &p), path, "read attribute");
        std::string s = p ? p : "";
        H5free_memory(p);
        return s;
    }
    size_t n = H5Tget_size(type.get());
    PALU_CHECK(n > 0 && n <= (size_t(1) << 30), FormatError,
               "formats: %s: stats attribute '%s': bad string size %zu", path.c_str(), name, n);
    std::string buf(n, '\0');
    check_h5(H5Aread(attr.get(), type.get(), buf.data()), path, "read attribute");
    buf.resize(std::strlen(buf.c_str()));  // NULLPAD / NULLTERM: stop at the first NUL
    return buf;
}

int64_t read_int_attr(hid_t file, const char* name, const fs::path& path) {
    Hid attr = open_root_attr(file, name, path);
    Hid type = check_id(H5Aget_type(attr.get()), H5Tclose, path, "H5Aget_type");
    PALU_CHECK(H5Tget_class(type.get()) == H5T_INTEGER, FormatError,
               "formats: %s: stats attribute '%s': expected an integer", path.c_str(), name);
    Hid space = check_id(H5Aget_space(attr.get()), H5Sclose, path, "H5Aget_space");
    PALU_CHECK(H5Sget_simple_extent_npoints(space.get()) == 1, FormatError,
               "formats: %s: stats attribute '%s': expected a scalar", path.c_str(), name);
    int64_t v = 0;
    check_h5(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), path, "read attribute");
    return v;
}

}  // namespace

// ---- writer -----------------------------------------------------------------------------------

struct StatsWriter::Impl {
    fs::path path, tmp;
    Hid file;
    int deflate_level = 4;
    bool committed = false;
    std::set<std::string> written;

    void discard() {
        file.close();
        std::error_code ec;
        fs::remove(tmp, ec);
    }

    void write(const std::string& name, std::span<const int64_t> shape, const void* data,
               size_t n_values, hid_t file_type, hid_t mem_type, size_t elem_size);
};

StatsWriter::StatsWriter(const fs::path& path, const StatsFileInfo& info, int deflate_level)
    : impl_(std::make_unique<Impl>()) {
    silence_hdf5();
    PALU_CHECK(deflate_level >= 0 && deflate_level <= 9, UsageError,
               "formats: %s: deflate level: expected 0..9, got %d", path.c_str(), deflate_level);
    impl_->path = path;
    impl_->deflate_level = deflate_level;
    static std::atomic<int> counter{0};
    fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    impl_->tmp = dir / strfmt(".%s.tmp-%d-%d", path.filename().c_str(), int(::getpid()), counter++);
    std::error_code ec;
    PALU_CHECK(fs::is_directory(dir, ec), IoError, "formats: %s: cannot write stats file: %s %s",
               path.c_str(), dir.c_str(),
               fs::exists(dir, ec) ? "is not a directory" : "does not exist");

    // Dense attribute storage (phase change 0/0, needs the 1.8 file format) lifts the 64 KiB
    // limit of compact attribute storage, so the settings JSON may be of any size.
    Hid fcpl = check_id(H5Pcreate(H5P_FILE_CREATE), H5Pclose, path, "H5Pcreate");
    check_h5(H5Pset_attr_phase_change(fcpl.get(), 0, 0), path, "H5Pset_attr_phase_change");
    Hid fapl = check_id(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "H5Pcreate");
    check_h5(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST), path,
             "H5Pset_libver_bounds");
    hid_t f = H5Fcreate(impl_->tmp.c_str(), H5F_ACC_EXCL, fcpl.get(), fapl.get());
    if (f < 0) {
        std::string detail = hdf5_detail();
        impl_->discard();
        PALU_THROW(IoError,
                   "formats: %s: cannot create stats file in %s%s; hint: is the directory "
                   "writable?",
                   path.c_str(), dir.c_str(), detail.c_str());
    }
    impl_->file = Hid(f, H5Fclose);
    try {
        const int32_t version = kStatsFormatVersion;
        hid_t root = impl_->file.get();
        write_int_attr(root, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version, path);
        write_string_attr(root, "model_fingerprint", info.model_fingerprint, path);
        write_string_attr(root, "data_fingerprint", info.data_fingerprint, path);
        write_int_attr(root, "n_tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, &info.n_tokens, path);
        write_int_attr(root, "seed", H5T_STD_I64LE, H5T_NATIVE_INT64, &info.seed, path);
        write_string_attr(root, "settings", info.settings_json, path);
    } catch (...) {
        impl_->discard();
        throw;
    }
}

StatsWriter::~StatsWriter() {
    if (impl_ && !impl_->committed) impl_->discard();
}

const fs::path& StatsWriter::temp_path() const {
    return impl_->tmp;
}

void StatsWriter::Impl::write(const std::string& name, std::span<const int64_t> shape,
                              const void* data, size_t n_values, hid_t file_type, hid_t mem_type,
                              size_t elem_size) {
    silence_hdf5();
    PALU_CHECK(!committed, UsageError, "formats: %s: stats dataset '%s' written after commit()",
               path.c_str(), name.c_str());
    check_dataset_name(name, path);
    PALU_CHECK(written.count(name) == 0, UsageError,
               "formats: %s: stats dataset '%s' written twice", path.c_str(), name.c_str());
    PALU_CHECK(shape.size() <= 32, ShapeError,
               "formats: %s: stats dataset '%s' has rank %zu: expected at most 32", path.c_str(),
               name.c_str(), shape.size());
    auto numel = numel_no_overflow(shape);
    PALU_CHECK(numel.has_value() && *numel == n_values, ShapeError,
               "formats: %s: stats dataset '%s' shape %s: expected %s values, got %zu",
               path.c_str(), name.c_str(),
               shape_str(std::vector<int64_t>(shape.begin(), shape.end())).c_str(),
               numel ? std::to_string(*numel).c_str() : "(invalid shape)", n_values);

    std::vector<hsize_t> dims(shape.begin(), shape.end());
    Hid space = shape.empty() ? check_id(H5Screate(H5S_SCALAR), H5Sclose, path, "H5Screate")
                              : check_id(H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                                         H5Sclose, path, "H5Screate_simple");
    Hid lcpl = check_id(H5Pcreate(H5P_LINK_CREATE), H5Pclose, path, "H5Pcreate");
    check_h5(H5Pset_create_intermediate_group(lcpl.get(), 1), path,
             "H5Pset_create_intermediate_group");
    Hid dcpl = check_id(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path, "H5Pcreate");
    // Chunking (and so compression) needs rank >= 1 and non-zero dims.
    if (!shape.empty() && n_values > 0) {
        auto chunk = chunk_dims(dims, elem_size);
        check_h5(H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()), path, "H5Pset_chunk");
        check_h5(H5Pset_shuffle(dcpl.get()), path, "H5Pset_shuffle");
        if (deflate_level > 0)
            check_h5(H5Pset_deflate(dcpl.get(), unsigned(deflate_level)), path, "H5Pset_deflate");
    }
    Hid ds = check_id(H5Dcreate2(file.get(), name.c_str(), file_type, space.get(), lcpl.get(),
                                 dcpl.get(), H5P_DEFAULT),
                      H5Dclose, path, "create dataset");
    if (n_values > 0)
        check_h5(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path,
                 "write dataset");
    PALU_CHECK(ds.close(), IoError, "formats: %s: HDF5 close of dataset '%s' failed%s",
               path.c_str(), name.c_str(), hdf5_detail().c_str());
    written.insert(name);
}

void StatsWriter::write_f64(const std::string& name, std::span<const int64_t> shape,
                            std::span<const double> values) {
    impl_->write(name, shape, values.data(), values.size(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                 sizeof(double));
}

void StatsWriter::write_f32(const std::string& name, std::span<const int64_t> shape,
                            std::span<const float> values) {
    impl_->write(name, shape, values.data(), values.size(), H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                 sizeof(float));
}

void StatsWriter::commit() {
    silence_hdf5();
    PALU_CHECK(!impl_->committed, UsageError, "formats: %s: stats file committed twice",
               impl_->path.c_str());
    bool flushed = H5Fflush(impl_->file.get(), H5F_SCOPE_GLOBAL) >= 0;
    bool closed = impl_->file.close();
    if (!flushed || !closed) {
        std::string detail = hdf5_detail();
        impl_->discard();
        PALU_THROW(IoError, "formats: %s: HDF5 flush/close of the temporary stats file failed%s",
                   impl_->path.c_str(), detail.c_str());
    }
    std::error_code ec;
    fs::rename(impl_->tmp, impl_->path, ec);
    if (ec) {
        impl_->discard();
        PALU_THROW(IoError, "formats: %s: cannot move the stats file into place: %s",
                   impl_->path.c_str(), ec.message().c_str());
    }
    impl_->committed = true;
}

// ---- reader -----------------------------------------------------------------------------------

struct StatsStore::Impl {
    fs::path path;
    Hid file;
    StatsFileInfo info;
    std::vector<std::string> names;  // sorted
};

StatsStore::StatsStore() : impl_(std::make_unique<Impl>()) {}
StatsStore::~StatsStore() = default;
StatsStore::StatsStore(StatsStore&&) noexcept = default;
StatsStore& StatsStore::operator=(StatsStore&&) noexcept = default;

namespace {

struct VisitState {
    std::vector<std::string>* names;
};

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = H5Oopen(group, name, H5P_DEFAULT);
    if (o < 0) return -1;
    if (H5Iget_type(o) == H5I_DATASET) static_cast<VisitState*>(data)->names->push_back(name);
    H5Oclose(o);
    return 0;
}

}  // namespace

StatsStore StatsStore::open(const fs::path& path, const StatsExpectation& expected) {
    silence_hdf5();
    std::error_code ec;
    PALU_CHECK(fs::is_regular_file(path, ec), IoError,
               "formats: %s: stats file does not exist or is not a regular file", path.c_str());
    {
        FILE* f = std::fopen(path.c_str(), "rb");
        PALU_CHECK(f != nullptr, IoError, "formats: %s: cannot open stats file for reading: %s",
                   path.c_str(), std::strerror(errno));
        std::fclose(f);
    }
    htri_t is_h5 = H5Fis_hdf5(path.c_str());
    H5Eclear2(H5E_DEFAULT);
    PALU_CHECK(is_h5 > 0, FormatError,
               "formats: %s: not an HDF5 file (no HDF5 signature); hint: --stats expects a .h5 "
               "file written by palu-calibrate",
               path.c_str());

    StatsStore s;
    Impl& m = *s.impl_;
    m.path = path;
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    PALU_CHECK(f >= 0, FormatError, "formats: %s: cannot open HDF5 stats file%s", path.c_str(),
               hdf5_detail().c_str());
    m.file = Hid(f, H5Fclose);

    int64_t version = read_int_attr(f, "format_version", path);
    PALU_CHECK(version == kStatsFormatVersion, FormatError,
               "formats: %s: stats file format_version %lld, this palu reads %d; hint: re-run "
               "palu-calibrate to rebuild the stats with this version",
               path.c_str(), static_cast<long long>(version), kStatsFormatVersion);
    m.info.format_version = int(version);
    m.info.model_fingerprint = read_string_attr(f, "model_fingerprint", path);
    m.info.data_fingerprint = read_string_attr(f, "data_fingerprint", path);
    m.info.n_tokens = read_int_attr(f, "n_tokens", path);
    m.info.seed = read_int_attr(f, "seed", path);
    m.info.settings_json = read_string_attr(f, "settings", path);

    PALU_CHECK(expected.model_fingerprint.empty() ||
                   expected.model_fingerprint == m.info.model_fingerprint,
               UsageError,
               "formats: %s: stats file belongs to another model: expected model fingerprint %s, "
               "got %s; hint: --stats belongs to another model; re-run palu-calibrate for this one",
               path.c_str(), expected.model_fingerprint.c_str(), m.info.model_fingerprint.c_str());
    PALU_CHECK(
        expected.data_fingerprint.empty() || expected.data_fingerprint == m.info.data_fingerprint,
        UsageError,
        "formats: %s: stats file was calibrated on other data: expected data fingerprint "
        "%s, got %s; hint: pass the same calibration data or re-run palu-calibrate",
        path.c_str(), expected.data_fingerprint.c_str(), m.info.data_fingerprint.c_str());

    VisitState st{&m.names};
    check_h5(H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_link, &st), path, "listing datasets");
    std::sort(m.names.begin(), m.names.end());
    return s;
}

const StatsFileInfo& StatsStore::info() const {
    return impl_->info;
}
const fs::path& StatsStore::path() const {
    return impl_->path;
}
std::vector<std::string> StatsStore::list() const {
    return impl_->names;
}

bool StatsStore::has(const std::string& name) const {
    return std::binary_search(impl_->names.begin(), impl_->names.end(), name);
}

StatsDataset StatsStore::read(const std::string& name) const {
    silence_hdf5();
    const fs::path& path = impl_->path;
    PALU_CHECK(has(name), FormatError, "formats: %s: stats file has no dataset '%s'", path.c_str(),
               name.c_str());
    Hid ds = check_id(H5Dopen2(impl_->file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, path,
                      "open dataset");
    Hid type = check_id(H5Dget_type(ds.get()), H5Tclose, path, "H5Dget_type");
    size_t type_size = H5Tget_size(type.get());
    PALU_CHECK(H5Tget_class(type.get()) == H5T_FLOAT && (type_size == 4 || type_size == 8),
               FormatError, "formats: %s: stats dataset '%s': expected f32 or f64 values",
               path.c_str(), name.c_str());
    Hid space = check_id(H5Dget_space(ds.get()), H5Sclose, path, "H5Dget_space");
    int rank = H5Sget_simple_extent_ndims(space.get());
    PALU_CHECK(rank >= 0 && rank <= 32, FormatError, "formats: %s: stats dataset '%s': bad rank %d",
               path.c_str(), name.c_str(), rank);
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    if (rank > 0)
        PALU_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) == rank,
                   FormatError, "formats: %s: stats dataset '%s': cannot read its extent%s",
                   path.c_str(), name.c_str(), hdf5_detail().c_str());

    StatsDataset out;
    out.name = name;
    out.stored_type = type_size == 4 ? StatsDType::F32 : StatsDType::F64;
    for (hsize_t d : dims) {
        PALU_CHECK(d <= hsize_t(INT64_MAX), FormatError,
                   "formats: %s: stats dataset '%s': dim too large", path.c_str(), name.c_str());
        out.shape.push_back(int64_t(d));
    }
    auto numel = numel_no_overflow(out.shape);
    // A corrupt header may declare an absurd extent; refuse before allocating.
    constexpr uint64_t kMaxValues = uint64_t(1) << 33;
    PALU_CHECK(numel && *numel <= kMaxValues, FormatError,
               "formats: %s: stats dataset '%s' shape %s is too large to read", path.c_str(),
               name.c_str(), shape_str(out.shape).c_str());
    out.values.resize(size_t(*numel));
    if (*numel == 0) return out;
    if (out.stored_type == StatsDType::F64) {
        check_h5(
            H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.values.data()),
            path, "read dataset");
    } else {
        std::vector<float> f(out.values.size());
        check_h5(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f.data()), path,
                 "read dataset");
        std::copy(f.begin(), f.end(), out.values.begin());
    }
    return out;
}

std::vector<std::string> StatsStore::filters(const std::string& name) const {
    silence_hdf5();
    const fs::path& path = impl_->path;
    PALU_CHECK(has(name), FormatError, "formats: %s: stats file has no dataset '%s'", path.c_str(),
               name.c_str());
    Hid ds = check_id(H5Dopen2(impl_->file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, path,
                      "open dataset");
    Hid dcpl = check_id(H5Dget_create_plist(ds.get()), H5Pclose, path, "H5Dget_create_plist");
    std::vector<std::string> out;
    int n = H5Pget_nfilters(dcpl.get());
    for (int i = 0; i < n; ++i) {
        unsigned flags = 0, cfg = 0;
        size_t n_cd = 0;
        char fname[64] = {};
        H5Z_filter_t id = H5Pget_filter2(dcpl.get(), unsigned(i), &flags, &n_cd, nullptr,
                                         sizeof(fname), fname, &cfg);
        if (id == H5Z_FILTER_DEFLATE)
            out.push_back("deflate");
        else if (id == H5Z_FILTER_SHUFFLE)
            out.push_back("shuffle");
        else
            out.push_back(fname[0] ? fname : strfmt("filter_%d", int(id)));
    }
    return out;
}

}  // namespace palu::formats
