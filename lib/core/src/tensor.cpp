// palu core: owning f32 tensor.
#include "palu/core/tensor.h"

#include "palu/core/checked.h"

namespace palu {

namespace {
size_t checked_numel(const std::vector<int64_t>& shape) {
    auto n = numel_no_overflow(shape);
    PALU_CHECK(n.has_value(), ShapeError, "tensor: invalid shape %s", shape_str(shape).c_str());
    return static_cast<size_t>(*n);
}
}  // namespace

Tensor::Tensor(std::vector<int64_t> shape, float fill)
    : shape_(std::move(shape)), data_(checked_numel(shape_), fill) {}

Tensor::Tensor(std::vector<int64_t> shape, std::vector<float> data)
    : shape_(std::move(shape)), data_(std::move(data)) {
    PALU_CHECK(checked_numel(shape_) == data_.size(), ShapeError,
               "tensor: shape %s needs %zu elements, got %zu", shape_str(shape_).c_str(),
               checked_numel(shape_), data_.size());
}

void Tensor::reshape(std::vector<int64_t> shape) {
    PALU_CHECK(checked_numel(shape) == data_.size(), ShapeError, "tensor: cannot reshape %s to %s",
               shape_str(shape_).c_str(), shape_str(shape).c_str());
    shape_ = std::move(shape);
}

}  // namespace palu
