// palu core: leveled logging to stderr (results go to stdout only; STYLE.md "Logging").
// Lines look like `I calibrate: collect_gram: layer 3/30 ...`. Arguments are evaluated only when
// the level is enabled.
#pragma once

#include <string>

namespace palu {

enum class LogLevel : int { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
/// Parses "debug|info|warn|error|quiet"; throws UsageError otherwise.
LogLevel parse_log_level(const std::string& s);
void log_write(LogLevel level, const char* stage, const char* func, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace palu

#define PALU_LOG_AT(level, stage, ...)                                        \
    do {                                                                      \
        if (static_cast<int>(level) >= static_cast<int>(::palu::log_level())) \
            ::palu::log_write(level, stage, __func__, __VA_ARGS__);           \
    } while (0)
#define PALU_LOG_DEBUG(stage, ...) PALU_LOG_AT(::palu::LogLevel::Debug, stage, __VA_ARGS__)
#define PALU_LOG_INFO(stage, ...) PALU_LOG_AT(::palu::LogLevel::Info, stage, __VA_ARGS__)
#define PALU_LOG_WARN(stage, ...) PALU_LOG_AT(::palu::LogLevel::Warn, stage, __VA_ARGS__)
#define PALU_LOG_ERROR(stage, ...) PALU_LOG_AT(::palu::LogLevel::Error, stage, __VA_ARGS__)
