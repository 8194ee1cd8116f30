// palu test fixture tool: writes the tiny random Llama checkpoint of tiny_model.h (2 layers,
// d_model 64, 4 heads, 2 KV heads of 16 dims, vocabulary 96) for ctest fixtures that run programs
// rather than GoogleTest cases (examples/). Optionally also a raw int32 token file for calibration.
// Usage: palu_test_write_tiny MODEL_DIR [TOKENS_FILE]
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

#include "palu/core/error.h"
#include "tiny_model.h"

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL_DIR [TOKENS_FILE]\n", argv[0]);
        return 2;
    }
    try {
        const palu::ModelConfig c = palu::test::write_tiny_checkpoint(argv[1]);
        if (argc == 3) {
            // 4096 ids spread over the whole vocabulary (a fixed stride, no RNG: reproducible).
            std::vector<int32_t> ids(4096);
            for (size_t i = 0; i < ids.size(); ++i)
                ids[i] = static_cast<int32_t>((i * 7919) % static_cast<size_t>(c.n_vocab));
            std::ofstream f(argv[2], std::ios::binary);
            f.write(reinterpret_cast<const char*>(ids.data()),
                    static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
            PALU_CHECK(f.good(), palu::IoError, "write_tiny: cannot write %s", argv[2]);
        }
    } catch (const palu::Error& e) {
        std::fprintf(stderr, "E %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
