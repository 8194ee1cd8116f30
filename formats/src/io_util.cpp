// palu formats (private): strict JSON parsing and atomic file writes.
#include "io_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>

#include "palu/core/error.h"

namespace palu::formats::detail {

namespace {

// Deepest nesting of arrays/objects in `text` (outside strings). Headers and configs nest a few
// levels; rejecting absurd depth up front keeps nlohmann's recursive copy/compare/dump away from
// stack overflows on hostile input (found by fuzz_hf_config).
size_t json_nesting_depth(std::string_view text) {
    size_t depth = 0, max_depth = 0;
    bool in_string = false, escaped = false;
    for (char ch : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (ch == '\\')
                escaped = true;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            max_depth = std::max(max_depth, ++depth);
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

constexpr size_t kMaxJsonDepth = 64;

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, const std::string& source, const char* what,
                                 const char* id_invalid, const char* id_duplicate) {
    const size_t depth = json_nesting_depth(text);
    PALU_CHECK(
        depth <= kMaxJsonDepth, FormatError,
        "formats: %s: %s nests arrays/objects too deeply: expected <= %zu levels, got %zu (%s)",
        source.c_str(), what, kMaxJsonDepth, depth, id_invalid);
    // keys_at[d] holds the keys seen so far in the object currently open at depth d.
    std::vector<std::set<std::string>> keys_at;
    std::string duplicate;
    auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using E = nlohmann::json::parse_event_t;
        if (event == E::object_start) {
            size_t d = static_cast<size_t>(depth) + 1;
            if (keys_at.size() <= d) keys_at.resize(d + 1);
            keys_at[d].clear();
        } else if (event == E::key && duplicate.empty()) {
            size_t d = static_cast<size_t>(depth);
            if (keys_at.size() <= d) keys_at.resize(d + 1);
            const auto& k = parsed.get_ref<const std::string&>();
            if (!keys_at[d].insert(k).second) duplicate = k;
        }
        return true;
    };
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
    } catch (const nlohmann::json::exception& e) {
        std::string detail =
            e.what();  // may quote the offending token: keep messages one short line
        if (detail.size() > 200) detail = detail.substr(0, 197) + "...";
        for (char& ch : detail)
            if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
        PALU_THROW(FormatError, "formats: %s: %s is not valid JSON: %s (%s)", source.c_str(), what,
                   detail.c_str(), id_invalid);
    }
    PALU_CHECK(duplicate.empty(), FormatError,
               "formats: %s: %s has duplicate key '%s': expected each key once, got it twice (%s)",
               source.c_str(), what, duplicate.c_str(), id_duplicate);
    return j;
}

std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    PALU_CHECK(!ec, IoError, "formats: %s: cannot read: %s", path.string().c_str(),
               ec.message().c_str());
    PALU_CHECK(size <= max_bytes, FormatError,
               "formats: %s: file too large: expected <= %llu bytes, got %llu",
               path.string().c_str(), static_cast<unsigned long long>(max_bytes),
               static_cast<unsigned long long>(size));
    std::ifstream f(path, std::ios::binary);
    PALU_CHECK(f.good(), IoError, "formats: %s: cannot open for reading", path.string().c_str());
    std::string s(size, '\0');
    f.read(s.data(), static_cast<std::streamsize>(size));
    PALU_CHECK(static_cast<uint64_t>(f.gcount()) == size, IoError,
               "formats: %s: short read: expected %llu bytes, got %lld", path.string().c_str(),
               static_cast<unsigned long long>(size), static_cast<long long>(f.gcount()));
    return s;
}

std::string brief_json(const nlohmann::json& j) {
    auto cut = [](std::string s) {
        if (s.size() > 60) s = s.substr(0, 57) + "...";
        return s;
    };
    if (j.is_object()) return "<object of " + std::to_string(j.size()) + ">";
    if (j.is_array()) {
        bool flat = j.size() <= 16 && std::all_of(j.begin(), j.end(), [](const nlohmann::json& x) {
                        return x.is_primitive();
                    });
        if (!flat) return "<array of " + std::to_string(j.size()) + ">";
    }
    return cut(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

TempFile::TempFile(std::filesystem::path final_path) : final_(std::move(final_path)) {
    static std::atomic<uint64_t> counter{0};
    auto name = final_.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                std::to_string(counter++);
    tmp_ = final_.parent_path() / name;
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    PALU_CHECK(fd_ >= 0, IoError, "formats: %s: cannot create temporary file: %s",
               tmp_.string().c_str(), std::strerror(errno));
}

TempFile::TempFile(TempFile&& o) noexcept
    : final_(std::move(o.final_)), tmp_(std::move(o.tmp_)), fd_(o.fd_), committed_(o.committed_) {
    o.fd_ = -1;
    o.committed_ = true;  // the moved-from object owns nothing
}

TempFile::~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
        std::error_code ec;
        std::filesystem::remove(tmp_, ec);
    }
}

void TempFile::write(const void* data, size_t n) {
    PALU_ASSERT(fd_ >= 0, "write after close");
    auto p = static_cast<const char*>(data);
    while (n > 0) {
        ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        PALU_CHECK(w > 0, IoError, "formats: %s: write failed: %s", tmp_.string().c_str(),
                   std::strerror(errno));
        p += w;
        n -= static_cast<size_t>(w);
    }
}

void TempFile::close() {
    if (fd_ < 0) return;
    int rc = ::fdatasync(fd_);
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    PALU_CHECK(rc == 0, IoError, "formats: %s: fdatasync failed: %s", tmp_.string().c_str(),
               std::strerror(err));
}

void TempFile::commit() {
    close();
    std::error_code ec;
    std::filesystem::rename(tmp_, final_, ec);
    PALU_CHECK(!ec, IoError, "formats: %s: cannot rename into place: %s", final_.string().c_str(),
               ec.message().c_str());
    committed_ = true;
}

MappedFile MappedFile::map(int fd, size_t size, const std::string& source) {
    MappedFile m;
    if (size == 0) return m;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    PALU_CHECK(p != MAP_FAILED, IoError, "formats: %s: mmap of %zu bytes failed: %s",
               source.c_str(), size, std::strerror(errno));
    m.data_ = static_cast<const uint8_t*>(p);
    m.size_ = size;
    return m;
}

MappedFile::MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
    if (this != &o) {
        if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
        data_ = o.data_;
        size_ = o.size_;
        o.data_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace palu::formats::detail
