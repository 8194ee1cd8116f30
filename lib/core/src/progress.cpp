// palu core: progress lines with ETA.
#include "palu/core/progress.h"

#include "palu/core/format.h"
#include "palu/core/log.h"

namespace palu {

std::string duration_str(double s) {
    if (s < 90) return strfmt("%.1f s", s);
    if (s < 5400) return strfmt("%.1f min", s / 60);
    return strfmt("%.1f h", s / 3600);
}

Progress::Progress(std::string stage, std::string what, int64_t n_total, double min_interval_s)
    : stage_(std::move(stage)),
      what_(std::move(what)),
      n_total_(n_total),
      min_interval_s_(min_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double Progress::elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t n_done, const std::string& extra) {
    auto now = std::chrono::steady_clock::now();
    double since_last = std::chrono::duration<double>(now - last_).count();
    bool last = n_done >= n_total_;
    if (printed_ && !last && since_last < min_interval_s_) return;
    double el = elapsed_s();
    std::string eta = "";
    if (n_done > 0 && !last) {
        double rem = el / static_cast<double>(n_done) * static_cast<double>(n_total_ - n_done);
        eta = ", ETA " + duration_str(rem);
    }
    if (static_cast<int>(LogLevel::Info) < static_cast<int>(log_level())) return;
    log_write(LogLevel::Info, stage_.c_str(), "progress", "%s %lld/%lld %s%s%s%s", what_.c_str(),
              static_cast<long long>(n_done), static_cast<long long>(n_total_),
              duration_str(el).c_str(), eta.c_str(), extra.empty() ? "" : "  ", extra.c_str());
    printed_ = true;
    last_ = now;
}

}  // namespace palu
