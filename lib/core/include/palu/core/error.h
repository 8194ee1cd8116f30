// palu core: typed errors and exit codes (STYLE.md "Error policy").
// Bad input -> a palu::Error subclass thrown with PALU_CHECK; internal bugs -> PALU_ASSERT (abort).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "palu/core/format.h"

namespace palu {

/// Stable error categories; the apps map them to process exit codes.
enum class ErrorCode : int {
    Usage = 2,
    Format = 3,
    Shape = 4,
    Numerical = 5,
    Io = 6,
    Cuda = 7,
};

/// Base of every error palu throws for bad input. `what()` is the one-line message
/// `<stage>: <object> <what>: expected <x>, got <y>[; hint: <action>]`.
class Error : public std::runtime_error {
   public:
    Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
    ErrorCode code() const noexcept { return code_; }
    int exit_code() const noexcept { return static_cast<int>(code_); }
    /// Short, stable id for the category ("usage", "format", ...).
    const char* code_name() const noexcept;

   private:
    ErrorCode code_;
};

#define PALU_DEFINE_ERROR(Name, Code)                                          \
    class Name : public Error {                                                \
       public:                                                                 \
        explicit Name(const std::string& msg) : Error(ErrorCode::Code, msg) {} \
    };

PALU_DEFINE_ERROR(UsageError, Usage)
PALU_DEFINE_ERROR(FormatError, Format)
PALU_DEFINE_ERROR(ShapeError, Shape)
PALU_DEFINE_ERROR(NumericalError, Numerical)
PALU_DEFINE_ERROR(IoError, Io)
PALU_DEFINE_ERROR(CudaError, Cuda)
#undef PALU_DEFINE_ERROR

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

/// Optional printf-style detail of a PALU_ASSERT (empty when none is given).
inline std::string assert_detail() {
    return {};
}
template <typename... Args>
std::string assert_detail(const char* fmt, Args... args) {
    return strfmt(fmt, args...);
}

}  // namespace palu

/// Internal invariant: prints file:line and the expression, then aborts. Never for input.
#define PALU_ASSERT(cond, ...)                                                                  \
    do {                                                                                        \
        if (!(cond))                                                                            \
            ::palu::assert_fail(#cond, __FILE__, __LINE__, ::palu::assert_detail(__VA_ARGS__)); \
    } while (0)

/// Input check: throws ErrType(formatted message) when cond is false.
#define PALU_CHECK(cond, ErrType, ...)                           \
    do {                                                         \
        if (!(cond)) throw ErrType(::palu::strfmt(__VA_ARGS__)); \
    } while (0)

/// Unconditional throw with a formatted message.
#define PALU_THROW(ErrType, ...) throw ErrType(::palu::strfmt(__VA_ARGS__))
