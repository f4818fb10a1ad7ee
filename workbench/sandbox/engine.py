"""The container engine behind a narrow seam: find it, ask what it enforces, drive it.

`Engine` is the Protocol the sandbox codes against; `DockerEngine` implements it with docker-py's
low-level `APIClient`, which speaks the Docker API to Docker and to Podman's compatible socket alike.

Where the engine is found, first match wins:
  1. `$DOCKER_HOST`                     (unix://, tcp:// or ssh://: a remote engine is allowed)
  2. `settings.engine.host`
  3. `$XDG_RUNTIME_DIR/podman/podman.sock`  rootless Podman, the target on a user's machine
  4. `/run/podman/podman.sock`              rootful Podman (CI runs as root)
  5. `/var/run/docker.sock`                 Docker
Nothing here assumes the engine is local. The sandbox does: it bind-mounts the project's workspace, which
must therefore be on the engine's machine (documented in `workbench.sandbox.sandbox`).

`probe(settings)` is what `workbench doctor` shows: reachable or not, version, rootless or rootful, and
whether cgroup limits are enforced. Rootless Podman on a cgroup v1 host accepts memory/CPU/PID limits
and silently ignores them; Podman's libpod info says so with an empty `host.cgroupControllers`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.config import Settings
from workbench.errors import EngineUnavailable
from workbench.sandbox import engine_facts, gvisor, seccomp

ROOTFUL_PODMAN = "unix:///run/podman/podman.sock"
API_VERSION = "1.41"  # Docker 20.10+, Podman 3+
DOCKER = "unix:///var/run/docker.sock"


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


def candidate_endpoints(settings: Settings | None = None) -> list[str]:
    """Every endpoint worth trying, in the documented order (duplicates dropped)."""
    found: list[str] = []
    if os.environ.get("DOCKER_HOST"):
        found.append(os.environ["DOCKER_HOST"])
    if settings is not None and settings.engine.host:
        found.append(settings.engine.host)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or (f"/run/user/{os.getuid()}" if os.getuid() else "")
    if runtime_dir:
        found.append(f"unix://{runtime_dir}/podman/podman.sock")
    found += [ROOTFUL_PODMAN, DOCKER]
    return list(dict.fromkeys(_normalise(e) for e in found))


def _normalise(endpoint: str) -> str:
    return f"unix://{endpoint}" if endpoint.startswith("/") else endpoint


def _socket_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("unix://"):]) if endpoint.startswith("unix://") else None


def find_endpoint(settings: Settings | None = None) -> str:
    """The endpoint to use: an explicit one as given; otherwise the first socket that exists."""
    explicit = os.environ.get("DOCKER_HOST") or (settings.engine.host if settings else "")
    if explicit:
        return _normalise(explicit)
    for endpoint in candidate_endpoints(settings):
        path = _socket_path(endpoint)
        if path is None or path.exists():
            return endpoint
    return candidate_endpoints(settings)[-1]


@dataclass(frozen=True, slots=True)
class ExecHandle:
    """An exec created in a container; `id` is the engine's exec id."""

    id: str
    container: str


class Engine(Protocol):
    """What the sandbox needs from a container engine. Small on purpose: a fake is easy to write."""

    endpoint: str
    version: str
    rootless: bool
    limits_enforced: bool
    is_podman: bool

    def image_exists(self, ref: str) -> bool: ...
    def create_container(self, spec: dict[str, Any]) -> str: ...
    def start(self, container: str) -> None: ...
    def state(self, container: str) -> dict[str, Any] | None: ...
    def remove(self, container: str, force: bool = True) -> None: ...
    def stop(self, container: str, timeout: int = 2) -> None: ...
    def list_containers(self, labels: dict[str, str], all: bool = True) -> list[dict[str, Any]]: ...
    def exec_create(self, container: str, cmd: list[str], *, user: str, env: dict[str, str],
                    workdir: str) -> ExecHandle: ...
    def exec_stream(self, handle: ExecHandle) -> Iterator[tuple[bytes | None, bytes | None]]: ...
    def exec_exit_code(self, handle: ExecHandle) -> int | None: ...
    def commit(self, container: str, repository: str, tag: str, changes: list[str] | None = None) -> str: ...
    def logs(self, container: str) -> Iterator[bytes]: ...
    def wait(self, container: str, timeout: float | None = None) -> int | None: ...
    def import_image(self, tarball: Path, repository: str, tag: str, changes: list[str]) -> None: ...
    def remove_image(self, ref: str) -> None: ...
    def close(self) -> None: ...


class DockerEngine:
    """`Engine` over docker-py's low-level client (works with Docker and Podman's compat API)."""

    runtime = ""  # "" the engine's default; "runsc": every container is made, checked and run under gVisor

    def __init__(self, endpoint: str, timeout: float = 60.0, fresh: bool = False, runtime: str = ""):
        """`fresh`: ask the engine to describe itself even when a recent description is cached (doctor).
        `runtime`: see `workbench.sandbox.gvisor` (connect() finds the endpoint that can honour it)."""
        import docker  # imported here: `workbench --help` must not pay for docker-py

        self.endpoint = endpoint
        self.runtime = runtime
        self._caps: dict[str, frozenset[str]] = {}  # gVisor: each container's capabilities, for its execs
        self._shift: dict[str, tuple[int, int] | None] = {}  # gVisor: each container's id shift, for its execs
        self._docker = docker
        try:
            # A pinned API version saves a round trip (Podman answers /version slowly: ~0.3 s).
            self.api = docker.APIClient(base_url=endpoint, timeout=timeout, version=API_VERSION)
            facts = None if fresh else engine_facts.cached(endpoint)
            if facts is not None:
                self._ping()  # the description is recent; the engine must still answer
            else:
                facts = self._identify()
                engine_facts.store(endpoint, facts)
            self.version, self.is_podman, self.rootless, self.limits_enforced, self.selinux = facts
        except EngineUnavailable:
            raise
        except Exception as exc:
            raise EngineUnavailable(f"the container engine at {endpoint} does not answer: {_short(exc)}",
                                    "run packaging/setup-engine.sh, or set DOCKER_HOST") from exc

    def _ping(self) -> None:
        response = self.api.get(f"{self.api.base_url}/_ping")
        if response.status_code != 200:
            raise EngineUnavailable(f"the container engine at {self.endpoint} answers {response.status_code} "
                                    "to a ping", "run packaging/setup-engine.sh, or set DOCKER_HOST")

    def _identify(self) -> engine_facts.Facts:
        """(version, is_podman, rootless, cgroup limits enforced, SELinux on), from the engine's own report."""
        response = self.api.get(f"{self.api.base_url}/v4.0.0/libpod/info")
        if response.status_code == 200:  # Podman: one call says it all
            info = response.json()
            host = info.get("host", {})
            version = f"podman {info.get('version', {}).get('Version', '?')}"
            security = host.get("security", {})
            rootless = bool(security.get("rootless"))
            selinux = bool(security.get("selinuxEnabled"))
            controllers = set(host.get("cgroupControllers") or [])
            if not controllers:  # rootless on cgroup v1: limits accepted, then silently ignored
                return version, True, rootless, not rootless, selinux
            return version, True, rootless, {"memory", "pids"} <= controllers, selinux
        version = self.api.version()
        components = {c.get("Name", ""): c.get("Version", "") for c in version.get("Components", [])}
        if "Podman Engine" in components:  # a Podman without the libpod API: trust its compat info
            name = f"podman {components['Podman Engine']}"
        else:
            name = f"docker {version.get('Version', '?')}"
        info = self.api.info()
        options = [str(opt) for opt in info.get("SecurityOptions", [])]
        rootless = any("rootless" in opt for opt in options)
        selinux = any("selinux" in opt for opt in options)
        enforced = bool(info.get("MemoryLimit", True)) and bool(info.get("PidsLimit", True))
        return name, "Podman Engine" in components, rootless, enforced, selinux

    # --- images ---------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        try:
            self.api.inspect_image(ref)
            return True
        except self._docker.errors.ImageNotFound:
            return False
        except self._docker.errors.NotFound:
            return False

    def commit(self, container: str, repository: str, tag: str, changes: list[str] | None = None) -> str:
        return self.api.commit(container, repository=repository, tag=tag, changes=changes)["Id"]

    def import_image(self, tarball: Path, repository: str, tag: str, changes: list[str]) -> None:
        with open(tarball, "rb") as data:
            response = self.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)
        if not self.image_exists(f"{repository}:{tag}") and self.image_exists(f"{repository}:latest"):
            # Podman's compat import ignores `tag` and names the image :latest; retag it.
            self.api.tag(f"{repository}:latest", repository, tag)
            if tag != "latest":
                self.api.remove_image(f"{repository}:latest")
        if not self.image_exists(f"{repository}:{tag}"):
            raise EngineUnavailable(f"importing {tarball} failed: {str(response)[:200]}")

    def remove_image(self, ref: str) -> None:
        try:
            self.api.remove_image(ref, force=True)
        except self._docker.errors.NotFound:
            pass

    # --- containers -----------------------------------------------------------------------------
    def create_container(self, spec: dict[str, Any]) -> str:
        spec = dict(spec)
        options = dict(spec.pop("host_config"))
        if getattr(self, "selinux", False) and options.get("binds"):
            options["binds"] = selinux_binds(options["binds"])
        # Every container Workbench makes gets its seccomp profile: the engine's default, less user namespaces.
        profile = seccomp.security_opt(self.is_podman, self.endpoint.startswith("unix://"))
        if profile is not None:
            options["security_opt"] = [*options.get("security_opt", []), profile]
        shift = None
        if self.runtime:
            shift = gvisor.flatten_userns(spec)  # no user namespace under gVisor: the mapped ids instead
            # runsc does not apply that profile to exec'd processes: the same profile, compiled here, is
            # installed in each process Workbench starts (workbench.sandbox.gvisor).
            caps = gvisor.capabilities(options.get("cap_drop"), options.get("cap_add"))
            spec["command"] = self._filtered(spec.get("command"), caps)
            if not self.is_podman:
                options["runtime"] = self.runtime  # Podman: the gVisor service's default runtime
            # Kept once it ends, so how it ended can be read (an OOM ends the whole gVisor container); the
            # sandbox removes a container that is not running before it starts another.
            options["auto_remove"] = False
        host_config = self.api.create_host_config(**options)
        # docker-py validates `userns_mode` to "host" only; Podman understands keep-id/auto here.
        extra = spec.pop("raw_host_config", {})
        host_config.update(extra)
        container = self.api.create_container(host_config=host_config, **spec)["Id"]
        if self.runtime:
            self._check_runtime(container)
            self._caps[container] = caps
            self._shift[container] = shift
        return container

    def _filtered(self, command: list[str] | None, caps: frozenset[str]) -> list[str]:
        if not command:
            raise EngineUnavailable("a container under gVisor needs an explicit command (its seccomp profile "
                                    "is installed before it)")
        return gvisor.launch(list(command), gvisor.compiled_profile(seccomp.profile_text(), caps))

    def _check_runtime(self, container: str) -> None:
        """The container was made under gVisor, as the engine itself records it; otherwise it is removed and
        refused, never run under a weaker runtime."""
        if self.is_podman:
            response = self.api.get(f"{self.api.base_url}/v4.0.0/libpod/containers/{container}/json")
            made = response.json().get("OCIRuntime", "?") if response.status_code == 200 else "?"
        else:
            made = (self.api.inspect_container(container).get("HostConfig") or {}).get("Runtime") or "?"
        if made != self.runtime:
            self.remove(container)
            raise EngineUnavailable(f"gVisor was asked for but the engine at {self.endpoint} made the container "
                                    f"under {made!r}: refused, nothing was run (fix: {gvisor.SERVICE_HINT})")

    def start(self, container: str) -> None:
        if not self.runtime:
            self.api.start(container)
            return
        try:
            self.api.start(container)
        except self._docker.errors.APIError as exc:
            # The fix is part of the message: callers quote the message of what they catch.
            raise EngineUnavailable(f"gVisor (runsc) could not start the container: {_explained(exc)} (fix: check "
                                    "that `runsc --version` works as the engine's user and see the engine's "
                                    "log; or set [sandbox] runtime = \"\" to run under runc)") from exc

    def state(self, container: str) -> dict[str, Any] | None:
        try:
            return self.api.inspect_container(container).get("State", {})
        except self._docker.errors.NotFound:
            return None

    def remove(self, container: str, force: bool = True, attempts: int = 3) -> None:
        # Under load Podman sometimes answers 500 "could not be stopped: timed out waiting for file
        # .../exits/ID" while conmon is still writing the exit file; a moment later removal works.
        for attempt in range(attempts):
            try:
                self.api.remove_container(container, force=force, v=True)
                return
            except self._docker.errors.NotFound:
                return
            except self._docker.errors.APIError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))

    def stop(self, container: str, timeout: int = 2) -> None:
        try:
            self.api.stop(container, timeout=timeout)
        except self._docker.errors.NotFound:
            pass

    def logs(self, container: str) -> Iterator[bytes]:
        return self.api.logs(container, stream=True, follow=True, stdout=True, stderr=True)

    def wait(self, container: str, timeout: float | None = None) -> int | None:
        return self.api.wait(container, timeout=timeout).get("StatusCode")

    def list_containers(self, labels: dict[str, str], all: bool = True) -> list[dict[str, Any]]:
        wanted = [f"{k}={v}" if v else k for k, v in labels.items()]  # an empty value: any value
        return self.api.containers(all=all, filters={"label": wanted})

    # --- exec -----------------------------------------------------------------------------------
    def exec_create(self, container: str, cmd: list[str], *, user: str, env: dict[str, str],
                    workdir: str) -> ExecHandle:
        if self.runtime:  # an exec'd process is outside the profile under runsc: install it (see create)
            if container not in self._caps:  # its capabilities and ids are known only to who made it
                raise EngineUnavailable(f"gVisor: container {container[:12]} was not made by this process, so "
                                        "its seccomp profile and user cannot be applied to an exec in it")
            cmd = self._filtered(cmd, self._caps[container])
            user = gvisor.shifted(user, self._shift[container])
        created = self.api.exec_create(container, cmd, stdout=True, stderr=True, stdin=False, tty=False,
                                       user=user, environment=env, workdir=workdir)
        return ExecHandle(created["Id"], container)

    def exec_stream(self, handle: ExecHandle) -> Iterator[tuple[bytes | None, bytes | None]]:
        # docker-py's exec_run(stream=True) loses the exit code: start, stream, then inspect.
        return self.api.exec_start(handle.id, stream=True, demux=True)

    def exec_exit_code(self, handle: ExecHandle) -> int | None:
        try:
            code = self.api.exec_inspect(handle.id).get("ExitCode")
        except self._docker.errors.NotFound:
            if not self.runtime:
                raise
            code = None  # the container, and with it the exec, is gone
        if self.runtime and code in (None, 128):
            # Under gVisor the cgroup's OOM killer kills the Sentry, which holds every process: the exec
            # ends with runsc's 128 ("WaitPID failed: EOF") and the container with 137. Report the latter,
            # once the engine has seen the container end (so the next execution starts a fresh one).
            deadline = time.monotonic() + 3
            state = self.state(handle.container) or {}
            while state.get("Running") and time.monotonic() < deadline:
                time.sleep(0.05)
                state = self.state(handle.container) or {}
            if state and not state.get("Running") and state.get("ExitCode") == 137:
                return 137
        return code

    def close(self) -> None:
        self.api.close()


# Host folders never relabeled for SELinux: system locations (Podman refuses, and they are not ours to change).
SYSTEM_PATHS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/proc", "/sys", "/dev", "/run",
                "/var/lib", "/var/run")


def selinux_binds(binds: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """On an SELinux host a container may use a bind-mounted folder only once it carries the container label.
    `z` relabels it as shared (the session's containers and install containers use the workspace together);
    the folders are the user's project and Workbench's own temporary ones. System paths are left alone."""
    relabeled = {}
    for host, bind in binds.items():
        mode = bind.get("mode", "rw")
        system = any(host == p or host.startswith(p + "/") for p in SYSTEM_PATHS)
        if not system and "z" not in mode.lower().split(","):
            mode = f"{mode},z"
        relabeled[host] = {**bind, "mode": mode}
    return relabeled


def _explained(exc: BaseException) -> str:
    """The engine's own words for a failed API call (docker-py puts the URL and status first)."""
    explanation = getattr(exc, "explanation", None)
    text = " ".join(str(explanation or exc).split())
    return text[:400] or type(exc).__name__


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def connect(settings: Settings, fresh: bool = False) -> DockerEngine:
    """Connect to the engine found by `find_endpoint`, or raise `EngineUnavailable` (exit 3). `fresh`: do not
    reuse a cached description of the engine (see `engine_facts`). With `sandbox.runtime = "runsc"`, the
    engine that runs gVisor, or a one-line refusal: never the default runtime instead."""
    endpoint = find_endpoint(settings)
    path = _socket_path(endpoint)
    if path is not None and not path.exists():
        if os.environ.get("DOCKER_HOST") or settings.engine.host:
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
        return EngineProbe(endpoint, False, "", False, False, _short(exc))
    try:
        return EngineProbe(engine.endpoint, True, engine.version, engine.rootless, engine.limits_enforced,
                           is_podman=engine.is_podman)
    finally:
        engine.close()
