"""The sandbox's seccomp profile: the engine's default, less user namespaces.

Podman's default profile lets code call `unshare(CLONE_NEWUSER)`: uid 0 in a new user namespace, tmpfs
mounts, and the kernel surface most recent container escapes go through. Docker's default refuses it to a
container without CAP_SYS_ADMIN. Workbench's profile (`seccomp.json` beside this file, applied to the one-off,
warm-session and install containers) is the default profile with exactly three changes:

  * `clone` and `unshare` are allowed only when their flags lack CLONE_NEWUSER (EPERM otherwise, as Docker);
  * `clone3` answers ENOSYS: its flags live in a struct seccomp cannot read, and ENOSYS makes glibc fall back
    to `clone`, which the rule above filters.

Everything else (the allowed list, the capability-gated rules, the default action) is the engine's own.
`derive()` makes the profile from a default one; `python -m workbench.sandbox.seccomp DEFAULT.json` rewrites
the shipped file from the engine's default (`/usr/share/containers/seccomp.json` on Podman hosts), and a test
checks that the shipped profile and the engine's default differ in nothing else.

Podman's API takes `seccomp=` as a path on the engine's machine; Docker's takes the profile's content.
"""

from __future__ import annotations

import copy
import json
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38
FILTERED = ("clone", "clone3", "unshare")
DEFAULT_PROFILES = (Path("/usr/share/containers/seccomp.json"), Path("/etc/containers/seccomp.json"))


def profile_path() -> Path:
    return Path(str(resources.files("workbench.sandbox").joinpath("seccomp.json")))


@lru_cache(maxsize=1)
def profile_text() -> str:
    return profile_path().read_text(encoding="utf-8")


def _flags(op: str, value: int) -> list[dict[str, Any]]:
    return [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": value, "op": op}]


def derive(default: dict[str, Any]) -> dict[str, Any]:
    """`default` with clone/unshare filtered on CLONE_NEWUSER and clone3 answered ENOSYS."""
    profile = copy.deepcopy(default)
    for rule in profile["syscalls"]:
        unconditional = rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("args") \
            and not rule.get("includes") and not rule.get("excludes")
        if unconditional:
            rule["names"] = [name for name in rule["names"] if name not in FILTERED]
    profile["syscalls"] += [
        {"names": ["clone", "unshare"], "action": "SCMP_ACT_ALLOW",
         "args": _flags("SCMP_CMP_MASKED_EQ", 0), "comment": "workbench: no new user namespace"},
        {"names": ["clone", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
         "args": _flags("SCMP_CMP_MASKED_EQ", CLONE_NEWUSER), "comment": "workbench: no new user namespace"},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS, "args": [],
         "comment": "workbench: glibc falls back to clone, which is filtered"},
    ]
    return profile


def security_opt(is_podman: bool, local: bool) -> str | None:
    """The `seccomp=` security option for this engine, or None where none can be given (a remote Podman:
    the profile's path does not exist on its machine)."""
    if not is_podman:
        return "seccomp=" + profile_text()
    return f"seccomp={profile_path()}" if local else None


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else next((p for p in DEFAULT_PROFILES if p.is_file()), None)
    if source is None:
        print("no default seccomp profile found; give its path", file=sys.stderr)
        return 2
    profile = derive(json.loads(source.read_text(encoding="utf-8")))
    profile_path().write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {profile_path()} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
