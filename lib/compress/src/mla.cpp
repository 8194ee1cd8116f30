// palu compress: the MLA rewrite of one attention layer (mla.h).
#include "palu/compress/mla.h"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "palu/core/error.h"
#include "palu/core/format.h"
#include "palu/linalg/decompositions.h"
#include "palu/linalg/solve.h"

namespace palu::compress {

using ll = long long;

const char* rope_select_name(RopeSelect s) {
    return s == RopeSelect::Fold ? "fold" : "high";
}

std::string check_rope_dim(int64_t d_head, int64_t rope_dim, RopeSelect select) {
    if (rope_dim < 2 || rope_dim % 2 != 0)
        return strfmt("the rope dim must be even and >= 2, got %lld", static_cast<ll>(rope_dim));
    if (rope_dim > d_head)
        return strfmt("the rope dim %lld is larger than the head (head_dim %lld)",
                      static_cast<ll>(rope_dim), static_cast<ll>(d_head));
    if (select == RopeSelect::Fold &&
        (d_head % rope_dim != 0 || (d_head / 2) % (rope_dim / 2) != 0))
        return strfmt(
            "--rope-select fold needs a rope dim that divides head_dim %lld into equal frequency "
            "groups, got %lld; hint: use %lld, %lld, ... or --rope-select high",
            static_cast<ll>(d_head), static_cast<ll>(rope_dim), static_cast<ll>(d_head),
            static_cast<ll>(d_head / 2));
    return {};
}

double mla_rope_theta(double theta, int64_t d_head, int64_t rope_dim, RopeSelect select) {
    if (select == RopeSelect::Fold) return theta;
    return std::pow(theta, static_cast<double>(rope_dim) / static_cast<double>(d_head));
}

RopeDecoupling decouple_rope(const RowMatrixXd& wk, const RowMatrixXd& gram, const MlaShape& s,
                             int64_t rope_dim, RopeSelect select, const RowMatrixXd* wq) {
    const int64_t d = s.d_head, half = d / 2, n_kv = s.n_kv_heads, dm = s.d_model;
    const std::string why = check_rope_dim(d, rope_dim, select);
    PALU_CHECK(why.empty(), UsageError, "mla: %s", why.c_str());
    PALU_CHECK(wk.rows() == n_kv * d && wk.cols() == dm && gram.rows() == dm && gram.cols() == dm,
               ShapeError, "mla: k_proj [%lld,%lld] / Gram [%lld,%lld] do not match the shape",
               static_cast<ll>(wk.rows()), static_cast<ll>(wk.cols()), static_cast<ll>(gram.rows()),
               static_cast<ll>(gram.cols()));
    RopeDecoupling out;
    out.rope_dim = rope_dim;
    out.select = select;
    const int64_t n_pairs = rope_dim / 2, fold = half / n_pairs;
    out.group.assign(static_cast<size_t>(half), -1);
    for (int64_t i = 0; i < half; ++i)
        out.group[static_cast<size_t>(i)] =
            select == RopeSelect::Fold ? i / fold : (i < n_pairs ? i : -1);
    out.ux.assign(static_cast<size_t>(n_kv * half), 0.0);
    out.uy.assign(static_cast<size_t>(n_kv * half), 0.0);
    out.k_pe = RowMatrixXd::Zero(rope_dim, dm);
    out.k_res = wk;

    const RowMatrixXd kg = wk * gram;  // [n_kv·d, d_model]: rows of W_k·G
    for (int64_t r = 0; r < wk.rows(); ++r) out.key_energy += kg.row(r).dot(wk.row(r));
    // Channel weights w[j·half + i] (1 without queries): the query energy that meets the channel.
    std::vector<double> wch(static_cast<size_t>(n_kv * half), 1.0);
    if (wq != nullptr) {
        PALU_CHECK(wq->rows() == s.n_heads * d && wq->cols() == dm, ShapeError,
                   "mla: q_proj [%lld,%lld] does not match the shape", static_cast<ll>(wq->rows()),
                   static_cast<ll>(wq->cols()));
        const RowMatrixXd qg = *wq * gram;
        std::fill(wch.begin(), wch.end(), 0.0);
        const int64_t per_kv = s.n_heads / n_kv;
        double wmax = 0.0;
        for (int64_t h = 0; h < s.n_heads; ++h)
            for (int64_t i = 0; i < half; ++i) {
                const int64_t a = h * d + i, b = a + half;
                double& w = wch[static_cast<size_t>((h / per_kv) * half + i)];
                w += qg.row(a).dot(wq->row(a)) + qg.row(b).dot(wq->row(b));
                wmax = std::max(wmax, w);
            }
        for (double& w : wch) w = std::max(w, 1e-12 * wmax + 1e-300);
    }
    for (int64_t g = 0; g < n_pairs; ++g) {
        // Channels (kv head j, frequency i) of this pair: a = row j·d + i, b = row j·d + i + d/2.
        std::vector<std::pair<int64_t, int64_t>> ch;
        for (int64_t j = 0; j < n_kv; ++j)
            for (int64_t i = 0; i < half; ++i)
                if (out.group[static_cast<size_t>(i)] == g) ch.emplace_back(j, i);
        const int64_t n = static_cast<int64_t>(ch.size());
        auto ra = [&](int64_t m) { return ch[m].first * d + ch[m].second; };
        auto rb = [&](int64_t m) { return ra(m) + half; };
        // E[z zᴴ] = Re + i·Im with Re = E[a aᵀ + b bᵀ], Im = E[b aᵀ − a bᵀ]; its real form
        // [[Re, −Im], [Im, Re]] has the eigenvector [x; y] for u = x + i·y.
        RowMatrixXd h(2 * n, 2 * n);
        for (int64_t m = 0; m < n; ++m)
            for (int64_t k = 0; k < n; ++k) {
                const double re =
                    kg.row(ra(m)).dot(wk.row(ra(k))) + kg.row(rb(m)).dot(wk.row(rb(k)));
                const double im =
                    kg.row(rb(m)).dot(wk.row(ra(k))) - kg.row(ra(m)).dot(wk.row(rb(k)));
                h(m, k) = re;
                h(n + m, n + k) = re;
                h(n + m, k) = im;
                h(m, n + k) = -im;
            }
        // Weighted: W^½·E[z zᴴ]·W^½ (W = diag(w) on both the real and imaginary blocks).
        std::vector<double> sw(static_cast<size_t>(n));
        for (int64_t m = 0; m < n; ++m)
            sw[m] = std::sqrt(wch[static_cast<size_t>(ch[m].first * half + ch[m].second)]);
        for (int64_t a = 0; a < 2 * n; ++a)
            for (int64_t b = 0; b < 2 * n; ++b) h(a, b) *= sw[a % n] * sw[b % n];
        const linalg::SymmetricEigen eig =
            linalg::symmetric_eigen(h, strfmt("mla rope pair %lld", static_cast<ll>(g)));
        const int64_t top = 2 * n - 1;
        Eigen::RowVectorXd p = Eigen::RowVectorXd::Zero(dm), q = Eigen::RowVectorXd::Zero(dm);
        for (int64_t m = 0; m < n; ++m) {
            // k_pe = vᴴz with v = √w⊙e: Re = Σ vx·a + vy·b, Im = Σ vx·b − vy·a.
            const double vx = sw[m] * eig.vectors(m, top), vy = sw[m] * eig.vectors(n + m, top);
            p += vx * wk.row(ra(m)) + vy * wk.row(rb(m));
            q += vx * wk.row(rb(m)) - vy * wk.row(ra(m));
            const size_t ui = static_cast<size_t>(ch[m].first * half + ch[m].second);
            out.ux[ui] = eig.vectors(m, top) / sw[m];
            out.uy[ui] = eig.vectors(n + m, top) / sw[m];
        }
        out.k_pe.row(2 * g) = p;
        out.k_pe.row(2 * g + 1) = q;
        for (int64_t m = 0; m < n; ++m) {
            const size_t ui = static_cast<size_t>(ch[m].first * half + ch[m].second);
            const double x = out.ux[ui], y = out.uy[ui];
            // residual z − u·k_pe: u·k_pe = (x·p − y·q) + i·(x·q + y·p).
            out.k_res.row(ra(m)) -= x * p - y * q;
            out.k_res.row(rb(m)) -= x * q + y * p;
        }
    }
    const RowMatrixXd rg = out.k_res * gram;
    double residual = 0.0;
    for (int64_t r = 0; r < wk.rows(); ++r) residual += rg.row(r).dot(out.k_res.row(r));
    out.kept_energy = out.key_energy - residual;
    return out;
}

RowMatrixXd mla_q_proj(const RowMatrixXd& wq, const RopeDecoupling& rope, const MlaShape& s,
                       double scale) {
    const int64_t d = s.d_head, half = d / 2, dr = rope.rope_dim, dm = s.d_model;
    PALU_CHECK(wq.rows() == s.n_heads * d && wq.cols() == dm, ShapeError,
               "mla: q_proj [%lld,%lld]: expected [%lld,%lld]", static_cast<ll>(wq.rows()),
               static_cast<ll>(wq.cols()), static_cast<ll>(s.n_heads * d), static_cast<ll>(dm));
    const int64_t per_kv = s.n_heads / s.n_kv_heads;
    RowMatrixXd out = RowMatrixXd::Zero(s.n_heads * (d + dr), dm);
    for (int64_t h = 0; h < s.n_heads; ++h) {
        const int64_t j = h / per_kv, base = h * (d + dr);
        out.middleRows(base, d) = scale * wq.middleRows(h * d, d);
        for (int64_t i = 0; i < half; ++i) {
            const int64_t g = rope.group[static_cast<size_t>(i)];
            if (g < 0) continue;
            const size_t ui = static_cast<size_t>(j * half + i);
            const double x = rope.ux[ui], y = rope.uy[ui];
            // q_pe = conj(u_j)·q: Re = Σ x·qa + y·qb, Im = Σ x·qb − y·qa.
            const auto qa = wq.row(h * d + i), qb = wq.row(h * d + i + half);
            out.row(base + d + 2 * g) += scale * (x * qa + y * qb);
            out.row(base + d + 2 * g + 1) += scale * (x * qb - y * qa);
        }
    }
    return out;
}

OutputMetric output_metric(const RowMatrixXd& wq, const RowMatrixXd& wo, const RowMatrixXd& gram,
                           const MlaShape& s) {
    const int64_t d = s.d_head, per_kv = s.n_heads / s.n_kv_heads;
    PALU_CHECK(wq.rows() == s.n_heads * d && wo.cols() == s.n_heads * d, ShapeError,
               "mla: q_proj / o_proj do not match the shape");
    OutputMetric out;
    auto upper = [&](RowMatrixXd m, const char* what, int64_t j) {
        m.diagonal().array() += 1e-6 * m.trace() / static_cast<double>(d) + 1e-300;
        const Eigen::LLT<Eigen::MatrixXd> llt(m);
        PALU_CHECK(llt.info() == Eigen::Success, NumericalError,
                   "mla: %s metric of kv head %lld is not positive definite", what,
                   static_cast<ll>(j));
        return RowMatrixXd(llt.matrixU());
    };
    const RowMatrixXd qg = wq * gram;
    for (int64_t j = 0; j < s.n_kv_heads; ++j) {
        RowMatrixXd mk = RowMatrixXd::Zero(d, d), mv = RowMatrixXd::Zero(d, d);
        for (int64_t h = j * per_kv; h < (j + 1) * per_kv; ++h) {
            mk += qg.middleRows(h * d, d) * wq.middleRows(h * d, d).transpose();
            const auto wo_h = wo.middleCols(h * d, d);
            mv += wo_h.transpose() * wo_h;
        }
        out.k_upper.push_back(upper(mk, "K", j));
        out.v_upper.push_back(upper(mv, "V", j));
    }
    return out;
}

JointLatent joint_latent(const RowMatrixXd& k_res, const RowMatrixXd& wv, const RowMatrixXd& chol,
                         int64_t rank, double alpha, const std::string& name,
                         const OutputMetric* metric, const MlaShape* shape) {
    PALU_CHECK(k_res.rows() == wv.rows() && k_res.cols() == wv.cols(), ShapeError,
               "mla: %s: K_res [%lld,%lld] and v_proj [%lld,%lld] differ", name.c_str(),
               static_cast<ll>(k_res.rows()), static_cast<ll>(k_res.cols()),
               static_cast<ll>(wv.rows()), static_cast<ll>(wv.cols()));
    JointLatent out;
    const int64_t nk = k_res.rows();
    PALU_CHECK(
        metric == nullptr || (shape != nullptr &&
                              shape->d_head * static_cast<int64_t>(metric->k_upper.size()) == nk),
        ShapeError, "mla: %s: output metric does not match the shape", name.c_str());
    // Rows in the metric: blockdiag(Lᵀ_j)·rows of kv head j.
    auto to_metric = [&](const RowMatrixXd& x, const std::vector<RowMatrixXd>& up) {
        if (metric == nullptr) return x;
        RowMatrixXd y(x.rows(), x.cols());
        const int64_t d = shape->d_head;
        for (size_t j = 0; j < up.size(); ++j)
            y.middleRows(static_cast<int64_t>(j) * d, d) =
                up[j] * x.middleRows(static_cast<int64_t>(j) * d, d);
        return y;
    };
    const RowMatrixXd km = to_metric(k_res, metric ? metric->k_upper : std::vector<RowMatrixXd>{});
    const RowMatrixXd vm = to_metric(wv, metric ? metric->v_upper : std::vector<RowMatrixXd>{});
    if (alpha <= 0.0) {
        const double ek = linalg::multiply_lower_right(km, chol, name).squaredNorm();
        const double ev = linalg::multiply_lower_right(vm, chol, name).squaredNorm();
        alpha = ek > 1e-30 * ev && ek > 0.0 ? std::sqrt(ev / ek) : 1.0;
    }
    out.alpha = alpha;
    RowMatrixXd f(2 * nk, k_res.cols());
    f.topRows(nk) = alpha * km;
    f.bottomRows(nk) = vm;
    GroupFactors gf = decompose_group(f, rank, DecomposeMethod::Whitened, &chol, name);
    out.error = gf.error;
    out.down = std::move(gf.right);
    out.up = std::move(gf.left);
    out.up.topRows(nk) /= alpha;
    if (metric != nullptr) {
        // Back from the metric: rows of kv head j times (Lᵀ_j)⁻¹ (triangular solves).
        const int64_t d = shape->d_head;
        for (size_t j = 0; j < metric->k_upper.size(); ++j) {
            const int64_t o = static_cast<int64_t>(j) * d;
            Eigen::MatrixXd bk = out.up.middleRows(o, d), bv = out.up.middleRows(nk + o, d);
            metric->k_upper[j].triangularView<Eigen::Upper>().solveInPlace(bk);
            metric->v_upper[j].triangularView<Eigen::Upper>().solveInPlace(bv);
            out.up.middleRows(o, d) = bk;
            out.up.middleRows(nk + o, d) = bv;
        }
    }
    return out;
}

RowMatrixXd mla_kv_b(const RowMatrixXd& up, const MlaShape& s) {
    const int64_t d = s.d_head, nk = s.n_kv_heads * d, per_kv = s.n_heads / s.n_kv_heads;
    PALU_CHECK(up.rows() == 2 * nk, ShapeError, "mla: up-projection has %lld rows, expected %lld",
               static_cast<ll>(up.rows()), static_cast<ll>(2 * nk));
    RowMatrixXd out(s.n_heads * 2 * d, up.cols());
    for (int64_t h = 0; h < s.n_heads; ++h) {
        const int64_t j = h / per_kv;
        out.middleRows(h * 2 * d, d) = up.middleRows(j * d, d);
        out.middleRows(h * 2 * d + d, d) = up.middleRows(nk + j * d, d);
    }
    return out;
}

RowMatrixXd kv_features(const RowMatrixXd& k_res, const RowMatrixXd& wv) {
    PALU_CHECK(k_res.rows() == wv.rows() && k_res.cols() == wv.cols(), ShapeError,
               "mla: K_res and v_proj have different shapes");
    RowMatrixXd f(2 * k_res.rows(), k_res.cols());
    f.topRows(k_res.rows()) = k_res;
    f.bottomRows(wv.rows()) = wv;
    return f;
}

RowMatrixXd refit_up(const RowMatrixXd& k_res, const RowMatrixXd& wv, const RowMatrixXd& xc,
                     const RowMatrixXd& cc) {
    const int64_t r = cc.rows();
    PALU_CHECK(cc.cols() == r && xc.cols() == r && xc.rows() == wv.cols(), ShapeError,
               "mla: latent refit sums have wrong shapes");
    const RowMatrixXd fxc = kv_features(k_res, wv) * xc;  // [2·n_kv·d, r]
    Eigen::MatrixXd a = cc;
    a.diagonal().array() += 1e-8 * cc.trace() / static_cast<double>(r) + 1e-300;
    const Eigen::LDLT<Eigen::MatrixXd> ldlt(a);
    PALU_CHECK(ldlt.info() == Eigen::Success, NumericalError,
               "mla: latent refit: E[c cᵀ] could not be factorised");
    // up' = F·xc·A⁻¹  ⇔  A·up'ᵀ = (F·xc)ᵀ (A symmetric).
    const Eigen::MatrixXd upt = ldlt.solve(Eigen::MatrixXd(fxc.transpose()));
    return RowMatrixXd(upt.transpose());
}

}  // namespace palu::compress
