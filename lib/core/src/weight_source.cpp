// palu core: WeightSource's default side-file folder.
#include "palu/core/weight_source.h"

namespace palu {

std::filesystem::path WeightSource::source_dir() const {
    const std::filesystem::path p = path();
    if (std::filesystem::is_directory(p)) return p;
    return p.parent_path().empty() ? std::filesystem::path(".") : p.parent_path();
}

}  // namespace palu
