"""The container engine behind a narrow seam: find it, ask what it enforces, drive it.

`Engine` is the Protocol the sandbox codes against. It takes a typed `ContainerSpec` and answers with the
typed records of `workbench.sandbox.spec`, never docker-py's dicts. Two implementations are held to the same
contract by tests/sandbox/conformance: `DockerEngine` (`workbench.sandbox.docker_engine`, docker-py's
low-level client against Docker or Podman's compatible socket) and `FakeEngine`
(`workbench.sandbox.fake_engine`, in-process, for sandbox logic tested without an engine).

Where the engine is found: `workbench.sandbox.endpoints`. `connect(settings)` returns the engine to use, with
gVisor's service where `[sandbox] runtime = "runsc"` asks for it.

`probe(settings)` is what `workbench doctor` shows: reachable or not, version, rootless or rootful, and
whether cgroup limits are enforced. Rootless Podman on a cgroup v1 host accepts memory/CPU/PID limits
and silently ignores them; Podman's libpod info says so with an empty `host.cgroupControllers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workbench.config import Settings
from workbench.errors import EngineUnavailable
from workbench.sandbox import gvisor
from workbench.sandbox.docker_engine import DockerEngine, selinux_binds, short_error
from workbench.sandbox.endpoints import (
    DOCKER,
    ROOTFUL_PODMAN,
    candidate_endpoints,
    explicit,
    find_endpoint,
    socket_path,
)
from workbench.sandbox.spec import ContainerInfo, ContainerSpec, ContainerState, ExecHandle

__all__ = ["DOCKER", "ROOTFUL_PODMAN", "ContainerInfo", "ContainerSpec", "ContainerState", "DockerEngine",
           "Engine", "EngineProbe", "ExecHandle", "candidate_endpoints", "connect", "find_endpoint", "probe",
           "selinux_binds"]


@dataclass(frozen=True, slots=True)
class EngineProbe:
    """What doctor reports about the engine."""

    endpoint: str
    reachable: bool
    version: str  # "podman 4.3.1", "docker 27.0.3"; "" when unreachable
    rootless: bool
    limits_enforced: bool
    error: str | None = None
    is_podman: bool = False


class Engine(Protocol):
    """What the sandbox needs from a container engine. Small on purpose: a fake is easy to write.

    The contract both implementations are tested against (tests/sandbox/conformance): `remove` of a container
    that is gone is not an error; `state` is None for a container that is gone; `list_containers` matches
    every label given (an empty value: any value); `exec_stream` yields (stdout, stderr) chunks, one side None,
    live and in the order they were written, bytes unchanged, and ends when the process ends; then
    `exec_exit_code` is its exit status (128+N for a signal N)."""

    endpoint: str
    version: str
    rootless: bool
    limits_enforced: bool
    is_podman: bool

    def image_exists(self, ref: str) -> bool: ...
    def create_container(self, spec: ContainerSpec) -> str: ...
    def start(self, container: str) -> None: ...
    def state(self, container: str) -> ContainerState | None: ...
    def remove(self, container: str, force: bool = True) -> None: ...
    def stop(self, container: str, timeout: int = 2) -> None: ...
    def list_containers(self, labels: dict[str, str], all: bool = True) -> list[ContainerInfo]: ...
    def exec_create(self, container: str, cmd: list[str], *, user: str, env: dict[str, str],
                    workdir: str) -> ExecHandle: ...
    def exec_stream(self, handle: ExecHandle) -> Iterator[tuple[bytes | None, bytes | None]]: ...
    def exec_exit_code(self, handle: ExecHandle) -> int | None: ...
    def commit(self, container: str, repository: str, tag: str, changes: list[str] | None = None) -> str: ...
    def logs(self, container: str, follow: bool = True) -> Iterator[bytes]: ...
    def wait(self, container: str, timeout: float | None = None) -> int | None: ...
    def import_image(self, tarball: Path, repository: str, tag: str, changes: list[str]) -> None: ...
    def remove_image(self, ref: str) -> None: ...
    def close(self) -> None: ...


def connect(settings: Settings, fresh: bool = False) -> DockerEngine:
    """Connect to the engine found by `find_endpoint`, or raise `EngineUnavailable` (exit 3). `fresh`: do not
    reuse a cached description of the engine (see `engine_facts`). With `sandbox.runtime = "runsc"`, the
    engine that runs gVisor, or a one-line refusal: never the default runtime instead."""
    endpoint = find_endpoint(settings)
    path = socket_path(endpoint)
    if path is not None and not path.exists():
        if explicit(settings):
            raise EngineUnavailable(f"the engine socket {path} does not exist (from DOCKER_HOST or "
                                    "engine.host)", "start the engine or correct the setting")
        tried = ", ".join(candidate_endpoints(settings))
        raise EngineUnavailable(f"no container engine socket found (tried {tried})",
                                "run packaging/setup-engine.sh, or set DOCKER_HOST")
    runtime = gvisor.requested(settings.sandbox.runtime)
    if not runtime:
        return DockerEngine(endpoint, timeout=settings.engine.timeout, fresh=fresh)
    if path is not None:  # a local engine: its runsc is on this machine
        gvisor.find_runsc(settings.sandbox.runtime)
    beside = gvisor.podman_socket(endpoint)
    if beside is not None:  # a local Podman: gVisor has a service of its own (see workbench.sandbox.gvisor)
        if not Path(beside[len("unix://"):]).exists():
            raise EngineUnavailable(f"gVisor was asked for but its Podman service is not set up "
                                    f"({beside[len('unix://'):]} does not exist)", gvisor.SERVICE_HINT)
        try:
            return DockerEngine(beside, timeout=settings.engine.timeout, fresh=fresh, runtime=runtime)
        except EngineUnavailable as exc:
            raise EngineUnavailable(f"gVisor was asked for but its Podman service does not answer: "
                                    f"{exc.message}", gvisor.SERVICE_HINT) from exc
    # Docker takes the runtime per container; another Podman endpoint must run runsc by default. Either
    # way each container's runtime is checked as it is made.
    return DockerEngine(endpoint, timeout=settings.engine.timeout, fresh=fresh, runtime=runtime)


def probe(settings: Settings) -> EngineProbe:
    """Doctor's view of the engine, always asked afresh; never raises."""
    endpoint = find_endpoint(settings)
    try:
        engine = connect(settings, fresh=True)
    except EngineUnavailable as exc:
        return EngineProbe(endpoint, False, "", False, False, exc.one_line())
    except Exception as exc:  # a malformed DOCKER_HOST, a TLS problem: still one line
        return EngineProbe(endpoint, False, "", False, False, short_error(exc))
    try:
        return EngineProbe(engine.endpoint, True, engine.version, engine.rootless, engine.limits_enforced,
                           is_podman=engine.is_podman)
    finally:
        engine.close()
