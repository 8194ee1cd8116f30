// palu core: an owning f32 tensor (row-major, contiguous) and a non-owning view.
// HF nn.Linear weights are [n_out, n_in] row-major, as stored in safetensors (docs/conventions.md).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "palu/core/error.h"

namespace palu {

/// Non-owning view of contiguous row-major f32 data with a shape.
struct TensorView {
    float* data = nullptr;
    std::vector<int64_t> shape;

    int64_t numel() const {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    int64_t dim(size_t i) const { return shape.at(i); }
    size_t ndim() const { return shape.size(); }
};

/// Owning row-major f32 tensor.
class Tensor {
   public:
    Tensor() = default;
    explicit Tensor(std::vector<int64_t> shape, float fill = 0.0f);
    Tensor(std::vector<int64_t> shape, std::vector<float> data);

    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t dim(size_t i) const { return shape_.at(i); }
    size_t ndim() const { return shape_.size(); }
    int64_t numel() const { return static_cast<int64_t>(data_.size()); }
    float* data() { return data_.data(); }
    const float* data() const { return data_.data(); }
    std::span<float> span() { return data_; }
    std::span<const float> span() const { return data_; }
    std::vector<float>& vec() { return data_; }
    const std::vector<float>& vec() const { return data_; }
    TensorView view() { return TensorView{data_.data(), shape_}; }
    /// Same data, new shape with equal element count (ShapeError otherwise).
    void reshape(std::vector<int64_t> shape);

   private:
    std::vector<int64_t> shape_;
    std::vector<float> data_;
};

}  // namespace palu
