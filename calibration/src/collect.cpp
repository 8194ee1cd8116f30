// palu calibration: Gram and Fisher collection (see collect.h).
#include "palu/calib/collect.h"

#include <cblas.h>

#include <algorithm>
#include <memory>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/core/progress.h"

namespace palu::calib {

namespace {

// Clears the engine's observers on scope exit (also on exceptions).
struct ObserverGuard {
    model::Transformer& engine;
    ~ObserverGuard() { engine.clear_observers(); }
};

}  // namespace

GramStats collect_gram(model::Transformer& engine, const CalibWindows& windows,
                       const CollectOptions& opts) {
    const auto& cfg = engine.config();
    const int64_t L = cfg.n_layers, d = cfg.d_model, n = windows.n_samples();
    PALU_CHECK(n > 0, UsageError, "calibrate: no calibration windows");
    // Lower triangles (row-major) accumulated with BLAS dsyrk rank updates, mirrored at the end.
    GramStats out;
    out.d = d;
    out.gram.assign(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(d * d), 0.0));
    std::vector<double> xd;
    int64_t n_rows_seen = 0;
    engine.clear_observers();
    ObserverGuard guard{engine};
    engine.add_observer([&](int64_t layer, model::ObservePoint point, const TensorView& x) {
        if (point != model::ObservePoint::KvInput) return;
        PALU_ASSERT(x.ndim() == 2 && x.dim(1) == d, "KvInput view of width %lld",
                    static_cast<long long>(x.dim(1)));
        // x [n_rows, d] f32 -> f64 before the products (f64 products and sums); G += xᵀ x.
        const int64_t n_rows = x.dim(0);
        xd.assign(x.data, x.data + n_rows * d);
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<int>(d),
                    static_cast<int>(n_rows), 1.0, xd.data(), static_cast<int>(d), 1.0,
                    out.gram[static_cast<size_t>(layer)].data(), static_cast<int>(d));
        if (layer == 0) n_rows_seen += x.dim(0);
    });
    const int64_t n_batch = std::max<int64_t>(1, std::min(opts.n_batch, n));
    std::unique_ptr<Progress> progress;
    if (opts.progress) progress = std::make_unique<Progress>("calibrate", "gram window", n);
    for (int64_t i = 0; i < n; i += n_batch) {
        const int64_t b = std::min(n_batch, n - i);
        auto cache = engine.make_cache(b, windows.seqlen);
        engine.forward(windows.window(i), b, windows.seqlen, *cache, /*last_only=*/true);
        if (progress) progress->update(i + b);
    }
    PALU_ASSERT(n_rows_seen == n * windows.seqlen, "observer saw %lld rows",
                static_cast<long long>(n_rows_seen));
    out.n_tokens = n_rows_seen;
    for (auto& g : out.gram)
        for (int64_t r = 0; r < d; ++r)
            for (int64_t c = r + 1; c < d; ++c)
                g[static_cast<size_t>(r * d + c)] = g[static_cast<size_t>(c * d + r)];
    return out;
}

FisherStats collect_fisher(const model::Transformer& engine, const CalibWindows& windows,
                           model::LabelShift shift, const CollectOptions& opts) {
    const auto& cfg = engine.config();
    const int64_t L = cfg.n_layers, n = windows.n_samples();
    PALU_CHECK(n > 0, UsageError, "calibrate: no calibration windows");
    PALU_CHECK(windows.seqlen > static_cast<int64_t>(shift), UsageError,
               "calibrate: --seqlen %lld is too short for the Fisher label shift %d",
               static_cast<long long>(windows.seqlen), static_cast<int>(shift));
    FisherStats out;
    out.d = cfg.d_model;
    out.n_out = cfg.n_kv_heads * cfg.d_head;
    const size_t numel = static_cast<size_t>(out.n_out * out.d);
    out.k.assign(static_cast<size_t>(L), std::vector<double>(numel, 0.0));
    out.v.assign(static_cast<size_t>(L), std::vector<double>(numel, 0.0));
    auto add_squares = [numel](std::vector<double>& f, const Tensor& g) {
        PALU_ASSERT(static_cast<size_t>(g.numel()) == numel, "gradient of %lld values",
                    static_cast<long long>(g.numel()));
        const float* p = g.data();
        for (size_t i = 0; i < numel; ++i)
            f[i] += static_cast<double>(p[i]) * static_cast<double>(p[i]);
    };
    std::unique_ptr<Progress> progress;
    if (opts.progress) progress = std::make_unique<Progress>("calibrate", "fisher window", n);
    double loss_sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const model::KvGradients gr = engine.kv_gradients(windows.window(i), windows.seqlen, shift);
        PALU_CHECK(
            static_cast<int64_t>(gr.d_wk.size()) == L && static_cast<int64_t>(gr.d_wv.size()) == L,
            ShapeError, "calibrate: the engine returned gradients for %zu layers, expected %lld",
            gr.d_wk.size(), static_cast<long long>(L));
        for (int64_t l = 0; l < L; ++l) {
            add_squares(out.k[static_cast<size_t>(l)], gr.d_wk[static_cast<size_t>(l)]);
            add_squares(out.v[static_cast<size_t>(l)], gr.d_wv[static_cast<size_t>(l)]);
        }
        loss_sum += gr.loss;
        if (progress) progress->update(i + 1, strfmt("loss %.4f", gr.loss));
    }
    out.n_samples = n;
    out.mean_loss = loss_sum / static_cast<double>(n);
    return out;
}

}  // namespace palu::calib
