// palu pipeline: RunOptions / StageTimes (run.h).
#include "palu/pipeline/run.h"

#include "palu/core/sysinfo.h"

namespace palu::pipeline {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

StageTimes::StageTimes() : t0_(std::chrono::steady_clock::now()) {}

void StageTimes::done(const std::string& name) {
    stages.push_back({name, seconds_since(t0_), static_cast<int64_t>(peak_rss_bytes())});
    t0_ = std::chrono::steady_clock::now();
}

double StageTimes::seconds(const std::string& name) const {
    for (const auto& s : stages)
        if (s.name == name) return s.seconds;
    return 0.0;
}

nlohmann::json StageTimes::to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& s : stages)
        j[s.name] = {{"seconds", s.seconds}, {"peak_rss_bytes", s.peak_rss_bytes}};
    return j;
}

}  // namespace palu::pipeline
