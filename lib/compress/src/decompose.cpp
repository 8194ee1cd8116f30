// palu compress: whitened / plain group SVD and Hadamard fusion (reference §2.3, §3.4, §5.1).
// All factorization math runs in f64 (ARCHITECTURE.md "Numerics"); factors are stored in f32.
#include "palu/compress/decompose.h"

#include <algorithm>
#include <cmath>

#include "palu/core/error.h"
#include "palu/linalg/decompositions.h"
#include "palu/linalg/solve.h"

namespace palu::compress {

const char* decompose_method_name(DecomposeMethod m) {
    return m == DecomposeMethod::Whitened ? "whiten" : "svd";
}

GroupFactors decompose_group(const RowMatrixXd& w_g, int64_t rank, DecomposeMethod method,
                             const RowMatrixXd* whitening, const std::string& name) {
    const int64_t m = w_g.rows();
    const int64_t d = w_g.cols();
    PALU_CHECK(m > 0 && d > 0, ShapeError, "decompose: %s weight has wrong shape: got [%lld,%lld]",
               name.c_str(), static_cast<long long>(m), static_cast<long long>(d));
    PALU_CHECK(rank >= 1 && rank <= std::min(m, d), UsageError,
               "decompose: %s rank out of range: expected 1 <= r <= %lld, got %lld", name.c_str(),
               static_cast<long long>(std::min(m, d)), static_cast<long long>(rank));
    PALU_CHECK(method != DecomposeMethod::Whitened || whitening != nullptr, UsageError,
               "decompose: %s whitened SVD needs the whitening factor: expected S [%lld,%lld], "
               "got none; hint: provide calibration statistics or use the plain SVD",
               name.c_str(), static_cast<long long>(d), static_cast<long long>(d));
    if (whitening != nullptr)
        PALU_CHECK(whitening->rows() == d && whitening->cols() == d, ShapeError,
                   "decompose: %s whitening factor has wrong shape: expected [%lld,%lld], got "
                   "[%lld,%lld]",
                   name.c_str(), static_cast<long long>(d), static_cast<long long>(d),
                   static_cast<long long>(whitening->rows()),
                   static_cast<long long>(whitening->cols()));
    const bool whiten = method == DecomposeMethod::Whitened;

    // A = W_g·S (whitened) or W_g; its SVD truncation is optimal for the chosen metric.
    const RowMatrixXd a =
        whiten ? linalg::multiply_lower_right(w_g, *whitening, name + " W·S") : w_g;
    const linalg::ThinSvd svd = linalg::thin_svd(a, name + (whiten ? " W·S" : " W"));
    const Eigen::VectorXd sqrt_s = svd.s.head(rank).cwiseSqrt();

    GroupFactors out;
    out.left = svd.u.leftCols(rank) * sqrt_s.asDiagonal();
    RowMatrixXd right = sqrt_s.asDiagonal() * svd.vt.topRows(rank);
    // Un-whitening R = √Σ·Vᵀ·S⁻¹ as the triangular solve X·S = √Σ·Vᵀ (no explicit inverse).
    out.right = whiten ? linalg::solve_lower_right(*whitening, right, name + " whitening factor S")
                       : std::move(right);

    // Energy of the discarded singular values of A is the optimal error in A's metric.
    const double total = a.squaredNorm();
    const double tail = svd.s.tail(svd.s.size() - rank).squaredNorm();
    const RowMatrixXd diff = w_g - linalg::matmul(out.left, out.right, name + " L·R");
    if (whiten) {
        out.error.whitened_abs = tail;
        out.error.whitened_rel = total > 0 ? tail / total : 0.0;
        out.error.plain_abs = diff.squaredNorm();
        const double wn = w_g.squaredNorm();
        out.error.plain_rel = wn > 0 ? out.error.plain_abs / wn : 0.0;
    } else {
        out.error.plain_abs = tail;
        out.error.plain_rel = total > 0 ? tail / total : 0.0;
        if (whitening != nullptr) {
            const RowMatrixXd ds = linalg::multiply_lower_right(diff, *whitening, name + " E·S");
            const RowMatrixXd ws = linalg::multiply_lower_right(w_g, *whitening, name + " W·S");
            out.error.whitened_abs = ds.squaredNorm();
            const double wsn = ws.squaredNorm();
            out.error.whitened_rel = wsn > 0 ? out.error.whitened_abs / wsn : 0.0;
        }
    }
    return out;
}

int64_t LowRankKV::rank_offset(int64_t g) const {
    int64_t off = 0;
    for (int64_t i = 0; i < g; ++i) off += ranks[static_cast<size_t>(i)];
    return off;
}

RowMatrixXf LowRankKV::reconstruct() const {
    const int64_t w = group_width();
    RowMatrixXf out(n_groups() * w, d_model);
    for (int64_t g = 0; g < n_groups(); ++g) {
        const int64_t r = ranks[static_cast<size_t>(g)];
        out.middleRows(g * w, w).noalias() =
            u[static_cast<size_t>(g)] * vt.middleRows(rank_offset(g), r);
    }
    return out;
}

LowRankKV decompose_projection(const RowMatrixXf& w, std::span<const float> bias,
                               const std::vector<int64_t>& ranks, int64_t d_head,
                               int64_t group_size, DecomposeMethod method,
                               const RowMatrixXd* whitening, const std::string& name) {
    PALU_CHECK(d_head > 0 && w.rows() > 0 && w.rows() % d_head == 0, ShapeError,
               "decompose: %s weight has wrong shape: expected [n_kv_heads*%lld, d_model], got "
               "[%lld,%lld]",
               name.c_str(), static_cast<long long>(d_head), static_cast<long long>(w.rows()),
               static_cast<long long>(w.cols()));
    const int64_t n_kv = w.rows() / d_head;
    PALU_CHECK(group_size > 0 && n_kv % group_size == 0, UsageError,
               "decompose: %s group size does not divide the KV heads: expected a divisor of "
               "%lld, got %lld",
               name.c_str(), static_cast<long long>(n_kv), static_cast<long long>(group_size));
    const int64_t n_groups = n_kv / group_size;
    PALU_CHECK(static_cast<int64_t>(ranks.size()) == n_groups, ShapeError,
               "decompose: %s ranks have wrong shape: expected %lld group ranks, got %zu",
               name.c_str(), static_cast<long long>(n_groups), ranks.size());
    PALU_CHECK(bias.empty() || static_cast<int64_t>(bias.size()) == w.rows(), ShapeError,
               "decompose: %s bias has wrong shape: expected [%lld], got [%zu]", name.c_str(),
               static_cast<long long>(w.rows()), bias.size());

    LowRankKV kv;
    kv.d_model = w.cols();
    kv.d_head = d_head;
    kv.group_size = group_size;
    kv.ranks = ranks;
    const int64_t width = kv.group_width();
    int64_t total_rank = 0;
    for (int64_t r : ranks) total_rank += r;
    kv.vt.resize(total_rank, kv.d_model);
    int64_t off = 0;
    for (int64_t g = 0; g < n_groups; ++g) {
        const int64_t r = ranks[static_cast<size_t>(g)];
        const RowMatrixXd w_g = w.middleRows(g * width, width).cast<double>();
        GroupFactors f =
            decompose_group(w_g, r, method, whitening,
                            strfmt("%s group %lld", name.c_str(), static_cast<long long>(g)));
        kv.vt.middleRows(off, r) = f.right.cast<float>();
        kv.u.push_back(f.left.cast<float>());
        kv.errors.push_back(f.error);
        if (!bias.empty())
            kv.bias.emplace_back(bias.begin() + g * width, bias.begin() + (g + 1) * width);
        off += r;
    }
    return kv;
}

void rotate_group_factors(RowMatrixXd& left, RowMatrixXd& right, const RowMatrixXd& m) {
    PALU_CHECK(m.rows() == m.cols() && left.cols() == m.rows() && right.rows() == m.rows(),
               ShapeError, "hadamard: rotation [%lld,%lld] does not match rank %lld / %lld",
               static_cast<long long>(m.rows()), static_cast<long long>(m.cols()),
               static_cast<long long>(left.cols()), static_cast<long long>(right.rows()));
    right = linalg::matmul(RowMatrixXd(m.transpose()), right, "hadamard Mᵀ·R");
    left = linalg::matmul(left, m, "hadamard L·M");
}

void fuse_hadamard(LowRankKV& kv, uint64_t seed) {
    PALU_CHECK(kv.rotations.empty(), UsageError,
               "hadamard: latent rotation already fused: expected unrotated factors");
    for (int64_t g = 0; g < kv.n_groups(); ++g) {
        const int64_t r = kv.ranks[static_cast<size_t>(g)];
        const linalg::LatentRotation rot =
            linalg::make_latent_rotation(r, seed + static_cast<uint64_t>(g));
        RowMatrixXd left = kv.u[static_cast<size_t>(g)].cast<double>();
        RowMatrixXd right = kv.vt.middleRows(kv.rank_offset(g), r).cast<double>();
        rotate_group_factors(left, right, rot.matrix);
        kv.u[static_cast<size_t>(g)] = left.cast<float>();
        kv.vt.middleRows(kv.rank_offset(g), r) = right.cast<float>();
        kv.rotations.push_back({rot.kind, rot.base_order, rot.seed});
    }
}

}  // namespace palu::compress
