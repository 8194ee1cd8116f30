// palu model: perplexity over non-overlapping windows (exp of the mean window NLL).
#include "palu/model/perplexity.h"

#include <chrono>
#include <cmath>

#include "palu/core/error.h"

namespace palu::model {

PerplexityResult compute_perplexity(const Transformer& model, const std::vector<int32_t>& tokens,
                                    int64_t seqlen, int64_t max_windows, int64_t n_batch,
                                    const std::function<void(int64_t, int64_t)>& on_window) {
    PALU_CHECK(seqlen >= 2, UsageError, "eval: --seqlen must be >= 2, got %lld",
               static_cast<long long>(seqlen));
    PALU_CHECK(n_batch >= 1, UsageError, "eval: --batch must be >= 1, got %lld",
               static_cast<long long>(n_batch));
    const int64_t n_avail = static_cast<int64_t>(tokens.size()) / seqlen;
    PALU_CHECK(n_avail >= 1, UsageError,
               "eval: %zu tokens do not fill one window of %lld; hint: lower --seqlen",
               tokens.size(), static_cast<long long>(seqlen));
    PerplexityResult res;
    res.seqlen = seqlen;
    res.n_windows = max_windows > 0 ? std::min(max_windows, n_avail) : n_avail;
    res.n_tokens = res.n_windows * seqlen;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t w0 = 0; w0 < res.n_windows; w0 += n_batch) {
        const int64_t nb = std::min(n_batch, res.n_windows - w0);
        auto cache = model.make_cache(nb, seqlen);
        res.kv_bytes_per_token = cache->bytes_per_token();
        const int32_t* win = tokens.data() + w0 * seqlen;  // [nb, seqlen]
        for (double v : model.forward_nll(win, nb, seqlen, *cache)) res.window_nll.push_back(v);
        if (on_window) on_window(w0 + nb, res.n_windows);
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double sum = 0.0;
    for (double v : res.window_nll) sum += v;
    res.nll = sum / static_cast<double>(res.n_windows);
    res.ppl = std::exp(res.nll);
    return res;
}

}  // namespace palu::model
