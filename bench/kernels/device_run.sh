#!/usr/bin/env bash
# Runs the kernel validation and benchmark on the GPU machine from prebuilt binaries in $1
# (palu_test_kernels, palu-kernels-check, palu-kernels-bench, libcudart.so.13), writing logs and
# tables to $2. Extra arguments go to palu-kernels-bench. Used with the device tool:
#   bench/kernels/device_run.sh build-kcarry "$OUT" --ctx 16384 65536 --batch 1 8
set -o pipefail
bin=$1; out=$2; shift 2
export LD_LIBRARY_PATH=$PWD/$bin:$LD_LIBRARY_PATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv
mode=${MODE:-all}
if [[ $mode == all || $mode == check ]]; then
  "$bin/palu_test_kernels" 2>&1 | tee "$out/gtest.log" | grep -E "PASSED|FAILED|SKIPPED|tests ran" | tail -20
  "$bin/palu-kernels-check" ${CHECK_ARGS:-} 2>&1 | tee "$out/check.md" | grep -vE "\| ok \|" | tail -40
fi
if [[ $mode == all || $mode == bench ]]; then
  python3 bench/kernels/run_bench.py --bench "$bin/palu-kernels-bench" --out "$out/bench.md" -- "$@" 2>&1 | tail -60
fi
if [[ $mode == all || $mode == profile ]]; then
  # Nsight Compute on one launch of two configurations (args in NCU_CASES, ';'-separated).
  IFS=';' read -ra cases <<< "${NCU_CASES:-}"
  for c in "${cases[@]}"; do
    ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy \
        -k regex:split_kernel -s 3 -c 1 "$bin/palu-kernels-bench" --reps 1 $c > "$out/ncu_$(echo $c | tr -c 'a-z0-9' '_').txt" 2>&1
    grep -E "Duration|Throughput|Pipe|Stall|Issue|Occupancy|Registers|Block Limit|Warp Cycles" "$out/ncu_$(echo $c | tr -c 'a-z0-9' '_').txt" | head -45
  done
fi
