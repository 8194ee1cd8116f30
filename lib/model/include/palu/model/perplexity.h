// palu model: perplexity over non-overlapping windows.
// ppl = exp(mean over windows of the window's mean next-token NLL), each window of N tokens giving
// N-1 predictions (the convention of the Palu reference and of most LLM compression papers).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "palu/model/transformer.h"

namespace palu::model {

struct PerplexityResult {
    std::vector<double> window_nll;  // [n_windows] mean NLL of each window (nats)
    double nll = 0.0;                // mean of window_nll
    double ppl = 0.0;                // exp(nll)
    int64_t n_windows = 0;
    int64_t n_tokens = 0;  // n_windows * seqlen (tokens run through the model)
    int64_t seqlen = 0;
    double seconds = 0.0;
    int64_t kv_bytes_per_token = 0;  // from the cache object used
};

/// Scores windows tokens[i*seqlen, (i+1)*seqlen) for i < n_windows (all full windows when
/// max_windows <= 0), n_batch windows per forward. `on_window(done, total)` is called after each
/// batch. Throws UsageError when fewer than one full window is available or seqlen < 2.
PerplexityResult compute_perplexity(const Transformer& model, const std::vector<int32_t>& tokens,
                                    int64_t seqlen, int64_t max_windows, int64_t n_batch,
                                    const std::function<void(int64_t, int64_t)>& on_window = {});

}  // namespace palu::model
