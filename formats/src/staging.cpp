// palu formats: atomic output directories and files (staging.h).
#include "palu/formats/staging.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "palu/core/error.h"

namespace palu::formats {

namespace fs = std::filesystem;

StagingDir::StagingDir(const fs::path& out_dir, bool overwrite, const fs::path& source_dir,
                       const char* stage)
    : stage_(stage) {
    PALU_CHECK(!out_dir.empty(), UsageError, "%s: empty output directory; hint: pass --out", stage);
    std::error_code ec;
    final_ = fs::absolute(out_dir, ec).lexically_normal();
    if (final_.filename().empty()) final_ = final_.parent_path();  // "dir/"
    const std::string where = final_.string();
    if (fs::exists(final_, ec)) {
        PALU_CHECK(fs::is_directory(final_, ec), UsageError,
                   "%s: %s exists and is not a directory; hint: choose another --out", stage,
                   where.c_str());
        // Replacing out_dir must never delete the model being read (its directory or one above).
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
    const std::string name = "." + final_.filename().string();
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

StagingDir::~StagingDir() {
    if (committed_) return;
    std::error_code ec;
    fs::remove_all(tmp_, ec);
}

void StagingDir::commit() {
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
        PALU_THROW(IoError, "%s: cannot rename %s to %s: %s; hint: choose another --out", stage_,
                   tmp_.string().c_str(), final_.string().c_str(), ec.message().c_str());
    }
    committed_ = true;
    if (had_old) fs::remove_all(backup_, ec);
}

void check_output_dir(const fs::path& out_dir, bool overwrite, const char* stage) {
    PALU_CHECK(!out_dir.empty(), UsageError, "%s: no output directory; hint: pass --out DIR",
               stage);
    const fs::path out = fs::absolute(out_dir);
    const std::string name = out_dir.string();
    if (fs::exists(out)) {
        PALU_CHECK(fs::is_directory(out), UsageError,
                   "%s: --out %s exists and is not a directory; hint: choose another --out", stage,
                   name.c_str());
        PALU_CHECK(overwrite || fs::is_empty(out), UsageError,
                   "%s: --out %s exists and is not empty; hint: pass --overwrite or choose "
                   "another --out",
                   stage, name.c_str());
    }
    const fs::path parent = out.parent_path();
    PALU_CHECK(fs::is_directory(parent), IoError,
               "%s: cannot write %s: directory %s does not exist; hint: choose another --out",
               stage, name.c_str(), parent.string().c_str());
    PALU_CHECK(::access(parent.c_str(), W_OK | X_OK) == 0, IoError,
               "%s: cannot write %s: directory %s is not writable; hint: choose another --out",
               stage, name.c_str(), parent.string().c_str());
}

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

void write_file_atomically(const fs::path& path, const std::string& text, const char* stage) {
    const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
    write_text_file(tmp, text, stage);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) fs::remove(tmp);
    PALU_CHECK(!ec, IoError, "%s: cannot write %s: %s", stage, path.string().c_str(),
               ec.message().c_str());
}

void copy_file_into(const fs::path& src, const fs::path& dir, const char* stage) {
    std::error_code ec;
    fs::copy_file(src, dir / src.filename(), fs::copy_options::overwrite_existing, ec);
    PALU_CHECK(!ec, IoError, "%s: cannot copy %s into %s: %s", stage, src.string().c_str(),
               dir.string().c_str(), ec.message().c_str());
}

}  // namespace palu::formats
