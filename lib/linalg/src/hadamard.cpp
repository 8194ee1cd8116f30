// palu linalg: Hadamard matrices of order K·2^m (reference §5.2) built from first principles.
//
// Base matrices (constructions from the literature, implemented here and verified by the tests
// through H·Hᵀ = n·I):
//  * Paley I: q ≡ 3 (mod 4) a prime power, Jacobsthal matrix Q[a][b] = χ(a − b) over GF(q)
//    (χ the quadratic character). S = [[0, 1ᵀ], [−1, Q]] is skew with S·Sᵀ = q·I, and
//    H = I + S is Hadamard of order q + 1.
//  * Paley II: q ≡ 1 (mod 4), conference matrix C = [[0, 1ᵀ], [1, Q]] (symmetric, C² = q·I);
//    H = C ⊗ [[1, 1], [1, −1]] + I ⊗ [[1, −1], [−1, −1]] is Hadamard of order 2(q + 1).
//  * Sylvester doubling H_{2n} = H_2 ⊗ H_n (for 40 = 2·20) and H_{2^m}(i, j) =
//  (−1)^{popcount(i&j)}.
#include "palu/linalg/hadamard.h"

#include <Eigen/QR>
#include <array>
#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "palu/core/error.h"

namespace palu::linalg {

namespace {

// The reference's (QuIP#) base-order list, in the order it is searched.
constexpr std::array<int64_t, 18> kBaseOrders = {244, 180, 172, 156, 140, 108, 92, 84, 76,
                                                 68,  60,  52,  44,  36,  28,  40, 20, 12};

bool is_pow2(int64_t n) {
    return n > 0 && (n & (n - 1)) == 0;
}

/// GF(p^k), k ∈ {1, 2}; elements are integers a0 + a1·p (coefficients of a0 + a1·x).
class FiniteField {
   public:
    FiniteField(int p, int k) : p_(p), k_(k), q_(k == 1 ? p : p * p) {
        PALU_ASSERT(k == 1 || k == 2, "GF(p^%d) not supported", k);
        if (k == 2) {
            // Monic irreducible x² + c1·x + c0: a quadratic without a root in GF(p).
            bool found = false;
            for (int c0 = 1; c0 < p && !found; ++c0) {
                for (int c1 = 0; c1 < p && !found; ++c1) {
                    bool has_root = false;
                    for (int t = 0; t < p; ++t) has_root |= (t * t + c1 * t + c0) % p == 0;
                    if (!has_root) {
                        c0_ = c0;
                        c1_ = c1;
                        found = true;
                    }
                }
            }
            PALU_ASSERT(found, "no irreducible quadratic over GF(%d)", p);
        }
        chi_.assign(static_cast<size_t>(q_), -1);
        chi_[0] = 0;
        for (int a = 1; a < q_; ++a) chi_[static_cast<size_t>(mul(a, a))] = 1;
    }
    int order() const { return q_; }
    int sub(int a, int b) const {
        if (k_ == 1) return ((a - b) % p_ + p_) % p_;
        const int lo = ((a % p_ - b % p_) % p_ + p_) % p_;
        const int hi = ((a / p_ - b / p_) % p_ + p_) % p_;
        return lo + hi * p_;
    }
    int mul(int a, int b) const {
        if (k_ == 1) return (a * b) % p_;
        const int a0 = a % p_, a1 = a / p_, b0 = b % p_, b1 = b / p_;
        // (a0 + a1 x)(b0 + b1 x) with x² = −c1·x − c0.
        const int t2 = a1 * b1;
        int lo = a0 * b0 - t2 * c0_;
        int hi = a0 * b1 + a1 * b0 - t2 * c1_;
        lo = (lo % p_ + p_) % p_;
        hi = (hi % p_ + p_) % p_;
        return lo + hi * p_;
    }
    /// Quadratic character: 0 for 0, +1 for non-zero squares, −1 otherwise.
    int chi(int a) const { return chi_[static_cast<size_t>(a)]; }

   private:
    int p_, k_, q_;
    int c0_ = 0, c1_ = 0;
    std::vector<int> chi_;
};

RowMatrixXd jacobsthal(const FiniteField& f) {
    const int q = f.order();
    RowMatrixXd qm(q, q);
    for (int a = 0; a < q; ++a)
        for (int b = 0; b < q; ++b) qm(a, b) = f.chi(f.sub(a, b));
    return qm;
}

RowMatrixXd paley1(const FiniteField& f) {
    const int q = f.order();
    PALU_ASSERT(q % 4 == 3, "Paley I needs q = 3 mod 4, got %d", q);
    RowMatrixXd h = RowMatrixXd::Identity(q + 1, q + 1);
    h.block(0, 1, 1, q).array() += 1.0;
    h.block(1, 0, q, 1).array() -= 1.0;
    h.block(1, 1, q, q) += jacobsthal(f);
    return h;
}

RowMatrixXd paley2(const FiniteField& f) {
    const int q = f.order();
    PALU_ASSERT(q % 4 == 1, "Paley II needs q = 1 mod 4, got %d", q);
    RowMatrixXd c = RowMatrixXd::Zero(q + 1, q + 1);
    c.block(0, 1, 1, q).setOnes();
    c.block(1, 0, q, 1).setOnes();
    c.block(1, 1, q, q) = jacobsthal(f);
    const int64_t n = 2 * (q + 1);
    RowMatrixXd h(n, n);
    for (int i = 0; i <= q; ++i) {
        for (int j = 0; j <= q; ++j) {
            const double v = c(i, j);
            if (v == 0.0) {
                h(2 * i, 2 * j) = 1;
                h(2 * i, 2 * j + 1) = -1;
                h(2 * i + 1, 2 * j) = -1;
                h(2 * i + 1, 2 * j + 1) = -1;
            } else {
                h(2 * i, 2 * j) = v;
                h(2 * i, 2 * j + 1) = v;
                h(2 * i + 1, 2 * j) = v;
                h(2 * i + 1, 2 * j + 1) = -v;
            }
        }
    }
    return h;
}

RowMatrixXd sylvester(int64_t n) {
    PALU_ASSERT(is_pow2(n), "Sylvester order %lld", static_cast<long long>(n));
    RowMatrixXd h(n, n);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            h(i, j) = (std::popcount(static_cast<uint64_t>(i & j)) & 1) ? -1.0 : 1.0;
    return h;
}

RowMatrixXd kron(const RowMatrixXd& a, const RowMatrixXd& b) {
    RowMatrixXd out(a.rows() * b.rows(), a.cols() * b.cols());
    for (int64_t i = 0; i < a.rows(); ++i)
        for (int64_t j = 0; j < a.cols(); ++j)
            out.block(i * b.rows(), j * b.cols(), b.rows(), b.cols()) = a(i, j) * b;
    return out;
}

/// Base matrix of order K, or an empty matrix when K has no construction here.
RowMatrixXd base_matrix(int64_t k) {
    switch (k) {
        case 1: return RowMatrixXd::Ones(1, 1);
        case 12: return paley1(FiniteField(11, 1));
        case 20: return paley1(FiniteField(19, 1));
        case 28: return paley2(FiniteField(13, 1));
        case 36: return paley2(FiniteField(17, 1));
        case 40: return kron(sylvester(2), paley1(FiniteField(19, 1)));
        case 44: return paley1(FiniteField(43, 1));
        case 52: return paley2(FiniteField(5, 2));  // q = 25
        case 60: return paley1(FiniteField(59, 1));
        case 68: return paley1(FiniteField(67, 1));
        case 76: return paley2(FiniteField(37, 1));
        case 84: return paley1(FiniteField(83, 1));
        case 108: return paley1(FiniteField(107, 1));
        case 140: return paley1(FiniteField(139, 1));
        case 180: return paley1(FiniteField(179, 1));
        case 244: return paley2(FiniteField(11, 2));  // q = 121
        default: return RowMatrixXd();                // 92, 156, 172: Williamson-type, not built
    }
}

template <typename T>
void fwht_impl(T* x, int64_t n) {
    PALU_ASSERT(is_pow2(n), "fwht size %lld is not a power of two", static_cast<long long>(n));
    for (int64_t h = 1; h < n; h *= 2) {
        for (int64_t i = 0; i < n; i += 2 * h) {
            for (int64_t j = i; j < i + h; ++j) {
                const T a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
    }
}

}  // namespace

int64_t hadamard_base_order(int64_t n) {
    if (n <= 0) return 0;
    if (is_pow2(n)) return 1;
    for (int64_t k : kBaseOrders) {
        if (n % k == 0) return is_pow2(n / k) ? k : 0;
    }
    return 0;
}

bool hadamard_supported(int64_t n) {
    const int64_t k = hadamard_base_order(n);
    return k == 1 || (k > 1 && k != 92 && k != 156 && k != 172);
}

RowMatrixXd hadamard_matrix(int64_t n) {
    PALU_CHECK(hadamard_supported(n), UsageError,
               "linalg: Hadamard matrix of order %lld is not available: expected 2^m or K·2^m "
               "with K in the reference's base list (92, 156, 172 excluded), got base order %lld",
               static_cast<long long>(n), static_cast<long long>(hadamard_base_order(n)));
    const int64_t k = hadamard_base_order(n);
    if (k == 1) return sylvester(n);
    return kron(base_matrix(k), sylvester(n / k));
}

void fwht(double* x, int64_t n) {
    fwht_impl(x, n);
}
void fwht(float* x, int64_t n) {
    fwht_impl(x, n);
}

void apply_hadamard_rows(RowMatrixXd& x) {
    const int64_t n = x.cols();
    PALU_CHECK(hadamard_supported(n), UsageError,
               "linalg: Hadamard transform of width %lld is not available (base order %lld)",
               static_cast<long long>(n), static_cast<long long>(hadamard_base_order(n)));
    const int64_t k = hadamard_base_order(n);
    const int64_t p = n / k;
    const double scale = 1.0 / std::sqrt(static_cast<double>(n));
    const RowMatrixXd hk_t = k > 1 ? RowMatrixXd(base_matrix(k).transpose()) : RowMatrixXd();
    RowMatrixXd tmp(k, p);
    for (int64_t r = 0; r < x.rows(); ++r) {
        double* row = x.row(r).data();
        // x·(H_K ⊗ H_p): FWHT within each of the K blocks of length p, then mix blocks by H_Kᵀ.
        for (int64_t b = 0; b < k; ++b) fwht(row + b * p, p);
        Eigen::Map<RowMatrixXd> blocks(row, k, p);
        if (k > 1) {
            tmp.noalias() = hk_t * blocks;
            blocks = tmp;
        }
        blocks *= scale;
    }
}

const char* rotation_kind_name(RotationKind k) {
    switch (k) {
        case RotationKind::Hadamard: return "hadamard";
        case RotationKind::RandomOrthogonal: return "random_orthogonal";
    }
    return "?";
}

RowMatrixXd random_orthogonal(int64_t n, uint64_t seed) {
    PALU_CHECK(n > 0, UsageError, "linalg: random orthogonal matrix: expected n > 0, got %lld",
               static_cast<long long>(n));
    // std::mt19937_64's output sequence is fixed by the standard; the Gaussian is Box–Muller on
    // 53-bit uniforms (std::normal_distribution is implementation-defined, so not used).
    std::mt19937_64 gen(seed);
    auto uniform = [&] { return (static_cast<double>(gen() >> 11) + 1.0) * 0x1.0p-53; };  // (0,1]
    Eigen::MatrixXd g(n, n);
    for (int64_t i = 0; i < n * n; i += 2) {
        const double r = std::sqrt(-2.0 * std::log(uniform()));
        const double t = 2.0 * M_PI * uniform();
        g.data()[i] = r * std::cos(t);
        if (i + 1 < n * n) g.data()[i + 1] = r * std::sin(t);
    }
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
    Eigen::MatrixXd q = qr.householderQ();
    const Eigen::MatrixXd& r = qr.matrixQR();
    // Make the factorization unique (Haar-distributed Q): scale columns by sign(R_ii).
    for (int64_t j = 0; j < n; ++j)
        if (r(j, j) < 0) q.col(j) *= -1.0;
    return q;
}

LatentRotation make_latent_rotation(int64_t n, uint64_t seed) {
    PALU_CHECK(n > 0, UsageError, "linalg: latent rotation: expected size > 0, got %lld",
               static_cast<long long>(n));
    LatentRotation rot;
    rot.n = n;
    if (hadamard_supported(n)) {
        rot.kind = RotationKind::Hadamard;
        rot.base_order = hadamard_base_order(n);
        rot.matrix = hadamard_matrix(n) / std::sqrt(static_cast<double>(n));
    } else {
        rot.kind = RotationKind::RandomOrthogonal;
        rot.seed = seed;
        rot.matrix = random_orthogonal(n, seed);
    }
    return rot;
}

}  // namespace palu::linalg
