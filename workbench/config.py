"""Settings, from lowest to highest precedence:

defaults < user TOML (platformdirs config folder) < project `.workbench/config.toml` < env `WORKBENCH_*`
< flags (keyword overrides).

Nested settings come from TOML tables (`[sandbox] memory = "2g"`) or from the environment with a double
underscore (`WORKBENCH_SANDBOX__MEMORY=2g`). A file that cannot be parsed, or a value that does not
validate, is a `ConfigError` naming the file and the problem; nothing is ever written back here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from workbench import paths
from workbench.errors import ConfigError

PROJECT_CONFIG = Path(".workbench") / "config.toml"


class EngineSettings(BaseModel):
    """How to reach the container engine."""

    # Docker API endpoint; empty means search: $DOCKER_HOST, rootless Podman, rootful Podman, Docker.
    host: str = ""
    timeout: float = Field(default=60.0, gt=0, description="seconds for one engine API call")


class SandboxSettings(BaseModel):
    """Limits and isolation of the project's container."""

    image: str = ""  # empty: the versioned offline base image, see workbench.sandbox.image
    memory: str = "2g"
    cpus: float = Field(default=2.0, gt=0)
    pids: int = Field(default=256, ge=16)
    timeout: float = Field(default=120.0, gt=0, description="wall-clock seconds per execution")
    output_cap: int = Field(default=10 * 1024 * 1024, ge=1024, description="bytes kept per stream")
    workspace_quota: str = "10g"  # the largest single file code may write (RLIMIT_FSIZE)
    disk_floor: str = "1g"  # an execution is stopped when the workspace's disk has less free than this
    network: Literal["none"] = "none"  # user code never has a network; installs have their own policy
    sql_database: str = "data.db"  # relative to the workspace
    session_idle: float = Field(default=1800.0, gt=0, description="seconds a warm session container idles "
                                "before it stops")
    # The OCI runtime of every container Workbench makes: "" the engine's default (runc where Workbench set the
    # engine up), "runsc" gVisor (a user-space kernel between code and the host; see workbench.sandbox.gvisor).
    runtime: str = ""
    # Record the workspace files each execution opened for reading (inotify; workbench.sandbox.reads).
    record_reads: bool = True


class InstallSettings(BaseModel):
    """Where package installs may fetch from (the only step with network access)."""

    pip_index_url: str = ""  # empty: pip's own configuration
    pip_find_links: str = ""  # a wheelhouse folder for air-gapped use
    apt_mirror: str = ""
    cran_repo: str = ""
    # conda channels in priority order, a list or space-separated: `file:///PATH` folders (air-gapped) or URLs;
    # empty: conda-forge (workbench/sandbox/managers/conda.py)
    conda_channels: str | list[str] = ""
    # More places an install may reach, space-separated: `host` (TLS on 443 and plain http on 80), `host:443`
    # (TLS), `host:PORT` (plain http), or a URL (`https://host:8443` for TLS on another port).
    allow_hosts: str = ""


class ModelSettings(BaseModel):
    """The local LLM."""

    provider: Literal["llama_cpp", "openai"] = "llama_cpp"
    path: str = ""  # empty: the bundled default model
    models_dir: str = ""
    chat_format: str = ""  # empty: from the GGUF metadata
    context: int = Field(default=8192, ge=512)
    threads: int = Field(default=0, ge=0, description="0: the machine's physical cores")
    endpoint: str = ""  # for provider = "openai"
    endpoint_model: str = ""


class AgentSettings(BaseModel):
    approval: Literal["auto", "ask"] = "auto"
    approve_installs: Literal["auto", "ask"] = "ask"
    max_steps: int = Field(default=12, ge=1)
    max_tokens: int = Field(default=60_000, ge=1000)
    wall_clock: float = Field(default=900.0, gt=0)


class AuditSettings(BaseModel):
    checkpoint_every: int = Field(default=256, ge=1, description="sign a checkpoint every N entries")
    origin: str = ""  # empty: derived from the project's id


class MemorySettings(BaseModel):
    embedding_model: str = ""  # a sentence-embedding GGUF; empty: the cached all-MiniLM-L6-v2, else fallbacks
    # Tokens of the agent's prompt given to notes retrieved for a task; 0: an eighth of the model's context,
    # at most 1,500.
    context_tokens: int = Field(default=0, ge=0)
    # Session notes kept as they are; older ones fold into one digest note per month (0: keep them all).
    keep_session_notes: int = Field(default=60, ge=0)


class UISettings(BaseModel):
    theme: str = "workbench-dark"


class Settings(BaseSettings):
    """All of Workbench's settings."""

    model_config = SettingsConfigDict(
        env_prefix="WORKBENCH_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    engine: EngineSettings = EngineSettings()
    sandbox: SandboxSettings = SandboxSettings()
    install: InstallSettings = InstallSettings()
    model: ModelSettings = ModelSettings()
    agent: AgentSettings = AgentSettings()
    audit: AuditSettings = AuditSettings()
    memory: MemorySettings = MemorySettings()
    ui: UISettings = UISettings()
    # [languages.NAME] tables (command, extension, apt, warm, ...): kept as written and read by
    # workbench.languages, so one broken table is a line in doctor, not a settings file that fails to load.
    languages: dict[str, Any] = Field(default_factory=dict)
    # [network] rules (http, databases): read by workbench.network.rules, which names a broken rule itself
    network: dict[str, Any] = Field(default_factory=dict)


def read_toml(path: Path) -> dict[str, Any]:
    """Read one settings file; missing is empty, broken is a ConfigError naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _parse_toml(path, raw)


def _parse_toml(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})", "fix or remove the file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file or remove it") from exc


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _MappingSource(PydanticBaseSettingsSource):
    """Settings already read from the TOML files, user then project."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]):
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


def settings_files(project_root: Path | None) -> list[Path]:
    files = [paths.user_config_file()]
    if project_root is not None:
        files.append(project_root / PROJECT_CONFIG)
    return files


def read_project_toml(project_root: Path) -> dict[str, Any]:
    """The project's settings file, read without following a symlink (a project folder may come from
    someone else: its config.toml could point at any file on this machine)."""
    from workbench.confined import Confined, Refused

    path = project_root / PROJECT_CONFIG
    try:
        with Confined(project_root) as folder:
            found = folder.read(str(PROJECT_CONFIG), 1 << 20)
    except FileNotFoundError:
        return {}
    except Refused as exc:
        raise ConfigError(f"the project's {exc.one_line()}", f"replace it with a regular file: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if found.truncated:
        raise ConfigError(f"{path} is larger than 1 MB: not a settings file", "fix the file or remove it")
    return _parse_toml(path, found.data)


def load_settings(project_root: Path | None = None, overrides: dict[str, Any] | None = None,
                  project_data: dict[str, Any] | None = None) -> Settings:
    """Load settings with the documented precedence. `overrides` are the command-line flags. `project_data`
    stands in for the project's file (restricted mode passes only the settings that tighten)."""
    files = settings_files(project_root)
    from_files = read_toml(files[0])
    if project_root is not None:
        from_files = _deep_merge(from_files, read_project_toml(project_root) if project_data is None
                                 else project_data)

    class _Bound(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings):
            return (init_settings, env_settings, _MappingSource(settings_cls, from_files))

    try:
        return _Bound(**(overrides or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        named = [str(f) for f in files if _has_key(_quiet_read(f, project_root), first["loc"])]
        origin = named[-1] if named else "the environment (WORKBENCH_*) or a flag"
        raise ConfigError(f"invalid setting {where} in {origin}: {first['msg']}") from exc


def _quiet_read(path: Path, project_root: Path | None) -> dict[str, Any]:
    if project_root is not None and path == project_root / PROJECT_CONFIG:
        return read_project_toml(project_root)
    return read_toml(path)


def _has_key(data: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
