#!/usr/bin/env bash
# Builds the llama.cpp tools used by the GGUF-export tests (llama-perplexity, llama-bench,
# llama-server, llama-quantize, llama-tokenize), CPU only, from the llama.cpp copy vendored in the
# PyPI source distribution llama-cpp-python==0.3.36 (MIT). Nothing lands in the source tree:
# the build goes to ${PALU_LLAMA_CPP_DIR:-$HOME/.cache/palu/llama.cpp-0.3.36}, once per machine
# (a stamp file records a finished build; re-running is a no-op). Prints the bin directory on
# stdout. A 2-core machine needs about 10 minutes (590 s measured; docs/export-gguf.md).
# Usage: scripts/get-llama-cpp.sh [--force]
set -euo pipefail

version=0.3.36
pkg="llama-cpp-python==$version"
dest=${PALU_LLAMA_CPP_DIR:-$HOME/.cache/palu/llama.cpp-$version}
bin=$dest/bin
stamp=$dest/.palu-built
tools=(llama-perplexity llama-bench llama-server llama-quantize llama-tokenize)

built=1
[ -f "$stamp" ] || built=0
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || built=0; done
if [ "$built" = 1 ] && [ "${1:-}" != "--force" ]; then
  echo "get-llama-cpp: $bin already built ($(cat "$stamp"))" >&2
  echo "$bin"
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "get-llama-cpp: error: '$python -m pip' is not available; hint: install python3-pip" >&2
  exit 1
fi
for t in cmake ninja c++; do
  command -v "$t" >/dev/null 2>&1 || {
    echo "get-llama-cpp: error: '$t' not found; hint: run scripts/install-deps.sh" >&2
    exit 1
  }
done

mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)

echo "get-llama-cpp: downloading the sdist of $pkg from PyPI (about 77 MB)" >&2
if ! "$python" -m pip download --quiet --no-deps --no-binary :all: "$pkg" -d "$tmp/dl" >&2; then
  echo "get-llama-cpp: error: pip download of $pkg failed; hint: check the network / PyPI access" \
       "(pip's message above)" >&2
  exit 1
fi
sdist=$(find "$tmp/dl" -maxdepth 1 -type f -name '*.tar.gz' | head -n 1)
if [ -z "$sdist" ]; then
  echo "get-llama-cpp: error: no .tar.gz source archive in $tmp/dl after pip download" >&2
  exit 1
fi
mkdir -p "$tmp/src"
tar -xzf "$sdist" -C "$tmp/src" --wildcards '*/vendor/llama.cpp/*'
src=$(find "$tmp/src" -mindepth 3 -maxdepth 3 -type d -path '*/vendor/llama.cpp' | head -n 1)
if [ -z "$src" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  echo "get-llama-cpp: error: $(basename "$sdist") has no vendor/llama.cpp/CMakeLists.txt" >&2
  exit 1
fi

jobs=${PALU_LLAMA_CPP_JOBS:-$(nproc)}
echo "get-llama-cpp: building ${tools[*]} (CPU only, -j$jobs)" >&2
# CPU only, no network code (no OpenSSL, no prebuilt web UI download), no tests or examples.
cmake -S "$src" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
      -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$tmp/configure.log" 2>&1 || {
  tail -n 30 "$tmp/configure.log" >&2
  echo "get-llama-cpp: error: cmake configure of llama.cpp failed (log above)" >&2
  exit 1
}
if ! cmake --build "$tmp/build" -j"$jobs" --target "${tools[@]}" >"$tmp/build.log" 2>&1; then
  tail -n 40 "$tmp/build.log" >&2
  echo "get-llama-cpp: error: building llama.cpp failed (log above)" >&2
  exit 1
fi

rm -rf "$bin.new"
mkdir -p "$bin.new"
for t in "${tools[@]}"; do
  cp "$tmp/build/bin/$t" "$bin.new/$t"
done
rm -rf "$bin" "$stamp"
mv "$bin.new" "$bin"
secs=$(( $(date +%s) - t0 ))
echo "llama-cpp-python $version (vendor/llama.cpp), built in ${secs} s with -j$jobs on $(uname -m)" \
  >"$stamp"
echo "get-llama-cpp: built $bin in ${secs} s" >&2
echo "$bin"
