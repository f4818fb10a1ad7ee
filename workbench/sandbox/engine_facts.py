"""A recent description of the engine, shared by the processes of one user, to skip Podman's slow `info`.

Podman takes about 0.18 s to answer `GET /libpod/info` (it gathers storage and host statistics), a fifth of
a `workbench exec` from the command line. What Workbench reads from it (version, Podman or Docker, rootless,
whether cgroup limits are enforced) does not change while the engine runs, so a description is reused for
`TTL` seconds by later processes talking to the same engine, which then only has to answer a ping.

"The same engine": the endpoint is a local socket whose inode and modification time are unchanged (a
reboot or a re-created socket gives a new key). TCP and SSH endpoints are never cached. `workbench doctor`
always asks afresh. Anything wrong with the cache file (missing, corrupt, unwritable) means asking the
engine, never an error.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from workbench.paths import user_cache_dir

TTL = 600.0  # seconds
Facts = tuple[str, bool, bool, bool, bool]  # (version, is_podman, rootless, limits_enforced, selinux)


def _file() -> Path:
    return user_cache_dir() / "engine-facts.json"


def _key(endpoint: str) -> str | None:
    if not endpoint.startswith("unix://"):
        return None
    try:
        st = os.stat(endpoint[len("unix://"):])
    except OSError:
        return None
    return f"{endpoint}|{st.st_ino}|{st.st_mtime_ns}"


def _read() -> dict:
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached(endpoint: str, now: float | None = None) -> Facts | None:
    key = _key(endpoint)
    if key is None:
        return None
    entry = _read().get(key)
    now = time.time() if now is None else now
    try:
        if not isinstance(entry, dict) or not 0 <= now - float(entry["at"]) < TTL:
            return None
        version, is_podman, rootless, enforced, selinux = entry["facts"]  # (an older layout: asked afresh)
        return str(version), bool(is_podman), bool(rootless), bool(enforced), bool(selinux)
    except (KeyError, TypeError, ValueError):
        return None


def store(endpoint: str, facts: Facts, now: float | None = None) -> None:
    key = _key(endpoint)
    if key is None:
        return
    now = time.time() if now is None else now
    data = {k: v for k, v in _read().items()
            if isinstance(v, dict) and isinstance(v.get("at"), (int, float)) and now - v["at"] < TTL}
    data[key] = {"at": now, "facts": list(facts)}
    try:
        folder = _file().parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".engine-facts-", dir=folder)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, _file())
    except OSError:
        pass
