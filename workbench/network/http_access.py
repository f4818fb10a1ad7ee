"""A session's HTTP access: the policy proxy's socket, and what each execution container gets for it.

`HttpAccess.open` does nothing for a project whose policy has no `[[network.http]]` rule (no socket, no
mount, no proxy environment: the container is exactly as without this module, network "none"). With rules
it binds the policy proxy (`workbench.network.httpproxy`) on `.workbench/http/proxy.sock`, and `apply(spec)`
gives a container, one-off and warm alike,

  * that folder, read-only, where the install egress mounts its socket (workbench.sandbox.egress);
  * the egress relay (127.0.0.1:3128 -> the socket) run by the runner itself, PID 1 (`--relay`);
  * http_proxy / https_proxy / HTTP_PROXY / HTTPS_PROXY pointing at it and no_proxy empty.

The container keeps network "none": the socket is its only way out. The folder is stable, like the
database socket's (workbench.network.databases), because a warm container outlives the process that
made it; between sessions there is no socket in it and every request fails to connect.

Secrets are looked up in the vault on first use, kept in this process only (never in the container, its
environment or the socket's answers), and `injected()` hands them to the output leak scan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from workbench.events.bus import EventBus
from workbench.events.kinds import EXEC_FINISHED, EXEC_STARTED
from workbench.events.network import NetRequest
from workbench.network.databases import Running, host_folder
from workbench.network.httpproxy import PolicyProxy, Record
from workbench.network.rules import HttpRule
from workbench.network.shared_socket import SharedSocket
from workbench.sandbox import egress
from workbench.sandbox.spec import ContainerSpec, Mount

FOLDER = "http"  # in the project's .workbench/
SOCKET_NAME = egress.SOCKET_NAME

Emit = Callable[[NetRequest], None]


def policy_rules(project_root: Path) -> list[HttpRule]:
    """The project's http rules (none in an untrusted project: the policy module drops them)."""
    from workbench.network.rules import load_policy

    return list(load_policy(project_root).http)


def vault_secret(name: str) -> str:
    from workbench.network.secrets import get_secret

    return get_secret(name)


class HttpAccess:
    def __init__(self, folder: Path, rules: list[HttpRule], emit: Emit, secret: Callable[[str], str],
                 owner: tuple[int, int] | None, running: Running, unsubscribe: Callable[[], None] | None):
        self.folder, self.rules, self.emit, self.owner = folder, rules, emit, owner
        self.running, self.unsubscribe = running, unsubscribe
        self._lookup = secret
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()
        self.proxy = PolicyProxy(rules, self.secret, self._report)
        self.socket = SharedSocket(folder, SOCKET_NAME, self.proxy.handle, owner, "http-policy")

    @classmethod
    def open(cls, state_dir: Path, project_root: Path, emit: Emit, owner: tuple[int, int] | None = None, *,
             rules: Iterable[HttpRule] | None = None, secret: Callable[[str], str] | None = None,
             bus: EventBus | None = None) -> HttpAccess | None:
        found = list(policy_rules(project_root) if rules is None else rules)
        if not found:
            return None
        running = Running()
        unsubscribe = bus.subscribe(running.see, kinds=[EXEC_STARTED, EXEC_FINISHED]) if bus else None
        try:
            folder = host_folder(state_dir, owner, FOLDER)
            access = cls(folder, found, emit, secret or vault_secret, owner, running, unsubscribe)
            access.socket.start()
            access.preload()
        except BaseException:
            if unsubscribe is not None:
                unsubscribe()
            raise
        return access

    # --- the secrets --------------------------------------------------------------------------------
    def secret(self, name: str) -> str:
        with self._lock:
            if name not in self._secrets:
                self._secrets[name] = self._lookup(name)
            return self._secrets[name]

    def preload(self) -> None:
        """Each rule's secret, looked up now so the leak scan knows it before the first execution's code
        (which may quote it) is recorded; one missing from the vault is said by each request that needs it."""
        from workbench.errors import WorkbenchError

        for rule in self.rules:
            if rule.credential:
                try:
                    self.secret(rule.credential)
                except WorkbenchError:
                    pass

    def injected(self) -> dict[str, str]:
        """The secrets injected so far this session, by name (for the output leak scan)."""
        with self._lock:
            return dict(self._secrets)

    def _report(self, record: Record) -> None:
        self.emit(NetRequest(destination=record.destination, method=record.method, path=record.path,
                             status=record.status, bytes_up=record.bytes_up, bytes_down=record.bytes_down,
                             duration=record.duration, rule=record.rule, refused=record.refused,
                             credential=record.credential, execution_id=self.running.now()))

    # --- the container ------------------------------------------------------------------------------
    def apply(self, spec: ContainerSpec) -> ContainerSpec:
        # The relay runs in the runner (PID 1, `--relay`), not as a process of its own in front of it: a
        # one-off execution ends by killing every process but PID 1 (oneoff.WRAPPER), a warm cell by killing
        # all but PID 1, the runner and its interpreters, so a separate relay (or a runner under it) dies
        # with the first execution and takes the container with it.
        command = (*spec.command, "--relay", f"{egress.SOCKET_MOUNT}/{SOCKET_NAME}", str(egress.RELAY_PORT))
        return spec.with_mounts(Mount(str(self.folder), egress.SOCKET_MOUNT, read_only=True)) \
            .with_env(egress.proxy_environment()).replace(command=command)

    def close(self) -> None:
        self.proxy.drain()
        if self.unsubscribe is not None:
            self.unsubscribe()
        self.socket.close()


def with_access(spec: ContainerSpec, access: HttpAccess | None) -> ContainerSpec:
    """The sandbox's hook: `spec` behind the policy proxy when the session has http rules."""
    return spec if access is None else access.apply(spec)
