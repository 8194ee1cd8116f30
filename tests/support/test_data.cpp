// palu tests: shared data and model file lookup.
#include "test_data.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace palu::test {

std::filesystem::path source_root() {
    if (const char* s = std::getenv("PALU_SOURCE_DIR"); s && *s) return s;
#ifdef PALU_SOURCE_DIR
    return PALU_SOURCE_DIR;
#else
    return std::filesystem::current_path();
#endif
}

std::filesystem::path data_root() {
    if (const char* s = std::getenv("PALU_TEST_DATA"); s && *s) return s;
    return source_root() / ".." / "shared" / "data";
}

bool data_required() {
    const char* s = std::getenv("PALU_TEST_DATA");
    return s && *s;
}

std::optional<std::filesystem::path> find_data(const std::string& rel) {
    auto p = data_root() / rel;
    if (std::filesystem::exists(p)) return p;
    return std::nullopt;
}

bool model_file_required(const char* ci) {
    return ci && std::strcmp(ci, "true") == 0;
}

bool model_file_required() {
    return model_file_required(std::getenv("CI"));
}

std::optional<std::filesystem::path> find_model_file(const std::string& rel) {
    auto p = source_root() / rel;
    if (std::filesystem::exists(p)) return p;
    return std::nullopt;
}

std::string missing_model_file_message(const std::string& rel, const std::string& how,
                                       bool required) {
    const std::string path = (source_root() / rel).string();
    if (required) return "missing model file " + path + " (CI=true); run " + how;
    return "needs model file " + path + "; run " + how;
}

std::filesystem::path make_temp_dir(const std::string& tag) {
    static std::atomic<int> counter{0};
    auto base =
        std::filesystem::path(::testing::TempDir()) /
        ("palu_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(base);
    std::filesystem::create_directories(base);
    return base;
}

}  // namespace palu::test
