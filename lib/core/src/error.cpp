// palu core: error helpers.
#include "palu/core/error.h"

namespace palu {

const char* Error::code_name() const noexcept {
    switch (code_) {
        case ErrorCode::Usage: return "usage";
        case ErrorCode::Format: return "format";
        case ErrorCode::Shape: return "shape";
        case ErrorCode::Numerical: return "numerical";
        case ErrorCode::Io: return "io";
        case ErrorCode::Cuda: return "cuda";
    }
    return "unknown";
}

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
    std::fprintf(stderr, "palu: internal error at %s:%d: assertion '%s' failed%s%s\n", file, line,
                 expr, msg.empty() ? "" : ": ", msg.c_str());
    std::fflush(stderr);
    std::abort();
}

}  // namespace palu
