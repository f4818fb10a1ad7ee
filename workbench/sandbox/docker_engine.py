"""`DockerEngine`: the `Engine` seam over docker-py's low-level `APIClient`, which speaks the Docker API to Docker
and to Podman's compatible socket alike.

It is the only code that speaks docker-py: a `ContainerSpec` becomes API arguments in
`workbench.sandbox.docker_spec`, and what the engine answers comes back as the typed records of
`workbench.sandbox.spec`. What every container gets here, whoever asked for it: Workbench's seccomp profile
(`workbench.sandbox.seccomp`), SELinux labels on its bind mounts where SELinux is on, and under gVisor the
changes `workbench.sandbox.gvisor` explains.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from workbench.errors import EngineUnavailable
from workbench.sandbox import engine_facts, gvisor, seccomp
from workbench.sandbox.docker_spec import docker_arguments
from workbench.sandbox.spec import ContainerInfo, ContainerSpec, ContainerState, ExecHandle

API_VERSION = "1.41"  # Docker 20.10+, Podman 3+
ENGINE_HINT = "run packaging/setup-engine.sh, or set DOCKER_HOST"


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
            raise EngineUnavailable(f"the container engine at {endpoint} does not answer: {short_error(exc)}",
                                    ENGINE_HINT) from exc

    def _ping(self) -> None:
        response = self.api.get(f"{self.api.base_url}/_ping")
        if response.status_code != 200:
            raise EngineUnavailable(f"the container engine at {self.endpoint} answers {response.status_code} "
                                    "to a ping", ENGINE_HINT)

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
    def create_container(self, spec: ContainerSpec) -> str:
        shift: tuple[int, int] | None = None
        caps: frozenset[str] = frozenset()
        if self.runtime:
            spec, shift = gvisor.flatten_userns(spec)  # no user namespace under gVisor: the mapped ids instead
            # runsc does not apply the seccomp profile to exec'd processes: the same profile, compiled here, is
            # installed in each process Workbench starts (workbench.sandbox.gvisor).
            caps = gvisor.capabilities(spec.cap_drop, spec.cap_add)
            # Kept once it ends, so how it ended can be read (an OOM ends the whole gVisor container); the
            # sandbox removes a container that is not running before it starts another.
            spec = spec.replace(command=self._filtered(spec.command, caps), auto_remove=False)
        arguments = docker_arguments(spec)
        options = arguments.pop("host_config")
        raw = arguments.pop("raw_host_config")
        if getattr(self, "selinux", False) and options.get("binds"):
            options["binds"] = selinux_binds(options["binds"])
        # Every container Workbench makes gets its seccomp profile: the engine's default, less user namespaces.
        profile = seccomp.security_opt(self.is_podman, self.endpoint.startswith("unix://"))
        if profile is not None:
            options["security_opt"] = [*options.get("security_opt", []), profile]
        if self.runtime and not self.is_podman:
            options["runtime"] = self.runtime  # Podman: the gVisor service's default runtime
        host_config = self.api.create_host_config(**options)
        host_config.update(raw)
        container = self.api.create_container(host_config=host_config, **arguments)["Id"]
        if self.runtime:
            self._check_runtime(container)
            self._caps[container] = caps
            self._shift[container] = shift
        return container

    def _filtered(self, command: tuple[str, ...] | list[str], caps: frozenset[str]) -> list[str]:
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
            raise EngineUnavailable(f"gVisor (runsc) could not start the container: {explained(exc)} (fix: check "
                                    "that `runsc --version` works as the engine's user and see the engine's "
                                    "log; or set [sandbox] runtime = \"\" to run under runc)") from exc

    def state(self, container: str) -> ContainerState | None:
        try:
            found = self.api.inspect_container(container).get("State") or {}
        except self._docker.errors.NotFound:
            return None
        pid = found.get("Pid")
        code = found.get("ExitCode")
        return ContainerState(running=bool(found.get("Running")), status=str(found.get("Status") or ""),
                              exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                              pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
                              oom_killed=bool(found.get("OOMKilled")))

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

    def logs(self, container: str, follow: bool = True) -> Iterator[bytes]:
        """The container's output as it comes (`follow`), or what it has written so far."""
        if follow:
            return self.api.logs(container, stream=True, follow=True, stdout=True, stderr=True)
        return iter([self.api.logs(container, stream=False, follow=False, stdout=True, stderr=True)])

    def wait(self, container: str, timeout: float | None = None) -> int | None:
        return self.api.wait(container, timeout=timeout).get("StatusCode")

    def list_containers(self, labels: dict[str, str], all: bool = True) -> list[ContainerInfo]:
        wanted = [f"{k}={v}" if v else k for k, v in labels.items()]  # an empty value: any value
        return [ContainerInfo(str(row.get("Id", "")), str(row.get("State") or ""), row.get("Labels") or {})
                for row in self.api.containers(all=all, filters={"label": wanted})]

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
            state = self.state(handle.container)
            while state is not None and state.running and time.monotonic() < deadline:
                time.sleep(0.05)
                state = self.state(handle.container)
            if state is not None and not state.running and state.exit_code == 137:
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


def explained(exc: BaseException) -> str:
    """The engine's own words for a failed API call (docker-py puts the URL and status first)."""
    explanation = getattr(exc, "explanation", None)
    text = " ".join(str(explanation or exc).split())
    return text[:400] or type(exc).__name__


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
