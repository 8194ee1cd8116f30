// palu core: one-line-per-unit progress with ETA from the first unit (STYLE.md "Logging").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace palu {

/// Reports `stage: what i/n  x.x s, ETA y` to stderr at Info level, at most every
/// `min_interval_s` seconds (the first and last unit always print).
class Progress {
   public:
    Progress(std::string stage, std::string what, int64_t n_total, double min_interval_s = 2.0);
    /// Marks `n_done` units as finished (cumulative count).
    void update(int64_t n_done, const std::string& extra = {});
    double elapsed_s() const;

   private:
    std::string stage_, what_;
    int64_t n_total_;
    double min_interval_s_;
    std::chrono::steady_clock::time_point start_, last_;
    bool printed_ = false;
};

/// "1.3 min", "42.0 s", "2.1 h".
std::string duration_str(double seconds);

}  // namespace palu
