// palu fuzz: ranks.json parsing (compress::rank_plan_from_json). Any input must either parse into
// a valid RankPlan or throw a palu::Error / a JSON parse error; never crash or hit UB.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "palu/compress/rank_search.h"
#include "palu/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded()) return 0;
    try {
        const palu::compress::RankPlan plan = palu::compress::rank_plan_from_json(j);
        // A plan that parsed must serialize and parse back to the same ranks.
        const palu::compress::RankPlan back =
            palu::compress::rank_plan_from_json(palu::compress::rank_plan_to_json(plan));
        if (back.k_ranks != plan.k_ranks || back.v_ranks != plan.v_ranks) __builtin_trap();
    } catch (const palu::Error&) {
    }
    return 0;
}
