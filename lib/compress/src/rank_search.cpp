// palu compress: rank search (reference §4.2–4.3, palu/rank_search.py), reproduced operation by
// operation so that the same Fisher scalars give the same ranks: the float target, the left-to-
// right Fisher sum (module sums added in module order), `target·f/Σf` evaluated in that order,
// Python's stable sort on the fractional part, the round-robin loop that only stops early on an
// exact zero leftover, integer split `r // n_groups`, and round-half-even rounding.
#include "palu/compress/rank_search.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <type_traits>

#include "palu/core/error.h"

namespace palu::compress {

namespace {

constexpr int kRankPlanVersion = 1;

void check_fisher_value(double f, const char* proj, size_t layer, long long group) {
    PALU_CHECK(std::isfinite(f) && f >= 0.0, NumericalError,
               "rank: Fisher scalar of layer %zu %s%s has a bad value: expected finite and >= 0, "
               "got %g; hint: recompute the calibration statistics",
               layer, proj, group >= 0 ? strfmt(" group %lld", group).c_str() : "", f);
}

}  // namespace

const char* rank_search_method_name(RankSearchMethod m) {
    switch (m) {
        case RankSearchMethod::Uniform: return "uniform";
        case RankSearchMethod::Fisher: return "fisher";
        case RankSearchMethod::FisherUniform: return "fisher_uniform";
    }
    return "?";
}

std::optional<RankSearchMethod> parse_rank_search_method(std::string_view s) {
    if (s == "uniform") return RankSearchMethod::Uniform;
    if (s == "fisher") return RankSearchMethod::Fisher;
    if (s == "fisher_uniform") return RankSearchMethod::FisherUniform;
    return std::nullopt;
}

int64_t RankPlan::n_kept() const {
    int64_t n = 0;
    for (const auto& l : k_ranks) n = std::accumulate(l.begin(), l.end(), n);
    for (const auto& l : v_ranks) n = std::accumulate(l.begin(), l.end(), n);
    return n;
}

FisherReduction reduce_rms_gradient(const RowMatrixXf& rms, int64_t group_rows,
                                    const std::string& name) {
    PALU_CHECK(rms.rows() > 0 && rms.cols() > 0 && group_rows > 0 && rms.rows() % group_rows == 0,
               ShapeError,
               "rank: %s Fisher matrix has wrong shape: expected [n_groups*%lld, d_model], got "
               "[%lld,%lld]",
               name.c_str(), static_cast<long long>(group_rows), static_cast<long long>(rms.rows()),
               static_cast<long long>(rms.cols()));
    FisherReduction out;
    const int64_t n_groups = rms.rows() / group_rows;
    double total = 0.0;
    for (int64_t g = 0; g < n_groups; ++g) {
        double sum = 0.0;
        for (int64_t i = g * group_rows; i < (g + 1) * group_rows; ++i) {
            for (int64_t j = 0; j < rms.cols(); ++j) {
                const double v = rms(i, j);
                PALU_CHECK(std::isfinite(v) && v >= 0.0, NumericalError,
                           "rank: %s Fisher entry [%lld,%lld] has a bad value: expected finite "
                           "and >= 0, got %g",
                           name.c_str(), static_cast<long long>(i), static_cast<long long>(j), v);
                sum += v;
            }
        }
        out.group_means.push_back(sum / static_cast<double>(group_rows * rms.cols()));
        total += sum;
    }
    out.module_mean = total / static_cast<double>(rms.size());
    return out;
}

int64_t default_rank_multiple(int64_t group_width) {
    PALU_CHECK(group_width > 0, UsageError, "rank: group width: expected > 0, got %lld",
               static_cast<long long>(group_width));
    const auto quarter = static_cast<uint64_t>(std::max<int64_t>(1, group_width / 4));
    return std::min<int64_t>(32, static_cast<int64_t>(std::bit_floor(quarter)));
}

int64_t round_rank(double r, int64_t multiple, int64_t cap) {
    PALU_ASSERT(multiple > 0 && cap > 0, "multiple %lld cap %lld", static_cast<long long>(multiple),
                static_cast<long long>(cap));
    // Python's round() is round-half-to-even; nearbyint does that in the default FP environment.
    const double q = std::nearbyint(r / static_cast<double>(multiple));
    const int64_t rounded = std::max<int64_t>(1, static_cast<int64_t>(q)) * multiple;
    return std::min(rounded, cap);
}

std::vector<int64_t> allocate_proportional(const std::vector<double>& fisher, int64_t cap,
                                           double target) {
    const size_t n = fisher.size();
    PALU_ASSERT(n > 0 && cap > 0, "%zu items, cap %lld", n, static_cast<long long>(cap));
    double fisher_sum = 0.0;
    for (double f : fisher) fisher_sum += f;
    PALU_CHECK(fisher_sum > 0.0, NumericalError,
               "rank: Fisher scalars sum to %g: expected > 0; hint: the calibration produced "
               "zero gradients",
               fisher_sum);
    std::vector<int64_t> ranks(n);
    std::vector<double> frac(n);
    for (size_t i = 0; i < n; ++i) {
        const double r_float = target * fisher[i] / fisher_sum;
        ranks[i] = std::min<int64_t>(cap, static_cast<int64_t>(std::floor(r_float)));
        frac[i] = r_float - static_cast<double>(ranks[i]);
    }
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return frac[a] < frac[b]; });
    double dif =
        target - static_cast<double>(std::accumulate(ranks.begin(), ranks.end(), int64_t{0}));
    while (dif > 0) {
        bool any = false;
        for (size_t i : order) {
            if (ranks[i] == cap) continue;
            ranks[i] += 1;
            dif -= 1;
            any = true;
            if (dif == 0) break;
        }
        if (!any) break;  // every item capped (the reference would loop forever here)
    }
    return ranks;
}

namespace {

int64_t latent_token_bytes_total(const std::vector<std::vector<int64_t>>& ranks,
                                 const quant::LatentQuantSpec& quant) {
    int64_t n = 0;
    for (const auto& l : ranks)
        for (int64_t r : l) n += quant::latent_token_bytes(r, quant);
    return n;
}

}  // namespace

int64_t kv_bytes_per_token(const RankPlan& plan, const quant::LatentQuantSpec& quant) {
    return latent_token_bytes_total(plan.k_ranks, quant) +
           latent_token_bytes_total(plan.v_ranks, quant);
}

int64_t original_kv_bytes_per_token(const KvShape& shape) {
    return 2 * 2 * shape.n_layers * shape.width();
}

double ratio_for_kv_bytes(const KvShape& shape, int64_t group_size, double kv_bytes_per_token,
                          const quant::LatentQuantSpec& quant) {
    PALU_CHECK(group_size > 0 && shape.n_kv_heads % group_size == 0, UsageError,
               "rank: group size does not divide the KV heads: expected a divisor of "
               "n_kv_heads=%lld, got %lld",
               static_cast<long long>(shape.n_kv_heads), static_cast<long long>(group_size));
    PALU_CHECK(std::isfinite(kv_bytes_per_token) && kv_bytes_per_token > 0, UsageError,
               "rank: KV bytes per token target: expected > 0, got %g", kv_bytes_per_token);
    const double n_full = 2.0 * shape.n_layers * shape.width();
    const double n_items = 2.0 * shape.n_layers * (shape.n_kv_heads / group_size);
    double kept = 0.0;
    if (!quant.quantized()) {
        kept = kv_bytes_per_token / 2.0;
    } else {
        const double param_bytes = quant.symmetric ? 2.0 : 4.0;
        const double code_bytes = quant.bits / 8.0;
        if (quant.group_size == 0) {
            kept = (kv_bytes_per_token - n_items * param_bytes) / code_bytes;
        } else {
            kept = kv_bytes_per_token / (code_bytes + param_bytes / quant.group_size);
        }
    }
    const double ratio = kept / n_full;
    PALU_CHECK(ratio > 0.0 && ratio <= 1.0, UsageError,
               "rank: KV budget %g bytes/token is impossible: expected a kept ratio in (0,1], got "
               "%g (original f16 cache: %lld bytes/token, %d-bit latents); hint: pick a budget "
               "between the scale overhead and the full cache",
               kv_bytes_per_token, ratio,
               static_cast<long long>(original_kv_bytes_per_token(shape)), quant.bits);
    return ratio;
}

RankPlan search_ranks(const KvShape& shape, const FisherScalars* fisher,
                      const RankSearchParams& params) {
    PALU_CHECK(shape.n_layers > 0 && shape.n_kv_heads > 0 && shape.d_head > 0, UsageError,
               "rank: K/V shape: expected positive n_layers, n_kv_heads, d_head, got %lld, %lld, "
               "%lld",
               static_cast<long long>(shape.n_layers), static_cast<long long>(shape.n_kv_heads),
               static_cast<long long>(shape.d_head));
    const int64_t s = params.group_size;
    PALU_CHECK(s > 0 && shape.n_kv_heads % s == 0, UsageError,
               "rank: group size does not divide the KV heads: expected a divisor of "
               "n_kv_heads=%lld, got %lld",
               static_cast<long long>(shape.n_kv_heads), static_cast<long long>(s));
    const bool by_ratio = params.ratio != 0.0;
    const bool by_bytes = params.kv_bytes_per_token != 0.0;
    PALU_CHECK(by_ratio != by_bytes, UsageError,
               "rank: target: expected exactly one of a kept ratio or KV bytes per token, got %s",
               by_ratio ? "both" : "neither");
    if (params.quant.quantized()) quant::validate_quant_spec(params.quant, 0);

    RankPlan plan;
    plan.method = params.method;
    plan.shape = shape;
    plan.group_size = s;
    const int64_t n_groups = shape.n_kv_heads / s;
    const int64_t width = plan.group_width();
    const int64_t d_module = shape.width();
    PALU_CHECK(params.rank_multiple >= 0, UsageError,
               "rank: rounding multiple: expected >= 0 (0 = automatic), got %lld",
               static_cast<long long>(params.rank_multiple));
    plan.rank_multiple =
        params.rank_multiple > 0 ? params.rank_multiple : default_rank_multiple(width);
    if (by_ratio) {
        PALU_CHECK(std::isfinite(params.ratio) && params.ratio > 0.0 && params.ratio <= 1.0,
                   UsageError, "rank: kept ratio outside (0,1]: expected 0 < ratio <= 1, got %g",
                   params.ratio);
        plan.target_ratio = params.ratio;
    } else {
        plan.target_ratio = ratio_for_kv_bytes(shape, s, params.kv_bytes_per_token, params.quant);
    }
    const double rho = plan.target_ratio;
    const auto n_layers = static_cast<size_t>(shape.n_layers);
    plan.k_ranks.assign(n_layers, std::vector<int64_t>(static_cast<size_t>(n_groups)));
    plan.v_ranks.assign(n_layers, std::vector<int64_t>(static_cast<size_t>(n_groups)));

    if (params.method == RankSearchMethod::Uniform) {
        const int64_t r = round_rank(static_cast<double>(width) * rho, plan.rank_multiple, width);
        for (size_t l = 0; l < n_layers; ++l) {
            std::fill(plan.k_ranks[l].begin(), plan.k_ranks[l].end(), r);
            std::fill(plan.v_ranks[l].begin(), plan.v_ranks[l].end(), r);
        }
        return plan;
    }

    PALU_CHECK(fisher != nullptr, UsageError,
               "rank: method %s needs Fisher scalars: expected calibration statistics, got none; "
               "hint: run calibration first or use --rank-search uniform",
               rank_search_method_name(params.method));
    PALU_CHECK(fisher->k.size() == n_layers && fisher->v.size() == n_layers, ShapeError,
               "rank: Fisher scalars have wrong shape: expected %zu layers for K and V, got %zu "
               "and %zu",
               n_layers, fisher->k.size(), fisher->v.size());
    // Items in the reference's named_modules() order: layer 0 k, layer 0 v, layer 1 k, ...
    const double total_rank = static_cast<double>(2 * shape.n_layers * d_module);
    const double target = total_rank * rho;

    if (params.method == RankSearchMethod::FisherUniform) {
        std::vector<double> f(2 * n_layers);
        for (size_t l = 0; l < n_layers; ++l) {
            check_fisher_value(fisher->k[l], "k_proj", l, -1);
            check_fisher_value(fisher->v[l], "v_proj", l, -1);
            f[2 * l] = fisher->k[l];
            f[2 * l + 1] = fisher->v[l];
        }
        const std::vector<int64_t> r = allocate_proportional(f, d_module, target);
        for (size_t l = 0; l < n_layers; ++l) {
            // split_values: r // n_groups for every group, then rounding.
            const int64_t rk = r[2 * l] / n_groups;
            const int64_t rv = r[2 * l + 1] / n_groups;
            std::fill(plan.k_ranks[l].begin(), plan.k_ranks[l].end(),
                      round_rank(static_cast<double>(rk), plan.rank_multiple, width));
            std::fill(plan.v_ranks[l].begin(), plan.v_ranks[l].end(),
                      round_rank(static_cast<double>(rv), plan.rank_multiple, width));
        }
        return plan;
    }

    // Method fisher: group-level items, cap = group width, no split.
    PALU_CHECK(fisher->k_groups.size() == n_layers && fisher->v_groups.size() == n_layers,
               ShapeError,
               "rank: group-level Fisher scalars have wrong shape: expected %zu layers, got %zu "
               "(K) and %zu (V)",
               n_layers, fisher->k_groups.size(), fisher->v_groups.size());
    std::vector<double> f;
    f.reserve(2 * n_layers * static_cast<size_t>(n_groups));
    for (size_t l = 0; l < n_layers; ++l) {
        for (int kv = 0; kv < 2; ++kv) {
            const auto& fg = kv == 0 ? fisher->k_groups[l] : fisher->v_groups[l];
            PALU_CHECK(static_cast<int64_t>(fg.size()) == n_groups, ShapeError,
                       "rank: group-level Fisher scalars of layer %zu %s have wrong shape: "
                       "expected %lld groups (group size %lld), got %zu",
                       l, kv == 0 ? "k_proj" : "v_proj", static_cast<long long>(n_groups),
                       static_cast<long long>(s), fg.size());
            for (size_t g = 0; g < fg.size(); ++g) {
                check_fisher_value(fg[g], kv == 0 ? "k_proj" : "v_proj", l,
                                   static_cast<long long>(g));
                f.push_back(fg[g]);
            }
        }
    }
    const std::vector<int64_t> r = allocate_proportional(f, width, target);
    size_t i = 0;
    for (size_t l = 0; l < n_layers; ++l) {
        for (auto& x : plan.k_ranks[l])
            x = round_rank(static_cast<double>(r[i++]), plan.rank_multiple, width);
        for (auto& x : plan.v_ranks[l])
            x = round_rank(static_cast<double>(r[i++]), plan.rank_multiple, width);
    }
    return plan;
}

nlohmann::json rank_plan_to_json(const RankPlan& plan) {
    nlohmann::json j;
    j["format"] = "palu.rank_plan";
    j["format_version"] = kRankPlanVersion;
    j["method"] = rank_search_method_name(plan.method);
    j["n_layers"] = plan.shape.n_layers;
    j["n_kv_heads"] = plan.shape.n_kv_heads;
    j["d_head"] = plan.shape.d_head;
    j["group_size"] = plan.group_size;
    j["rank_multiple"] = plan.rank_multiple;
    j["target_ratio"] = plan.target_ratio;
    j["achieved_ratio"] = plan.achieved_ratio();
    j["n_kept"] = plan.n_kept();
    j["n_full"] = plan.n_full();
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < plan.k_ranks.size(); ++l)
        layers.push_back({{"k", plan.k_ranks[l]}, {"v", plan.v_ranks[l]}});
    j["layers"] = std::move(layers);
    return j;
}

namespace {

template <typename T>
T get_key(const nlohmann::json& j, const char* key) {
    PALU_CHECK(j.is_object() && j.contains(key), FormatError,
               "rank: ranks.json: key '%s' is missing", key);
    const nlohmann::json& v = j.at(key);
    // Integers must be stored as JSON integers: nlohmann would cast a float (possibly out of
    // range, which is undefined behaviour) to the integer type.
    if constexpr (std::is_integral_v<T>) {
        PALU_CHECK(v.is_number_integer(), FormatError,
                   "rank: ranks.json: key '%s' has the wrong type: expected an integer, got %s",
                   key, v.type_name());
    }
    try {
        return v.get<T>();
    } catch (const nlohmann::json::exception& e) {
        PALU_THROW(FormatError, "rank: ranks.json: key '%s' has the wrong type: %s", key, e.what());
    }
}

}  // namespace

RankPlan rank_plan_from_json(const nlohmann::json& j) {
    PALU_CHECK(get_key<std::string>(j, "format") == "palu.rank_plan", FormatError,
               "rank: ranks.json: key 'format': expected \"palu.rank_plan\", got \"%s\"",
               get_key<std::string>(j, "format").c_str());
    const int version = get_key<int>(j, "format_version");
    PALU_CHECK(version == kRankPlanVersion, FormatError,
               "rank: ranks.json: format_version: expected %d, got %d; hint: regenerate it with "
               "this palu version",
               kRankPlanVersion, version);
    RankPlan plan;
    const auto method = parse_rank_search_method(get_key<std::string>(j, "method"));
    PALU_CHECK(method.has_value(), FormatError,
               "rank: ranks.json: key 'method': expected uniform, fisher or fisher_uniform, got "
               "\"%s\"",
               get_key<std::string>(j, "method").c_str());
    plan.method = *method;
    plan.shape.n_layers = get_key<int64_t>(j, "n_layers");
    plan.shape.n_kv_heads = get_key<int64_t>(j, "n_kv_heads");
    plan.shape.d_head = get_key<int64_t>(j, "d_head");
    plan.group_size = get_key<int64_t>(j, "group_size");
    plan.rank_multiple = get_key<int64_t>(j, "rank_multiple");
    PALU_CHECK(plan.rank_multiple > 0, FormatError,
               "rank: ranks.json: key 'rank_multiple': expected > 0, got %lld",
               static_cast<long long>(plan.rank_multiple));
    plan.target_ratio = get_key<double>(j, "target_ratio");
    // Bounds keep every derived product (widths, totals) far from int64 overflow.
    constexpr int64_t kMaxDim = int64_t{1} << 20;
    PALU_CHECK(plan.shape.n_layers > 0 && plan.shape.n_kv_heads > 0 && plan.shape.d_head > 0 &&
                   plan.shape.n_layers <= kMaxDim && plan.shape.n_kv_heads <= kMaxDim &&
                   plan.shape.d_head <= kMaxDim && plan.group_size > 0 &&
                   plan.shape.n_kv_heads % plan.group_size == 0,
               FormatError,
               "rank: ranks.json: inconsistent shape: n_layers=%lld n_kv_heads=%lld d_head=%lld "
               "group_size=%lld",
               static_cast<long long>(plan.shape.n_layers),
               static_cast<long long>(plan.shape.n_kv_heads),
               static_cast<long long>(plan.shape.d_head), static_cast<long long>(plan.group_size));
    const auto layers = get_key<nlohmann::json>(j, "layers");
    PALU_CHECK(layers.is_array() && static_cast<int64_t>(layers.size()) == plan.shape.n_layers,
               FormatError, "rank: ranks.json: key 'layers': expected %lld entries, got %zu",
               static_cast<long long>(plan.shape.n_layers), layers.is_array() ? layers.size() : 0);
    const int64_t n_groups = plan.n_groups();
    for (size_t l = 0; l < layers.size(); ++l) {
        for (const char* kv : {"k", "v"}) {
            const nlohmann::json& arr = layers[l].is_object() && layers[l].contains(kv)
                                            ? layers[l].at(kv)
                                            : nlohmann::json();
            PALU_CHECK(
                arr.is_array() &&
                    std::all_of(arr.begin(), arr.end(),
                                [](const nlohmann::json& e) { return e.is_number_integer(); }),
                FormatError, "rank: ranks.json: layers[%zu].%s: expected an array of integer ranks",
                l, kv);
            const auto ranks = arr.get<std::vector<int64_t>>();
            PALU_CHECK(static_cast<int64_t>(ranks.size()) == n_groups, FormatError,
                       "rank: ranks.json: layers[%zu].%s: expected %lld group ranks, got %zu", l,
                       kv, static_cast<long long>(n_groups), ranks.size());
            for (int64_t r : ranks)
                PALU_CHECK(r >= 1 && r <= plan.group_width(), FormatError,
                           "rank: ranks.json: layers[%zu].%s: rank %lld outside [1, %lld]", l, kv,
                           static_cast<long long>(r), static_cast<long long>(plan.group_width()));
            (kv[0] == 'k' ? plan.k_ranks : plan.v_ranks).push_back(ranks);
        }
    }
    return plan;
}

nlohmann::json head_wise_ranks_json(const RankPlan& plan) {
    nlohmann::json j = nlohmann::json::object();
    for (size_t l = 0; l < plan.k_ranks.size(); ++l) {
        j[strfmt("model.layers.%zu.self_attn.k_proj", l)] = plan.k_ranks[l];
        j[strfmt("model.layers.%zu.self_attn.v_proj", l)] = plan.v_ranks[l];
    }
    return j;
}

}  // namespace palu::compress
