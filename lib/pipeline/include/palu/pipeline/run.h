// palu pipeline: what every stage driver shares — thread count, progress, and per-stage timing.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace palu::pipeline {

/// How a run uses the machine (--threads, --quiet).
struct RunOptions {
    int n_threads = 0;     ///< 0 = all cores
    bool progress = true;  ///< progress lines with ETA on stderr
};

/// Wall time and peak RSS at the end of each stage of a run, in order.
struct StageTimes {
    struct Stage {
        std::string name;
        double seconds = 0.0;
        int64_t peak_rss_bytes = 0;
    };
    std::vector<Stage> stages;

    StageTimes();
    /// Closes the stage that began at the previous done() (or construction).
    void done(const std::string& name);
    /// Seconds of `name`; 0 when it did not run.
    double seconds(const std::string& name) const;
    nlohmann::json to_json() const;

   private:
    std::chrono::steady_clock::time_point t0_;
};

/// Seconds since `t0`.
double seconds_since(std::chrono::steady_clock::time_point t0);

}  // namespace palu::pipeline
