"""gVisor (`runsc`) as the sandbox's runtime: a second kernel, in user space, between code and the host.

`[sandbox] runtime = "runsc"` (or `WORKBENCH_SANDBOX__RUNTIME=runsc`, or `workbench exec --runtime runsc`)
runs the one-off, warm-session and install containers under gVisor. Inside, code talks to gVisor's Sentry
(`uname -r` says 4.4.0), never to the host's kernel; the Sentry itself runs on the host under gVisor's own
seccomp filter.

How Workbench gets there, and why each piece (measured with Debian 12's runsc 0.0~20221219 and Podman 4.3):

  * Podman's API cannot choose a runtime per container (its compat API ignores `HostConfig.Runtime`, its
    libpod API ignores `oci_runtime`: the runtime is a setting of the whole service). So gVisor has its own
    Podman service, started by `packaging/setup-engine.sh --runsc` on `podman-runsc.sock` beside the usual
    socket, with runsc as its default runtime. Docker takes `HostConfig.Runtime = "runsc"` per container
    (`runsc install` registers it in daemon.json).
  * The service's runsc is a wrapper that adds the flags that work here: `--network=none` (code never has a
    network, and without it runsc refuses: "cannot run with network enabled in root network namespace")
    and `--host-uds=all` (the warm-session runner's socket and the install's egress proxy are Unix sockets
    on bind-mounted host folders; without it gVisor keeps them inside the sandbox). The KVM platform
    hung here (nested virtualisation); the default, ptrace, works everywhere.
  * Workbench's seccomp profile (workbench/sandbox/seccomp.py) is enforced inside gVisor by Workbench, not
    by runsc: runsc's `--oci-seccomp` applies the profile to the container's first process only, not to
    `exec`ed ones (every one-off execution is an exec; fixed upstream in 2026, gVisor PR #12692), and it
    answers EPERM where the profile says ENOSYS (so glibc's clone3 -> clone fallback fails and no thread
    can start). Instead the host compiles the same profile to a BPF program with libseccomp (as runc does),
    and every process Workbench starts in a gVisor container, its first and each exec, begins with a few
    lines of the image's own Python that install that program and exec the real command. A process whose
    filter cannot be installed does not run (exit 126).
  * The user-namespace mapping is replaced by its result: a gVisor container gets no user namespace, and
    code runs, inside gVisor's kernel, as the host uid the mapping would have given it (2000001000), so
    the files it writes belong to that account-less uid as under runc. On the host, code's processes are
    the Sentry's (uid 65534, in a user namespace of its own, no capabilities on the host); runsc's gofer,
    the Sentry's file server, runs as root in an empty chroot under gVisor's own seccomp filter, as gVisor
    is designed. (With a user namespace the gofer opens the mounted folders as the range's root and cannot
    pass a 0700 or 0750 folder above them, and it would connect host sockets as that root too.)
  * Memory is the container's cgroup, as under runc, but the OOM killer then kills the Sentry and with it
    the whole container (the execution says killed: out of memory; the next one starts a fresh container).
    The PID limit is applied inside (RLIMIT_NPROC, which gVisor counts per user) and the cgroup gets room
    for gVisor's own threads (workbench.sandbox.policy.cgroup_pids).
  * Warm sessions work: every socket of a gVisor container is bound on the host by runsc itself, so the
    host cannot tell the runner from other code by SO_PEERCRED; workbench.sandbox.kernels authenticates
    the runner's answers with the session's key instead.

What differs under Debian 12's runsc (0.0~20221219), each contained, never weakened:
  * coreutils' `ls`, `stat` (and what calls them) fail with "Invalid argument": this gVisor rejects the
    AT_NO_AUTOMOUNT flag of statx/fstatat that coreutils 9 passes; Python, R and most tools are unaffected;
  * a file deleted on the host while the sandbox container runs keeps its disk space until the container
    ends (the gofer holds it open);
  * a FIFO made inside exists only inside (runsc's --host-fifo is off): the host never sees it.

Nothing falls back: runtime = "runsc" with runsc missing, its service not answering, or a container that
the engine made under another runtime is refused with one line saying what is wrong and how to fix it.
Workbench never runs code under runc when gVisor was asked for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from workbench.errors import ConfigError, EngineUnavailable
from workbench.sandbox.spec import ContainerSpec

RUNSC = "runsc"
DEFAULT_NAMES = ("", "runc")  # the engine's default runtime (runc where Workbench set the engine up)
SEARCH_PATH = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
PODMAN_SOCKET = "podman.sock"
GVISOR_SOCKET = "podman-runsc.sock"  # the gVisor Podman service, beside the usual socket
SETUP_HINT = "install and register it: workbench setup --runsc; or set [sandbox] runtime = \"\" to run under runc"
SERVICE_HINT = "start it: bash packaging/setup-engine.sh --runsc; or set [sandbox] runtime = \"\" to run under runc"
# The capabilities a Podman container has unless dropped (containers.conf default_capabilities): the profile's
# capability-gated rules are chosen from the container's set, as the engine does.
DEFAULT_CAPS = frozenset({"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                          "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
                          "CAP_SYS_CHROOT"})
IMAGE_PYTHON = "/usr/bin/python3"  # the image's own, by absolute path: PATH starts with code's venv

# Runs first in every process Workbench starts in a gVisor container: install the profile, then exec the
# command. NO_NEW_PRIVS (set anyway by the sandbox's no-new-privileges) lets an unprivileged process install
# a filter; the filter and NO_NEW_PRIVS pass to every child. argv: BPF (base64), the command.
LAUNCHER = r"""
import binascii, ctypes, os, sys
bpf = binascii.a2b_base64(sys.argv[1])
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
prog = Prog(len(bpf) // 8, bpf)
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
    os.write(2, b"workbench: the sandbox's seccomp profile could not be installed under gVisor (%s); "
             b"nothing was run\n" % os.strerror(ctypes.get_errno()).encode())
    os._exit(126)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    os.write(2, b"workbench: cannot run %r: %s\n" % (sys.argv[2], exc.strerror.encode()))
    os._exit(127)
"""


def requested(runtime: str) -> str:
    """"" for the engine's default runtime, RUNSC for gVisor; anything else is a ConfigError (one line)."""
    value = runtime.strip()
    if value in DEFAULT_NAMES:
        return ""
    if value == RUNSC or (value.startswith("/") and Path(value).name == RUNSC):
        return RUNSC
    raise ConfigError(f"sandbox.runtime = {runtime!r} is not a runtime Workbench knows",
                      "use \"\" (the engine's default, runc) or \"runsc\" (gVisor)")


def find_runsc(runtime: str) -> Path:
    """The runsc binary on this machine: the path given, or runsc on the usual paths. EngineUnavailable when
    missing (only checked where the engine is local: a remote engine's runsc is on its own machine)."""
    value = runtime.strip()
    if value.startswith("/"):
        path = Path(value)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EngineUnavailable(f"gVisor was asked for (sandbox.runtime = {value!r}) but {value} "
                                    f"{'is not an executable file' if path.exists() else 'does not exist'}",
                                    SETUP_HINT)
        return path
    found = shutil.which(RUNSC, path=os.pathsep.join([os.environ.get("PATH", ""), *SEARCH_PATH]))
    if found is None:
        raise EngineUnavailable(f"gVisor was asked for (sandbox.runtime = \"runsc\") but runsc is not installed "
                                f"(not on PATH nor in {', '.join(SEARCH_PATH)})", SETUP_HINT)
    return Path(found)


def podman_socket(endpoint: str) -> str | None:
    """The gVisor service's endpoint beside a local Podman socket (unix://.../podman.sock); None otherwise."""
    if endpoint.startswith("unix://") and Path(endpoint[len("unix://"):]).name == PODMAN_SOCKET:
        return f"unix://{Path(endpoint[len('unix://'):]).with_name(GVISOR_SOCKET)}"
    return None


def _mapped_ids(userns: str | None, which: str) -> int | None:
    """The first host id of a `userns=auto:uidmapping=0:START:SIZE,gidmapping=...` mapping; None without."""
    for part in (userns or "").partition(":")[2].split(","):
        key, _, value = part.partition("=")
        fields = value.split(":")
        if key == which and len(fields) == 3 and all(f.isdigit() for f in fields) and fields[0] == "0":
            return int(fields[1])
    return None


def flatten_userns(spec: ContainerSpec) -> tuple[ContainerSpec, tuple[int, int] | None]:
    """Under gVisor the container gets no user namespace; its user is the host id the mapping would have
    given it (1000:1000 -> 2000001000:2000001000). Why: runsc's gofer, which does all file access on the
    host, then runs as root as gVisor intends, and can reach a project under a 0700 or 0750 folder (in a
    user namespace it opens mounts as the range's root, which cannot: every home folder and mktemp
    folder); the files code writes still belong to the same account-less uid, and code still never runs
    as a host process (the Sentry holds it, as uid 65534 in a user namespace of its own). Returns the
    spec as changed, and the (uid, gid) shift for the container's execs (None where there was no mapping)."""
    uid_base, gid_base = _mapped_ids(spec.userns, "uidmapping"), _mapped_ids(spec.userns, "gidmapping")
    if uid_base is None or gid_base is None:
        return spec, None
    shift = (uid_base, gid_base)
    return spec.replace(userns=None, user=shifted(spec.user or "0:0", shift)), shift


def shifted(user: str, shift: tuple[int, int] | None) -> str:
    """"uid:gid" moved by `shift`; a user given by name is left to the image (Workbench gives numbers)."""
    uid, _, gid = user.partition(":")
    if shift is None or not uid.isdigit() or not (gid or uid).isdigit():
        return user
    return f"{int(uid) + shift[0]}:{int(gid or uid) + shift[1]}"


def capabilities(cap_drop: Iterable[str] | None, cap_add: Iterable[str] | None) -> frozenset[str]:
    """The container's capability set from its host config, as the engine computes it."""
    def norm(names):
        return {n.upper() if n.upper().startswith("CAP_") else f"CAP_{n.upper()}" for n in names or ()}

    dropped = norm(cap_drop)
    caps = set() if "CAP_ALL" in dropped else set(DEFAULT_CAPS) - dropped
    return frozenset(caps | (norm(cap_add) - {"CAP_ALL"}))


# --- the profile, compiled with libseccomp (the same library runc uses) -------------------------------------
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
EACCES, EEXIST = 13, 17  # libseccomp: a rule whose action is the default one; a rule already there


def _action(name: str, errno: int | None) -> int:
    base = {"SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
            "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_LOG": 0x7FFC0000}
    if name == "SCMP_ACT_ERRNO":
        return 0x00050000 | ((1 if errno is None else errno) & 0xFFFF)
    if name not in base:
        raise ValueError(f"seccomp action {name} is not supported under gVisor")
    return base[name]


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _libseccomp():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise EngineUnavailable("gVisor needs libseccomp on this machine to build the sandbox's seccomp filter, "
                                "and it is missing", "apt-get install libseccomp2; or set [sandbox] runtime = "
                                "\"\" to run under runc") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_Arg)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _applies(rule: dict, caps: frozenset[str], arch: str) -> bool:
    """The engine's reading of a rule's includes/excludes: any listed capability (or architecture) held."""
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if includes.get("caps") and not caps & set(includes["caps"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if excludes.get("caps") and caps & set(excludes["caps"]):
        return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    return not includes.get("minKernel")  # none in the shipped profile; a kernel check is not ours to guess


@lru_cache(maxsize=8)
def compiled_profile(profile_text: str, caps: frozenset[str]) -> bytes:
    """The seccomp profile (OCI/Docker JSON) as a classic BPF program for this machine's architecture,
    choosing capability-gated rules from `caps`. Arguments on the same index become separate rules, as
    runc and Podman do."""
    arch = ARCHES.get(platform.machine())
    if arch is None:
        raise EngineUnavailable(f"gVisor's seccomp filter is built for x86_64 and aarch64 only, not "
                                f"{platform.machine()}", "set [sandbox] runtime = \"\" to run under runc")
    profile = json.loads(profile_text)
    lib = _libseccomp()
    ctx = lib.seccomp_init(_action(profile["defaultAction"], profile.get("defaultErrnoRet")))
    if not ctx:
        raise EngineUnavailable("libseccomp could not start a filter (seccomp_init failed)")
    try:
        for rule in profile["syscalls"]:
            if not _applies(rule, caps, arch):
                continue
            action = _action(rule["action"], rule.get("errnoRet"))
            args = rule.get("args") or []
            indexes = [a["index"] for a in args]
            groups = [args] if len(set(indexes)) == len(indexes) else [[a] for a in args]
            for name in rule["names"]:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == -1:  # unknown to this libseccomp: the engine skips it too
                    continue
                for group in groups:
                    array = (_Arg * max(len(group), 1))(*[
                        _Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0)) for a in group])
                    rc = lib.seccomp_rule_add_array(ctx, action, number, len(group), array)
                    if rc not in (0, -EACCES, -EEXIST):
                        raise EngineUnavailable(f"libseccomp refused the profile's rule for {name} "
                                                f"({os.strerror(-rc)})")
        with tempfile.TemporaryFile() as out:
            rc = lib.seccomp_export_bpf(ctx, out.fileno())
            if rc != 0:
                raise EngineUnavailable(f"libseccomp could not export the filter ({os.strerror(-rc)})")
            out.seek(0)
            program = out.read()
    finally:
        lib.seccomp_release(ctx)
    if not program or len(program) % 8:
        raise EngineUnavailable("libseccomp exported an empty or malformed filter")
    return program


def launch(command: list[str], program: bytes) -> list[str]:
    """`command`, started so that `program` filters it and everything it starts."""
    import binascii

    return [IMAGE_PYTHON, "-I", "-S", "-c", LAUNCHER, binascii.b2a_base64(program, newline=False).decode(),
            *command]
