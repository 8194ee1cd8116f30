// palu formats: dispatch on the kind of checkpoint path.
#include "palu/formats/model_loader.h"

#include <atomic>
#include <cstring>
#include <fstream>

#include "palu/core/error.h"

namespace palu::formats {

namespace {
std::atomic<int64_t> g_open_count{0};
}  // namespace

int64_t open_model_count() {
    return g_open_count.load();
}

std::unique_ptr<WeightSource> open_model(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    ++g_open_count;
    PALU_CHECK(fs::exists(path), IoError, "formats: %s: no such file or directory",
               path.string().c_str());
    if (fs::is_directory(path)) return open_hf_model(path);
    auto ext = path.extension().string();
    if (ext == ".safetensors") return open_hf_model(path);
    // Decide by magic where the extension is ambiguous: GGUF files start with "GGUF".
    char magic[4] = {0, 0, 0, 0};
    {
        std::ifstream f(path, std::ios::binary);
        PALU_CHECK(f.good(), IoError, "formats: %s: cannot open for reading",
                   path.string().c_str());
        f.read(magic, 4);
    }
    if (std::memcmp(magic, "GGUF", 4) == 0) return open_gguf_model(path);
    if (ext == ".gguf")
        PALU_THROW(FormatError,
                   "formats: %s: bad GGUF magic: expected 'GGUF', got %02x %02x %02x %02x",
                   path.string().c_str(), (unsigned char)magic[0], (unsigned char)magic[1],
                   (unsigned char)magic[2], (unsigned char)magic[3]);
    if (ext == ".bin") return open_llama2c_model(path);
    PALU_THROW(
        FormatError,
        "formats: %s: unrecognised model file; expected an HF directory, .safetensors, .gguf "
        "or llama2.c .bin",
        path.string().c_str());
}

}  // namespace palu::formats
