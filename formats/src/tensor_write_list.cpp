// palu formats: TensorWriteList (safetensors.h), the tensors a checkpoint writer collects.
#include <cmath>
#include <cstring>

#include "palu/core/error.h"
#include "palu/formats/safetensors.h"

namespace palu::formats {

void TensorWriteList::add_raw(std::string name, DType dtype, std::vector<int64_t> shape,
                              std::span<const uint8_t> bytes) {
    list_.push_back({std::move(name), dtype, std::move(shape), bytes});
}

void TensorWriteList::add_f32(std::string name, DType dt, std::vector<int64_t> shape,
                              const float* v, size_t n, const char* stage) {
    PALU_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, UsageError,
               "%s: tensor '%s': storage type %s: expected F32, F16 or BF16", stage, name.c_str(),
               dtype_name(dt));
    auto bytes = std::make_unique<std::vector<uint8_t>>(n * dtype_size(dt));
    uint8_t* out = bytes->data();
    for (size_t i = 0; i < n; ++i) {
        PALU_CHECK(std::isfinite(v[i]), NumericalError,
                   "%s: tensor '%s' element %zu is %g: expected a finite value", stage,
                   name.c_str(), i, static_cast<double>(v[i]));
        if (dt == DType::F32) {
            std::memcpy(out + 4 * i, &v[i], 4);
            continue;
        }
        const uint16_t h = dt == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
        const float back = dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
        PALU_CHECK(std::isfinite(back), NumericalError,
                   "%s: tensor '%s' element %zu = %g overflows %s; hint: store it as f32", stage,
                   name.c_str(), i, static_cast<double>(v[i]), dtype_name(dt));
        std::memcpy(out + 2 * i, &h, 2);
    }
    list_.push_back({std::move(name), dt, std::move(shape),
                     std::span<const uint8_t>(bytes->data(), bytes->size())});
    storage_.push_back(std::move(bytes));
}

uint64_t TensorWriteList::n_bytes() const {
    uint64_t n = 0;
    for (const auto& t : list_) n += t.bytes.size();
    return n;
}

}  // namespace palu::formats
