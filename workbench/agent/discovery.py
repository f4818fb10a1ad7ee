"""Find the model servers and GGUF files on this machine, so a first run can lead to a capable model.

Most analysts already run a model server: Ollama (port 11434, `/api/tags`), LM Studio (1234) or llama.cpp's
llama-server (8080), the last two speaking the OpenAI API (`/v1/models`). We ask each on loopback only,
all at once in daemon threads, each with a short deadline (a hung server costs the caller that deadline,
never more), and never through a proxy. A server that answers something that is not a model list is
skipped with a one-line note; one that is simply not there is not mentioned.

GGUF files come from `workbench.agent.models.discover` (Hugging Face, LM Studio and Ollama stores, the
models folder, the bundled demo model). `Choice` joins both into what the CLI and the TUI's picker show,
and `endpoint_for` turns `ollama:NAME`, `lmstudio:NAME` or `server:URL` into the OpenAI-compatible
endpoint `[model]` needs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from workbench.agent.models import ModelEntry
from workbench.errors import UsageError, WorkbenchError

PROBE_TIMEOUT = 0.3  # seconds per server: an answer from loopback takes milliseconds
MAX_REPLY_BYTES = 2_000_000  # a model list is small; a server streaming without end is cut here


@dataclass(frozen=True)
class ServerKind:
    """One kind of model server: where it listens by default and how it lists its models."""

    name: str  # ollama, lmstudio, server (what `model use NAME:...` starts with)
    title: str
    port: int
    list_path: str  # /api/tags (Ollama) or /v1/models (OpenAI-compatible)


OLLAMA = ServerKind("ollama", "Ollama", 11434, "/api/tags")
LMSTUDIO = ServerKind("lmstudio", "LM Studio", 1234, "/v1/models")
LLAMA_SERVER = ServerKind("server", "llama-server", 8080, "/v1/models")
KNOWN_SERVERS = (OLLAMA, LMSTUDIO, LLAMA_SERVER)


@dataclass(frozen=True)
class ServedModel:
    name: str  # the id the server wants in a request's "model" field
    size: int = 0  # bytes, when the server says
    quantization: str = "?"


@dataclass(frozen=True)
class ServerProbe:
    """What one server said: its models, or why it was skipped (`note`); `up` is False when nothing answered."""

    kind: ServerKind
    base_url: str  # http://127.0.0.1:PORT
    up: bool = False
    models: tuple[ServedModel, ...] = ()
    note: str = ""

    @property
    def endpoint(self) -> str:
        """The OpenAI-compatible base every one of these servers offers (Ollama's included)."""
        return self.base_url + "/v1"


@dataclass(frozen=True)
class Choice:
    """One model a person can pick: a GGUF file or a model on a server, with what the picker shows."""

    spec: str  # what `workbench model use SPEC` accepts
    name: str
    where: str  # the file's path, or the server's URL
    source: str  # bundled, huggingface, lmstudio, ollama, models_dir; or the server's kind
    size: int = 0
    quantization: str = "?"
    path: Path | None = None  # a GGUF file
    endpoint: str = ""  # a server
    endpoint_model: str = ""
    problem: str = ""  # set when the file cannot be used

    @property
    def is_demo(self) -> bool:
        return self.source == "bundled"


@dataclass
class Discovery:
    servers: list[ServerProbe] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [probe.note for probe in self.servers if probe.note]


# --- servers ------------------------------------------------------------------------------------------

def loopback_url(host_and_port: str, default_port: int) -> str | None:
    """`http://HOST:PORT` for a loopback address (as OLLAMA_HOST may give it), else None."""
    text = host_and_port.strip()
    if not text:
        return None
    parsed = urllib.parse.urlsplit(text if "://" in text else f"http://{text}")
    try:
        host, port = parsed.hostname or "", parsed.port or default_port
    except ValueError:
        return None
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def default_targets() -> list[tuple[ServerKind, str]]:
    """Each known server on 127.0.0.1; Ollama's own OLLAMA_HOST is honoured when it is a loopback address."""
    targets = []
    for kind in KNOWN_SERVERS:
        url = f"http://127.0.0.1:{kind.port}"
        if kind is OLLAMA and os.environ.get("OLLAMA_HOST"):
            url = loopback_url(os.environ["OLLAMA_HOST"], kind.port) or url
        targets.append((kind, url))
    return targets


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes via a proxy


def fetch_json(url: str, timeout: float) -> object:
    with _NO_PROXY.open(urllib.request.Request(url, headers={"Accept": "application/json"}),
                        timeout=timeout) as response:
        return json.loads(response.read(MAX_REPLY_BYTES).decode("utf-8"))


def parse_models(kind: ServerKind, reply: object) -> tuple[ServedModel, ...]:
    """The models in an Ollama `/api/tags` or an OpenAI `/v1/models` reply; ValueError for anything else."""
    if kind.list_path == "/api/tags":
        items = reply.get("models") if isinstance(reply, dict) else None
        key = "name"
    else:
        items = reply.get("data") if isinstance(reply, dict) else None
        key = "id"
    if not isinstance(items, list):
        raise ValueError("not a model list")
    found = []
    for item in items:
        name = item.get(key) if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a model without a name")
        size = item.get("size")
        details = item.get("details")
        quant = details.get("quantization_level") if isinstance(details, dict) else None
        found.append(ServedModel(name, size if isinstance(size, int) and size >= 0 else 0,
                                 quant if isinstance(quant, str) and quant else "?"))
    return tuple(found)


def probe(kind: ServerKind, base_url: str, timeout: float = PROBE_TIMEOUT) -> ServerProbe:
    """Ask one server for its models. Never raises: what went wrong is the probe's note."""
    where = f"{kind.title} at {base_url}"
    try:
        reply = fetch_json(base_url + kind.list_path, timeout)
    except urllib.error.HTTPError as exc:
        return ServerProbe(kind, base_url, True, note=f"skipped {where}: it answered HTTP {exc.code}")
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError | FileNotFoundError):
            return ServerProbe(kind, base_url)  # nothing listens there: not worth a note
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return ServerProbe(kind, base_url, note=f"skipped {where}: no answer within {timeout:g} s")
        return ServerProbe(kind, base_url, note=f"skipped {where}: {reason}")
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        return ServerProbe(kind, base_url, True, note=f"skipped {where}: its answer is not JSON")
    except Exception as exc:  # noqa: BLE001 - http.client's own errors (a garbled status line) and the like
        return ServerProbe(kind, base_url, True, note=f"skipped {where}: {type(exc).__name__}")
    try:
        return ServerProbe(kind, base_url, True, parse_models(kind, reply))
    except ValueError as exc:
        return ServerProbe(kind, base_url, True, note=f"skipped {where}: its answer is {exc}")


def find_servers(targets: Sequence[tuple[ServerKind, str]] | None = None,
                 timeout: float = PROBE_TIMEOUT) -> list[ServerProbe]:
    """Probe every target at once; one that outlives its deadline (a slow trickle) is reported, not awaited."""
    targets = list(default_targets() if targets is None else targets)
    results: list[ServerProbe | None] = [None] * len(targets)

    def run(index: int, kind: ServerKind, url: str) -> None:
        results[index] = probe(kind, url, timeout)

    threads = [threading.Thread(target=run, args=(i, kind, url), daemon=True, name=f"probe-{kind.name}")
               for i, (kind, url) in enumerate(targets)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.2
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return [result if result is not None else
            ServerProbe(kind, url, note=f"skipped {kind.title} at {url}: no answer within {timeout:g} s")
            for result, (kind, url) in zip(results, targets, strict=True)]


# --- everything, as choices ---------------------------------------------------------------------------

# Workbench's own model folder also holds the memory's sentence-embedding model: not something to chat with.
EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "jina-bert-v2", "t5encoder"})


def own_model_files() -> list[Path]:
    """Chat-model GGUF files in Workbench's own model folder (`user_cache_dir()/models`)."""
    from workbench import paths
    from workbench.agent.gguf import GGUFError, read_header

    found = []
    for path in sorted((paths.user_cache_dir() / "models").glob("*.gguf")):
        try:
            if read_header(path).architecture in EMBEDDING_ARCHITECTURES:
                continue
        except GGUFError:
            pass  # listed, and `models.discover`'s reading of it says why it cannot be used
        found.append(path)
    return found


def file_entries(models_dir: str | Path | None = None) -> list[ModelEntry]:
    """The GGUF files `models.discover` finds, plus Workbench's own folder (given by path: not a store)."""
    from workbench.agent.models import discover, resolve

    entries = discover(models_dir)
    seen = {entry.path.resolve() for entry in entries}
    for path in own_model_files():
        if path.resolve() not in seen:
            try:
                entries.append(replace(resolve(str(path)), source="workbench"))
            except WorkbenchError as exc:
                entries.append(ModelEntry(path.stem, path, "workbench", 0, error=exc.one_line()))
    return entries


def file_choices(models_dir: str | Path | None = None) -> list[Choice]:
    return [Choice(spec=str(entry.path) if entry.source in ("path", "workbench") else entry.name,
                   name=entry.name, where=str(entry.path), source=entry.source, size=entry.size,
                   quantization=entry.quantization, path=entry.path, problem=entry.error or "")
            for entry in file_entries(models_dir)]


def server_choices(servers: Sequence[ServerProbe]) -> list[Choice]:
    choices = []
    for server in servers:
        for model in server.models:
            spec = f"server:{server.endpoint}#{model.name}" if server.kind is LLAMA_SERVER else \
                f"{server.kind.name}:{model.name}"
            choices.append(Choice(spec=spec, name=model.name, where=server.base_url, source=server.kind.name,
                                  size=model.size, quantization=model.quantization, endpoint=server.endpoint,
                                  endpoint_model=model.name))
    return choices


def find_all(models_dir: str | Path | None = None, targets: Sequence[tuple[ServerKind, str]] | None = None,
             timeout: float = PROBE_TIMEOUT) -> Discovery:
    """Servers first (a running server is the likeliest capable model), then files; the demo model last."""
    servers = find_servers(targets, timeout)
    files = file_choices(models_dir)
    ordered = server_choices(servers) + [c for c in files if not c.is_demo] + [c for c in files if c.is_demo]
    return Discovery(servers, ordered)


# --- `model use ollama:NAME | lmstudio:NAME | server:URL[#NAME]` ---------------------------------------

SERVER_PREFIXES = tuple(f"{kind.name}:" for kind in KNOWN_SERVERS)


def is_server_spec(spec: str) -> bool:
    return spec.strip().startswith(SERVER_PREFIXES)


def endpoint_for(spec: str, targets: Sequence[tuple[ServerKind, str]] | None = None,
                 timeout: float = 2.0) -> Choice:
    """The server model `spec` names, checked against what that server lists now (a one-line error if not)."""
    prefix, _, rest = spec.strip().partition(":")
    kind = next(k for k in KNOWN_SERVERS if k.name == prefix)
    if kind is LLAMA_SERVER:
        url, _, wanted = rest.partition("#")
        base = loopback_url(url.removesuffix("/").removesuffix("/v1"), kind.port) if url.strip() else None
        if base is None:
            raise UsageError(f"not a loopback server URL: {url!r}",
                             "give one like server:http://127.0.0.1:8080 (optionally #MODEL)")
    else:
        wanted = rest
        base = dict((k, u) for k, u in (default_targets() if targets is None else targets)).get(kind)
        if base is None:  # pragma: no cover - every known kind has a default target
            raise UsageError(f"no address known for {kind.title}")
    wanted = wanted.strip()
    if kind is not LLAMA_SERVER and not wanted:
        raise UsageError(f"no model named after {prefix}:", f"see the names: workbench model list ({kind.title})")
    found = probe(kind, base, timeout)
    if not found.models:
        why = found.note.removeprefix("skipped ") if found.note else f"nothing answers at {base}"
        raise UsageError(f"cannot use {kind.title}: {why}",
                         f"start {kind.title}, or see what answers: workbench model list")
    model = pick_served(found, wanted)
    return server_choices([ServerProbe(kind, base, True, (model,))])[0]


def pick_served(found: ServerProbe, wanted: str) -> ServedModel:
    """`wanted` exactly, or with Ollama's default `:latest` tag; empty picks a server's only model."""
    names = [m.name for m in found.models]
    if not wanted and len(found.models) == 1:
        return found.models[0]
    for candidate in (wanted, f"{wanted}:latest"):
        for model in found.models:
            if model.name == candidate:
                return model
    listed = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    what = f"no model named {wanted!r}" if wanted else "several models"
    raise UsageError(f"{found.kind.title} at {found.base_url} has {what} (it serves: {listed})",
                     f"name one: workbench model use {found.kind.name}:NAME" if found.kind is not LLAMA_SERVER
                     else f"name one: workbench model use server:{found.endpoint}#NAME")
