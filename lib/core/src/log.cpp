// palu core: logging to stderr.
#include "palu/core/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "palu/core/error.h"

namespace palu {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) {
    g_level.store(static_cast<int>(level));
}
LogLevel log_level() {
    return static_cast<LogLevel>(g_level.load());
}

LogLevel parse_log_level(const std::string& s) {
    if (s == "debug") return LogLevel::Debug;
    if (s == "info") return LogLevel::Info;
    if (s == "warn") return LogLevel::Warn;
    if (s == "error") return LogLevel::Error;
    if (s == "quiet") return LogLevel::Quiet;
    PALU_THROW(UsageError, "cli: --log-level: expected debug|info|warn|error|quiet, got '%s'",
               s.c_str());
}

void log_write(LogLevel level, const char* stage, const char* func, const char* fmt, ...) {
    static const char tags[] = {'D', 'I', 'W', 'E'};
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fprintf(stderr, "%c %s: %s: %s\n", tags[static_cast<int>(level) & 3], stage, func, buf);
}

}  // namespace palu
