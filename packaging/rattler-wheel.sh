#!/usr/bin/env bash
# py-rattler for the conda install container: the wheel, downloaded once and unpacked into the user cache,
# keyed by version (~/.cache/workbench/py-rattler/VERSION/{*.whl,site/}). The install container imports it
# from there, mounted read-only (workbench/sandbox/managers/conda.py); it is never installed into the base
# image or the virtualenv.
#
#   bash packaging/rattler-wheel.sh            download from PyPI (pip download), unless already cached
#   bash packaging/rattler-wheel.sh DIR        offline: take the wheel from DIR (the bundle's conda/ folder)
#   bash packaging/rattler-wheel.sh --copy-to DIR
#                                              put the cached wheel in DIR (build-bundle.sh)
#
# The wheel is abi3 (CPython 3.10 and newer, the image's 3.11 included) for this machine's architecture,
# which is the engine's. Prints the site folder. Idempotent: a cached, complete site returns at once.
set -euo pipefail
mode=${1:-}
from=${2:-}
[ -n "$mode" ] && [ "$mode" != "--copy-to" ] && from=$(cd "$mode" && pwd)
[ "$mode" = "--copy-to" ] && { mkdir -p "$from"; from=$(cd "$from" && pwd); }
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-$VENV/bin/python}
# Workbench's own answer: which version, and where its cache is (WORKBENCH_CACHE_DIR, else the user cache).
read -r version cache < <("$PY" -c 'from workbench.paths import user_cache_dir
from workbench.sandbox.managers.conda import RATTLER_VERSION
print(RATTLER_VERSION, user_cache_dir())')
home="$cache/py-rattler/$version"
site="$home/site"
say() { printf 'py-rattler: %s\n' "$*" >&2; }

if [ "$mode" = "--copy-to" ]; then
  wheel=$(ls "$home"/py_rattler-"$version"-*.whl 2>/dev/null | head -1)
  [ -n "$wheel" ] || { bash "$0" >/dev/null; wheel=$(ls "$home"/py_rattler-"$version"-*.whl | head -1); }
  cp "$wheel" "$from/"
  echo "$from/$(basename "$wheel")"
  exit 0
fi

if [ -f "$site/.complete" ] && [ -f "$site/rattler/__init__.py" ]; then
  echo "$site"
  exit 0
fi

mkdir -p "$home"
if [ -n "$mode" ]; then
  say "$version from $from (offline)"
  cp "$from"/py_rattler-"$version"-*.whl "$home/" || { say "no py_rattler-$version wheel in $from"; exit 1; }
else
  say "downloading $version (once; cached in $home)"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
    -d "$home" "py-rattler==$version" 2>&1 | grep -v '^WARNING: Location' >&2 || true
fi
wheel=$(ls "$home"/py_rattler-"$version"-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || { say "the py-rattler $version wheel could not be fetched (no network? see above)"; exit 1; }

# Unpacked beside, then renamed into place: an interrupted run never leaves a half site that looks whole.
rm -rf "$site" "$site.partial"
"$PY" -m zipfile -e "$wheel" "$site.partial"
chmod -R a+rX,go-w "$site.partial"  # the container's user (a mapped uid under a rootful engine) reads it
touch "$site.partial/.complete"
mv "$site.partial" "$site"
say "ready ($site)"
echo "$site"
