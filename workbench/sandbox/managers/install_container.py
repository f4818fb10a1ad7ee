"""The install container: one short-lived container per install step, and its one way out.

Network policy (egress.py holds the proxy and says why it has this shape):
  * an install container, like user code, has `network_mode="none"`. When every source is a folder that is
    all: nothing leaves the container.
  * when a source is a URL, the container's one way out is a Unix socket to Workbench's allowlisting proxy
    (`WayOut`), which lets through only the destinations the manager asked for (sources.allowed_for).
    Everything else is refused and reported: the CLI prints it, `install.egress` puts it in the audit log.
  * an install container runs only the package manager command its manager built, then is removed.
  * the host's CA bundle (public certificates, no secret) is mounted read-only when the proxy is in use, so
    TLS to a source works behind a corporate proxy CA, as it does on the host.
  * its PATH holds only the image's folders (the sandbox's own PATH starts with the venv's bin, which code
    can fill), so every program it starts by name, the egress relay's `python3` included, is the image's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.sandbox import egress, policy
from workbench.sandbox.egress import Attempt, Destination
from workbench.sandbox.errors import InstallFailed
from workbench.sandbox.managers.output import OUTPUT_CAP, KeptOutput, LineSplitter
from workbench.sandbox.spec import ContainerSpec, Ulimit, mounts_from_binds

if TYPE_CHECKING:
    from workbench.sandbox.managers.base import InstallingSandbox, Progress

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Every install container's PATH: the image's folders only (the sandbox's own PATH starts with the venv).
INSTALL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def host_uid(sandbox: InstallingSandbox, user: str) -> int:
    """The host uid the container's user is: rootless, always this user (keep-id, or the namespace's root);
    rootful, the same number."""
    if sandbox.engine.rootless:
        return os.getuid()
    owner = sandbox.workspace_owner()
    if owner is not None and user == sandbox.identity.user:  # mapped into the user namespace's range
        return owner[0]
    try:
        return int(user.split(":")[0])
    except ValueError:
        return -1


def open_to(uid: int, folder: str, socket_path: str) -> None:
    """Let `uid` (and nobody else) reach the proxy's socket: ours already; as root, handed over; otherwise
    (a rootful engine run by another user, rare) open to all, in a folder nobody can list."""
    if uid == os.getuid():
        os.chmod(folder, 0o700)
    elif os.getuid() == 0 and uid >= 0:
        os.chown(folder, uid, -1)
        os.chown(socket_path, uid, -1)
        os.chmod(folder, 0o700)
    else:
        os.chmod(folder, 0o711)
        os.chmod(socket_path, 0o666)


@dataclass(frozen=True)
class ContainerRun:
    exit_code: int
    output: str
    container: Any
    attempts: tuple[Attempt, ...] = ()


class WayOut:
    """An install's one way out: the egress proxy listening on a Unix socket in a folder of its own, which a
    container gets mounted (with the environment that points its clients at the relay). Opened before any
    container starts, so that no room for the socket stops the install before anything ran."""

    def __init__(self, sandbox: InstallingSandbox, user: str, allowed: frozenset[Destination]):
        # A Unix socket's path is limited to about 100 bytes: a long TMPDIR falls back to /tmp.
        where = None if len(tempfile.gettempdir()) < 60 else "/tmp"
        self.proxy: egress.EgressProxy | None = None
        self.folder: str | None = None
        try:
            self.folder = tempfile.mkdtemp(prefix="workbench-egress-", dir=where)
            socket_path = os.path.join(self.folder, egress.SOCKET_NAME)
            self.proxy = egress.EgressProxy(allowed)
            self.proxy.listen_unix(socket_path, 0o600)
            open_to(host_uid(sandbox, user), self.folder, socket_path)
        except OSError as exc:
            self.close()
            raise InstallFailed(f"cannot open the install's way out (its egress proxy socket): "
                                f"{exc.strerror or exc}",
                                f"check free space and permissions in {where or tempfile.gettempdir()}") from exc

    def attach(self, binds: dict[str, dict[str, str]], env: dict[str, str], command: list[str]) -> list[str]:
        """Mount the socket and the CA bundle into `binds`, point `env` at the relay; the command to run."""
        if HOST_CA_BUNDLE.exists():
            binds[str(HOST_CA_BUNDLE)] = {"bind": str(HOST_CA_BUNDLE), "mode": "ro"}
            env.update(PIP_CERT=str(HOST_CA_BUNDLE), SSL_CERT_FILE=str(HOST_CA_BUNDLE),
                       CURL_CA_BUNDLE=str(HOST_CA_BUNDLE))
        assert self.folder is not None
        binds[self.folder] = {"bind": egress.SOCKET_MOUNT, "mode": "rw"}
        env.update(egress.proxy_environment())
        return egress.relay_command(command)

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return tuple(self.proxy.attempts) if self.proxy is not None else ()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> WayOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def way_out(sandbox: InstallingSandbox, user: str, allowed: frozenset[Destination]
            ) -> WayOut | contextlib.nullcontext:
    """A WayOut when the install may reach somewhere; otherwise nothing to open (None inside `with`)."""
    return WayOut(sandbox, user, allowed) if allowed else contextlib.nullcontext()


log = logging.getLogger(__name__)
LOG_GRACE = 5.0  # seconds a followed log may lag behind its container's exit before it is read whole


def follow_to_the_end(engine, container: Any, output: KeptOutput, lines: LineSplitter) -> int | None:
    """Pass the container's output on as it comes (in this thread, so an exception from `progress`, such as
    the user's Ctrl-C, ends the install here), and return its exit code once it has ended.

    Podman now and then never ends a followed log of a container that exited (an install then hung until
    its caller's timeout; seen with the probe of the image's apt sources). So a second thread waits for the
    exit; if the followed log is still open `LOG_GRACE` seconds after it, that thread closes the stream,
    and the log is read whole instead: what had not been passed on yet is passed on from there."""
    stream = engine.logs(container)
    code: list[int | None] = [None]
    exited, drained = threading.Event(), threading.Event()

    def watch_exit() -> None:
        try:
            code[0] = engine.wait(container)
        except Exception:  # noqa: BLE001 - the container is gone: the caller's removal says the rest
            pass
        exited.set()
        if not drained.wait(LOG_GRACE):
            close = getattr(stream, "close", None)
            try:
                if close is not None:
                    close()
            except Exception:  # noqa: BLE001 - (a generator mid-iteration cannot be closed from here)
                log.warning("could not close the stuck log stream of install container %s", container)

    threading.Thread(target=watch_exit, name="install-exit", daemon=True).start()
    seen = 0
    try:
        for data in stream:
            seen += len(data)
            output.add(data)
            lines.add(data)
    except Exception:  # noqa: BLE001 - the stream closed under it (above): the whole log is read below
        if not exited.is_set():
            raise
    finally:
        drained.set()
    exited.wait()
    whole = b"".join(engine.logs(container, follow=False))
    if len(whole) > seen:
        output.add(whole[seen:])
        lines.add(whole[seen:])
    return code[0]


def run_container(sandbox: InstallingSandbox, *, image: str, command: list[str], user: str,
                  allowed: frozenset[Destination], mounts: dict[str, dict[str, str]], workspace: bool,
                  hardened: bool, progress: Progress | None, keep: bool = False,
                  environment: dict[str, str] | None = None, way_out: WayOut | None = None) -> ContainerRun:
    """Run `command` in a fresh container with no network; with `allowed`, behind the egress proxy (the
    caller's `way_out` when it opened one, else one opened and closed here). `workspace` mounts the
    project's workspace read-write at /workspace; `hardened` drops every capability and makes the root
    filesystem read-only (apt, which runs as root to change the image, is not); `keep` leaves the
    container for the caller to commit and remove."""
    settings = sandbox.settings
    binds = dict(mounts)
    if workspace:
        binds[str(sandbox.project.workspace)] = {"bind": policy.WORKSPACE, "mode": "rw"}
    env = {**policy.BASE_ENV, **INSTALL_ENV, **(environment or {})}
    own = None
    if allowed:
        if way_out is None:
            way_out = own = WayOut(sandbox, user, allowed)
        command = way_out.attach(binds, env, command)
    spec = ContainerSpec(
        image=image,
        command=tuple(command),
        user=user,
        # The user namespace maps the sandbox's uid; apt's root (0:0) is the engine's own.
        userns=sandbox.identity.userns if sandbox.identity.userns and user != "0:0" else None,
        workdir="/",
        env=env,
        hostname="install",
        labels=sandbox.labels("install"),
        mounts=mounts_from_binds(binds),
        network="none",
        memory=policy.parse_size(settings.sandbox.memory),
        pids=max(settings.sandbox.pids, 512),
        security_opt=("no-new-privileges",) if hardened else (),
        tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
        ulimits=(Ulimit("nofile", policy.NOFILE, policy.NOFILE), Ulimit("nproc", 16384, 16384)),
        cap_drop=("ALL",) if hardened else (),
        read_only_rootfs=hardened,
    )
    engine = sandbox.engine
    output = KeptOutput(OUTPUT_CAP)
    lines = LineSplitter(progress)
    try:
        container = engine.create_container(spec)
        try:
            engine.start(container)
            code = follow_to_the_end(engine, container, output, lines)
        finally:
            if not keep:
                engine.remove(container)
    finally:
        if own is not None:
            own.close()
    return ContainerRun(code if code is not None else 1, output.text(), container,
                        way_out.attempts if allowed and way_out is not None else ())
