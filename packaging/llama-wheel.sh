#!/usr/bin/env bash
# Build a portable llama-cpp-python wheel once and keep it in the user cache, keyed by version.
#
# PyPI has no linux x86_64 wheel for CPython 3.11, so pip would compile the sdist (4-5 minutes on 2
# cores) in every new virtualenv. We compile it once, portable (-DGGML_NATIVE=OFF: it runs on any x86_64
# CPU, so the same wheel can travel in the air-gapped bundle), without pip's wheel cache (which ignores
# CMAKE_ARGS and could hand back a native build), and reuse it.
#
# Usage: packaging/llama-wheel.sh            prints the wheel's path (building it when missing)
set -euo pipefail

LLAMA_VERSION="${LLAMA_VERSION:-0.3.36}"
PYTHON="${PYTHON:-python3}"
cache_root="${WORKBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/workbench}"
pytag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
dir="$cache_root/wheels/llama-cpp-python-$LLAMA_VERSION-portable-$pytag"

existing=$(ls "$dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -n "$existing" ]; then
  echo "$existing"
  exit 0
fi

mkdir -p "$dir"
echo "llama-cpp-python $LLAMA_VERSION: building a portable wheel (about 3-5 minutes, once per machine)" >&2
build_log="$dir/build.log"
if ! CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" \
     "$PYTHON" -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
     -w "$dir" "llama-cpp-python==$LLAMA_VERSION" >"$build_log" 2>&1; then
  echo "llama-cpp-python build failed; the last lines of $build_log:" >&2
  tail -20 "$build_log" >&2
  echo "needs: gcc, g++, cmake and the Python headers (apt-get install build-essential cmake python3-dev)" >&2
  exit 1
fi
ls "$dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1
