// palu linalg (private): LAPACKE include and the small helpers shared by the linalg sources.
#pragma once

#include <lapacke.h>

#include <cstdint>
#include <limits>
#include <string>

#include "palu/core/error.h"
#include "palu/linalg/matrix.h"

namespace palu::linalg::detail {

/// LAPACK dimensions are lapack_int (32-bit here): refuse larger matrices instead of truncating.
inline lapack_int to_lapack_int(int64_t v, const std::string& name) {
    PALU_CHECK(v >= 0 && v <= std::numeric_limits<lapack_int>::max(), ShapeError,
               "linalg: %s dimension %lld exceeds the LAPACK integer range", name.c_str(),
               static_cast<long long>(v));
    return static_cast<lapack_int>(v);
}

inline std::string dims_str(const RowMatrixXd& a) {
    return strfmt("[%lldx%lld]", static_cast<long long>(a.rows()),
                  static_cast<long long>(a.cols()));
}

inline void check_finite(const RowMatrixXd& a, const std::string& name) {
    PALU_CHECK(a.allFinite(), NumericalError,
               "linalg: %s %s has non-finite entries (NaN or Inf); hint: check the calibration "
               "statistics or weights",
               name.c_str(), dims_str(a).c_str());
}

inline void check_square(const RowMatrixXd& a, const std::string& name) {
    PALU_CHECK(a.rows() == a.cols() && a.rows() > 0, ShapeError,
               "linalg: %s has wrong shape: expected a non-empty square matrix, got %s",
               name.c_str(), dims_str(a).c_str());
}

}  // namespace palu::linalg::detail
