"""The container's isolation, in one place: who code runs as, what it can see, what it may use.

Layers (DESIGN.md, "Sandbox security"):
  2. limits    cgroup memory / CPU / PIDs from `settings.sandbox`; where the engine ignores them (rootless
               Podman on cgroup v1) rlimits stand in: RLIMIT_AS for memory, RLIMIT_NPROC for processes.
               RLIMIT_FSIZE (the workspace quota) caps any single file always; /tmp is a small tmpfs.
               The rlimits are set twice: as container ulimits, and with `prlimit` in front of every
               execution (rootless Podman 4.3 silently drops the container's ulimits).
  3. hardening cap_drop ALL, no-new-privileges, the engine's default seccomp profile (never disabled),
               read-only root filesystem, tmpfs /tmp, only /workspace writable.
  4. network   `network_mode="none"` for user code (Podman ignores docker-py's `network_disabled`).
  5. secrets   a fixed, minimal environment (nothing from the host's), no host home, no sockets: the only
               mounts are the workspace and the read-only folder with Workbench's code files.

Who code runs as (layer 3, "never uid 0 inside"):
  * rootless Podman: `UsernsMode=keep-id` and the host user's uid:gid, so files in the workspace stay owned
    by the user on the host. docker-py only accepts "host" for `userns_mode`, so it is set in the raw
    host config.
  * a rootful engine run by an ordinary user (Docker): that user's uid:gid, no user namespace.
  * a rootful engine run by root (CI, the README's fresh machine): uid:gid 1000:1000 inside, the image's
    `sandbox` user, in a user namespace mapped to a fixed high range (the `containers` lines of /etc/subuid
    and /etc/subgid), so on the host code is uid 100000+ that owns no account: an escape lands nowhere, and
    nobody's processes can signal or trace it. The price is that the workspace is handed to that host uid at
    start so the sandbox can write it (root on the host still reads and writes everything). The ownership
    walk never follows a symlink (workbench.confined).
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import Settings
from workbench.confined import Confined, Refused
from workbench.sandbox.image import SANDBOX_UID
from workbench.sandbox.spec import ContainerSpec, Mount, Ulimit

WORKSPACE = "/workspace"
CODE_DIR = "/opt/workbench"  # read-only: code files and the runner, written by the host side
LABEL_PROJECT = "io.workbench.project"
LABEL_ROLE = "io.workbench.role"
LABEL_OWNER = "io.workbench.owner"  # "<hostname>:<pid>" of the process that made it
LABEL_SPEC = "io.workbench.spec"
TMP_SIZE = "256m"
NOFILE = 4096

BASE_ENV = {
    "PATH": "/workspace/.venv/bin:/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "R_LIBS_USER": "/workspace/.R",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
# The conda prefix `workbench install --manager conda` fills. Code's processes see it activated once it
# exists: its bin on PATH after the venv's, CONDA_PREFIX set (here for one-off executions, and in the
# warm-session runner's interpreters). The container's own environment (BASE_ENV) never includes it.
CONDA_PREFIX = f"{WORKSPACE}/.conda"


def conda_activated(env: dict[str, str]) -> dict[str, str]:
    """`env` with the workspace's conda prefix activated (the caller has seen that the prefix exists)."""
    path = [p for p in env.get("PATH", "").split(":") if p and p != f"{CONDA_PREFIX}/bin"]
    at = 1 if path[:1] == [f"{WORKSPACE}/.venv/bin"] else 0
    return {**env, "PATH": ":".join([*path[:at], f"{CONDA_PREFIX}/bin", *path[at:]]),
            "CONDA_PREFIX": CONDA_PREFIX, "CONDA_DEFAULT_ENV": CONDA_PREFIX, "CONDA_SHLVL": "1"}


def execution_env(workspace: Path) -> dict[str, str]:
    """The environment one execution of code gets: BASE_ENV, with the conda prefix activated when the
    workspace has one (`.conda/conda-meta` a folder, looked at without following a symlink)."""
    try:
        with Confined(workspace) as folder:
            meta = folder.lstat(".conda/conda-meta")
    except (Refused, OSError):
        meta = None
    return conda_activated(dict(BASE_ENV)) if meta is not None and meta.kind == "dir" else dict(BASE_ENV)


def parse_size(text: str | int) -> int:
    """'2g' -> 2147483648; plain numbers are bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 512m or 2g)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgt".index(unit or " "))


SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))
SUBID_OWNER = "containers"  # Podman's name for the ranges it may hand to containers (userns=auto)
FALLBACK_RANGE = 2_000_000_000  # used unreserved when /etc/subuid has no containers range (doctor says so)
RANGE_SIZE = 65536
MIN_HOST_ID = 100000  # below this a uid may be a real account


@dataclass(frozen=True)
class Identity:
    user: str  # "uid:gid" inside the container
    userns: str | None  # raw UsernsMode, or None
    chown_workspace: bool  # rootful as root: hand the workspace to the uid code is on the host
    host_owner: tuple[int, int] | None = None  # host uid:gid of code's files, where it differs from ours
    mapping: str = ""  # how code's uid maps to the host, in words (doctor, sandbox.started)
    problem: str | None = None  # a setup gap the mapping works around (doctor shows it with the fix)


@dataclass(frozen=True)
class SubIds:
    uid_start: int
    gid_start: int
    reserved: bool  # found as `containers:` lines in /etc/subuid and /etc/subgid
    problem: str | None = None


def subordinate_ids(files: tuple[Path, Path] = SUBID_FILES) -> SubIds:
    """The host range code's ids map into under a rootful engine run by root: the first RANGE_SIZE ids of
    the `containers` lines in /etc/subuid and /etc/subgid (written by packaging/setup-engine.sh). Missing or
    unusable: a fixed high range all the same (never the host's own ids), and `problem` says how to fix it."""
    starts = []
    for path in files:
        start = None
        try:
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                name, _, rest = line.strip().partition(":")
                first, _, count = rest.partition(":")
                if name == SUBID_OWNER and first.isdigit() and count.isdigit():
                    if int(first) >= MIN_HOST_ID and int(count) >= RANGE_SIZE:
                        start = int(first)
                        break
        except OSError:
            pass
        starts.append(start)
    if None in starts:
        return SubIds(FALLBACK_RANGE, FALLBACK_RANGE, False,
                      f"/etc/subuid and /etc/subgid reserve no '{SUBID_OWNER}' range of {RANGE_SIZE} ids at or "
                      f"above {MIN_HOST_ID}; code runs in the unreserved range {FALLBACK_RANGE}+{RANGE_SIZE} "
                      f"(fix: bash packaging/setup-engine.sh, or add '{SUBID_OWNER}:{FALLBACK_RANGE}:{RANGE_SIZE}' "
                      "to both files)")
    return SubIds(starts[0], starts[1], True)  # type: ignore[arg-type]


def identity(rootless: bool, is_podman: bool) -> Identity:
    uid, gid = os.getuid(), os.getgid()
    if rootless and is_podman:
        return Identity(f"{uid}:{gid}", "keep-id", False, mapping=f"keep-id: code runs as you (uid {uid})")
    if uid != 0 and not rootless:
        return Identity(f"{uid}:{gid}", None, False, mapping=f"none: code runs as you (uid {uid})")
    inside = f"{SANDBOX_UID}:{SANDBOX_UID}"
    if not is_podman:  # Docker maps user namespaces daemon-wide (userns-remap), not per container
        return Identity(inside, None, True, (SANDBOX_UID, SANDBOX_UID),
                        mapping=f"none: code runs as host uid {SANDBOX_UID}",
                        problem=f"Docker run by root gives code the real host uid {SANDBOX_UID} (enable "
                                "userns-remap in the daemon, or use Podman)")
    ids = subordinate_ids()
    host = (ids.uid_start + SANDBOX_UID, ids.gid_start + SANDBOX_UID)
    userns = (f"auto:uidmapping=0:{ids.uid_start}:{RANGE_SIZE},gidmapping=0:{ids.gid_start}:{RANGE_SIZE}")
    where = "the containers range of /etc/subuid" if ids.reserved else "an unreserved fixed range"
    return Identity(inside, userns, True, host,
                    mapping=f"user namespace: code's uid {SANDBOX_UID} is host uid {host[0]} ({where})",
                    problem=ids.problem)


def limits(settings: Settings) -> dict[str, Any]:
    """The limits an execution ran under, as recorded; the runtime too (a warm session made under another
    runtime is replaced, never reused)."""
    s = settings.sandbox
    return {"memory": s.memory, "cpus": s.cpus, "pids": s.pids, "timeout": s.timeout,
            "output_cap": s.output_cap, "workspace_quota": s.workspace_quota, "network": s.network,
            "runtime": s.runtime.strip() or "default"}


# Under gVisor the container's cgroup holds the Sentry and its gofer, not code's processes: ~44 host threads
# idle, and with the ptrace platform about 6 per process code starts (measured). So the PID limit is
# applied inside, where gVisor counts code's own tasks (RLIMIT_NPROC), and the cgroup gets room for
# gVisor's threads above it: hitting the cgroup limit crashes the Sentry (the container ends), hitting
# RLIMIT_NPROC fails code's fork with EAGAIN as under runc.
GVISOR_THREADS_PER_TASK, GVISOR_OWN_THREADS = 8, 128


def under_gvisor(settings: Settings) -> bool:
    return settings.sandbox.runtime.strip() not in ("", "runc")


def cgroup_pids(settings: Settings) -> int:
    pids = settings.sandbox.pids
    return pids * GVISOR_THREADS_PER_TASK + GVISOR_OWN_THREADS if under_gvisor(settings) else pids


def container_spec(*, image: str, settings: Settings, workspace: Path, code_dir: Path, labels: dict[str, str],
                   ident: Identity, limits_enforced: bool, command: list[str]) -> ContainerSpec:
    """The container for sandboxed code (one-off or warm-session role): every layer above, in one spec."""
    s = settings.sandbox
    memory = parse_size(s.memory)
    return ContainerSpec(
        image=image,
        command=tuple(command),
        user=ident.user,
        userns=ident.userns,
        workdir=WORKSPACE,
        env=BASE_ENV,
        labels=labels,
        hostname="sandbox",
        mounts=(Mount(str(workspace), WORKSPACE), Mount(str(code_dir), CODE_DIR, read_only=True)),
        network="none",
        memory=memory,
        memory_swap=memory,  # no swap on top: an OOM is an OOM
        nano_cpus=int(s.cpus * 1e9),
        pids=cgroup_pids(settings),
        cap_drop=("ALL",),
        security_opt=("no-new-privileges",),
        read_only_rootfs=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMP_SIZE},mode=1777"},
        ulimits=(Ulimit("nofile", NOFILE, NOFILE),
                 *(Ulimit(name, value, value) for name, value in rlimits(settings, limits_enforced).items())),
        init=False,  # our own PID 1 (runner.py --init) reaps orphans
        auto_remove=True,  # a container whose PID 1 ended (idle session, project deleted) goes away
    )


def rlimits(settings: Settings, limits_enforced: bool) -> dict[str, int]:
    """Per-process limits. Always: file size (the workspace quota) and no core files. Where the cgroup
    limits are ignored: address space (the memory limit) and processes (the PID limit) stand in."""
    s = settings.sandbox
    found = {"fsize": parse_size(s.workspace_quota), "core": 0}
    if limits_enforced:
        found["nproc"] = s.pids if under_gvisor(settings) else _under_hard_limit(resource.RLIMIT_NPROC, 16384)
    else:
        found.update({"as": parse_size(s.memory), "nproc": s.pids})
    return found


def prlimit_args(settings: Settings, limits_enforced: bool) -> list[str]:
    """The same limits applied from inside (util-linux `prlimit`): rootless Podman drops the container's
    ulimits (measured with Podman 4.3), so the container's own processes set them for the code."""
    return ["prlimit", *(f"--{name}={value}" for name, value in rlimits(settings, limits_enforced).items()), "--"]


def _under_hard_limit(which: int, wanted: int) -> int:
    """`wanted`, or this process's hard limit when lower (the engine on this host has the same)."""
    hard = resource.getrlimit(which)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def hand_workspace_to(workspace: Path, uid: int, gid: int) -> None:
    """Make the workspace writable for the sandbox uid (rootful engine run by root), never following a
    symlink code left in it (`fchownat` on entries of fd-held folders: see workbench.confined)."""
    from workbench.confined import Confined

    with Confined(workspace) as folder:
        folder.chown_tree(uid, gid)
