// palu linalg tests: seeded random matrices shared by the linalg and compress tests.
#pragma once

#include <cstdint>
#include <random>

#include "palu/linalg/matrix.h"

namespace palu::test {

/// [rows, cols] with i.i.d. N(0, 1) entries from a fixed seed.
inline RowMatrixXd random_gaussian(int64_t rows, int64_t cols, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    RowMatrixXd m(rows, cols);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = nd(gen);
    return m;
}

/// Activations X [n_tokens, d] with strongly correlated, unevenly scaled columns (X = Z·A with a
/// random mixing A and column scales spanning two orders of magnitude), like real hidden states.
inline RowMatrixXd correlated_activations(int64_t n_tokens, int64_t d, uint64_t seed) {
    RowMatrixXd z = random_gaussian(n_tokens, d, seed);
    RowMatrixXd a = random_gaussian(d, d, seed + 1);
    for (int64_t j = 0; j < d; ++j) a.row(j) *= std::pow(10.0, -2.0 * j / d);
    return z * a;
}

}  // namespace palu::test
