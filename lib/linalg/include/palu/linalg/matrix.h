// palu linalg: the dense matrix types every module uses to map weights and statistics.
//
// Layout trap (docs/conventions.md): HF nn.Linear weights are [n_out, n_in] row-major as stored in
// safetensors, while Eigen defaults to column-major. Weights, factors and Gram matrices are mapped
// only through these row-major typedefs, declared here once.
#pragma once

#include <Eigen/Core>

namespace palu {

/// Row-major f32 matrix; the in-memory layout of checkpoint weights ([n_out, n_in]).
using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Row-major f64 matrix; Gram matrices, Cholesky factors and group SVDs run in f64.
using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace palu
