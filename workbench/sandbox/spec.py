"""The typed values that cross the engine seam: what to create (`ContainerSpec`), and what the engine says back.

`policy.container_spec` and the install step build a `ContainerSpec`; callers derive changed copies
(`with_mounts`, `with_env`, `with_labels`, or `dataclasses.replace`), never mutate one. Only an engine
adapter turns it into its own API's arguments (`workbench.sandbox.docker_spec` for docker-py), so the sandbox
never speaks docker-py and `workbench.sandbox.fake_engine` can implement the same `Engine` Protocol.

The defaults are neutral (the engine's own) except the network, which is off unless asked for: hardening is
`workbench.sandbox.policy`'s job, stated there in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Mount:
    """A host folder (or file) seen at `target` inside the container."""

    source: str  # a path on the engine's machine
    target: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Ulimit:
    """A per-process resource limit set on the container's processes (`name` as `ulimit` spells it)."""

    name: str
    soft: int
    hard: int


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything Workbench asks of a container it creates.

    Limits are in the units the kernel uses (bytes, nano-CPUs, a process count); None leaves the engine's
    default. `userns` is the engine's user-namespace mode (Podman's `keep-id`, `auto:...`), None for none."""

    image: str
    command: tuple[str, ...] = ()
    user: str = ""  # "uid:gid"; "" the image's user
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = ""  # "" the image's
    hostname: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)  # target -> mount options ("rw,size=256m,...")
    network: str = "none"  # "none", or an engine network mode ("bridge", "host", a network's name)
    memory: int | None = None
    memory_swap: int | None = None  # memory + swap; equal to `memory`: no swap on top
    nano_cpus: int | None = None
    pids: int | None = None
    ulimits: tuple[Ulimit, ...] = ()
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()  # "no-new-privileges", "seccomp=...", ...
    userns: str | None = None
    read_only_rootfs: bool = False
    init: bool | None = None  # None: the engine's default; False: the command is PID 1
    auto_remove: bool = False  # the engine removes the container once its command ends

    def __post_init__(self) -> None:
        # Frozen all the way down: a spec handed to the engine cannot change behind its back.
        for name in ("env", "labels", "tmpfs"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        for name in ("command", "mounts", "ulimits", "cap_drop", "cap_add", "security_opt"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def replace(self, **changes: Any) -> ContainerSpec:
        return dataclasses.replace(self, **changes)

    def with_mounts(self, *mounts: Mount) -> ContainerSpec:
        """This spec with `mounts` added; a mount at a target already mounted replaces it."""
        targets = {m.target for m in mounts}
        return self.replace(mounts=(*(m for m in self.mounts if m.target not in targets), *mounts))

    def with_env(self, env: Mapping[str, str] | None = None, **more: str) -> ContainerSpec:
        return self.replace(env={**self.env, **(env or {}), **more})

    def with_labels(self, labels: Mapping[str, str]) -> ContainerSpec:
        return self.replace(labels={**self.labels, **labels})

    def mount_at(self, target: str) -> Mount | None:
        return next((m for m in self.mounts if m.target == target), None)


def mounts_from_binds(binds: Mapping[str, Mapping[str, str]]) -> tuple[Mount, ...]:
    """Mounts from docker-py's `{host: {"bind": target, "mode": "ro"|"rw"}}` shape (install plans keep it)."""
    return tuple(Mount(host, bind["bind"], "ro" in bind.get("mode", "rw").split(",")) for host, bind in binds.items())


# --- what the engine says back ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecHandle:
    """An exec created in a container; `id` is the engine's exec id."""

    id: str
    container: str


@dataclass(frozen=True, slots=True)
class ContainerState:
    """A container's state as the engine reports it."""

    running: bool
    status: str = ""  # "created", "running", "exited", ...
    exit_code: int | None = None
    pid: int | None = None  # its first process on the engine's machine; None when not running
    oom_killed: bool = False


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A row of a container listing."""

    id: str
    state: str  # "created", "running", "exited", ...
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
