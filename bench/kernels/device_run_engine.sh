#!/usr/bin/env bash
# Kernel validation on the GPU machine from prebuilt binaries in $1, logs to $2: synthetic GoogleTest
# cases, the engine check on saved real-checkpoint problems (problems.tar.xz, written on the dev
# machine by palu-kernels-check --checkpoint ... --save-problems), the synthetic grid, and an A/B
# timing of palu-kernels-bench-v6 (previous build) against palu-kernels-bench. $1 also holds
# libcudart.so.13 and syslibs.tar.xz (OpenBLAS/LAPACKE, SentencePiece, PCRE2 of the dev machine,
# which the CPU engine inside the binaries needs). Recipe: docs/kernels.md, "Against the CPU engine".
#   MODE=gtest|problems|quick|full|bench|table|ab|kab|sass|ncu (space-separated list; default "gtest problems")
#   table: run_bench.py (SDPA baseline, ceilings, bound) over TABLE_ARGS (palu-kernels-bench arguments);
#   kab: the block and warp kernels of one binary, interleaved per configuration, two runs (bench args);
#   sass: instruction mix of the warp kernel's main instantiations; ncu: Nsight Compute of NCU_CASES.
set -o pipefail
bin=$1; out=$2; shift 2
# System libraries of the build machine (OpenBLAS/LAPACKE for the CPU engine, SentencePiece, PCRE2),
# carried compressed: unpacked beside the binaries' private library folder.
mkdir -p /tmp/kwork-lib && tar xJf "$bin/syslibs.tar.xz" -C /tmp/kwork-lib
cb=$(ldconfig -p | awk '/libcublas\.so\.13 /{print $NF; exit}')
[[ -z $cb ]] && cb=$(find /usr/local /opt -name 'libcublas.so.13' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$PWD/$bin:/tmp/kwork-lib:$(dirname "${cb:-/usr/local/cuda/lib64/x}"):$LD_LIBRARY_PATH PYTHONUNBUFFERED=1
echo "cublas: ${cb:-not found}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv
for m in ${MODE:-gtest problems}; do
  case $m in
    gtest) "$bin/palu_test_kernels" 2>&1 | tee "$out/gtest.log" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |tests ran|Failure|Expected|Which is|rel" | head -60 ;;
    problems) mkdir -p /tmp/kwork-prob && tar xJf "$bin/problems.tar.xz" -C /tmp/kwork-prob
      for f in /tmp/kwork-prob/problems_*.safetensors; do
        echo "== $(basename "$f")" | tee -a "$out/engine.md"
        "$bin/palu-kernels-check" --problems "$f" 2>&1 | tee -a "$out/engine.md" | grep -E "FAIL|failed|^E "; done ;;
    full) "$bin/palu-kernels-check" 2>&1 | tee "$out/check_full.md" | grep -vE "\| ok \|" | tail -8 ;;
    quick) "$bin/palu-kernels-check" --quick 2>&1 | tee "$out/check_quick.md" | grep -vE "\| ok \|" | tail -20 ;;
    bench) "$bin/palu-kernels-bench" "$@" 2>&1 | tee "$out/bench.jsonl" | tail -40 ;;
    table) python3 bench/kernels/run_bench.py --bench "$bin/palu-kernels-bench" --out "$out/bench.md" -- ${TABLE_ARGS:-} 2>&1 \
             | grep -E "^device|x[0-9]" | tail -${TABLE_TAIL:-60} ;;
    ab) for r in 1 2; do
          "$bin/palu-kernels-bench-v6" "$@" > "$out/old$r.jsonl" 2>&1
          "$bin/palu-kernels-bench" "$@" > "$out/new$r.jsonl" 2>&1
        done
        python3 "$bin/ab_table.py" "$out"/old1.jsonl "$out"/new1.jsonl "$out"/old2.jsonl "$out"/new2.jsonl | tee "$out/ab.md"
        for r in old1 new1 old2 new2; do sed "s/^/$r /" "$out/$r.jsonl"; rm "$out/$r.jsonl"; done > "$out/ab_raw.txt" ;;
    kab) for r in 1 2; do "$bin/palu-kernels-bench" --kernels block warp "$@" > "$out/kab$r.jsonl" 2>>"$out/kab.err"; done
         python3 bench/kernels/kernel_ab.py "$out/kab1.jsonl" "$out/kab2.jsonl" | tee "$out/kab.md" ;;
    sass) for f in "$bin"/palu_test_kernels; do
            cuobjdump -sass "$f" > /tmp/all.sass 2>/dev/null || /usr/local/cuda/bin/cuobjdump -sass "$f" > /tmp/all.sass
          done
          python3 bench/kernels/sass_mix.py /tmp/all.sass | tee "$out/sass_mix.md" ;;
    ncu) IFS=';' read -ra cases <<< "${NCU_CASES:-}"
         for c in "${cases[@]}"; do
           n="$out/ncu_$(echo "$c" | tr -c 'a-z0-9' '_' | cut -c1-60).txt"
           ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy \
               --section LaunchStats --section MemoryWorkloadAnalysis -k regex:"warp_kernel|split_kernel" -s 2 -c 1 \
               "$bin/palu-kernels-bench" --reps 1 $c > "$n" 2>&1
           grep -E "Duration|Throughput|Pipe|Stall|Issue|Occupancy|Registers|Block Limit|Warp Cycles|Eligible" "$n" | head -40
         done ;;
  esac
done
