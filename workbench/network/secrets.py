"""The credential vault: secrets the proxy and PgBouncer use on the code's behalf, by name.

Each secret is kept in the OS keyring (service ``workbench``, entry ``secret:NAME``), found the same way
as the audit signing key (`workbench.audit.keys`). Without a usable keyring it lives in
``<user data dir>/secrets.json``, mode 0600, and `backend()` says so (the CLI prints it). The keyring
has no way to list entries, so the names alone are kept in ``<user data dir>/secret-names.json``.
A value never appears in argv: `workbench secret set NAME` reads it from stdin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workbench import paths
from workbench.errors import UsageError, WorkbenchError
from workbench.inert import one_line

SERVICE = "workbench"
NAMES_FILE = "secret-names.json"
FALLBACK_FILE = "secrets.json"


class SecretMissing(WorkbenchError):
    exit_code = 2


def _entry(name: str) -> str:
    return f"secret:{name}"


def _check(name: str) -> str:
    from workbench.network.rules import check_secret_name

    return check_secret_name(name)


def _keyring() -> tuple[Any | None, str]:
    # the audit key's own probe: one answer on this machine to "is there a usable keyring"
    from workbench.audit.keys import usable_keyring

    return usable_keyring()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"cannot read {path}: {exc}", "fix or remove the file") from exc
    return data if isinstance(data, dict) else {}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    paths.ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _data_dir() -> Path:
    return paths.user_data_dir()


def backend() -> str:
    """Where secrets are kept on this machine, in words (the fallback says it is a plain file)."""
    found, reason = _keyring()
    if found is not None:
        return f"the OS keyring ({type(found).__module__}.{type(found).__name__})"
    return f"{_data_dir() / FALLBACK_FILE} (mode 0600, not an OS keyring: {reason})"


def list_secrets() -> list[str]:
    return sorted(_read_json(_data_dir() / NAMES_FILE).get("names", []))


def _set_names(names: set[str]) -> None:
    _write_private(_data_dir() / NAMES_FILE, {"names": sorted(names)})


def set_secret(name: str, value: str) -> str:
    """Store `value` as `name`; returns where it was kept."""
    _check(name)
    if not value or any(c in value for c in "\r\n\0"):
        raise UsageError("a secret is one non-empty line", f"printf '%s' VALUE | workbench secret set {name}")
    found, _reason = _keyring()
    if found is not None:
        try:
            found.set_password(SERVICE, _entry(name), value)
            where = backend()
        except Exception as exc:  # a locked keyring: said, not hidden behind the file
            raise WorkbenchError(f"the keyring refused the secret: {type(exc).__name__}: {exc}") from exc
    else:
        store = _read_json(_data_dir() / FALLBACK_FILE)
        store[name] = value
        _write_private(_data_dir() / FALLBACK_FILE, store)
        where = backend()
    _set_names(set(list_secrets()) | {name})
    return where


def get_secret(name: str) -> str:
    _check(name)
    found, _reason = _keyring()
    value = None
    if found is not None:
        try:
            value = found.get_password(SERVICE, _entry(name))
        except Exception as exc:
            raise WorkbenchError(f"the keyring failed reading secret {name}: {type(exc).__name__}: {exc}") from exc
    if value is None:
        value = _read_json(_data_dir() / FALLBACK_FILE).get(name)
    if not value:
        raise SecretMissing(f"the secret {one_line(name)!r} is not in the vault",
                            f"printf '%s' VALUE | workbench secret set {one_line(name)}")
    return str(value)


def remove_secret(name: str) -> None:
    _check(name)
    removed = False
    found, _reason = _keyring()
    if found is not None:
        try:
            if found.get_password(SERVICE, _entry(name)) is not None:
                found.delete_password(SERVICE, _entry(name))
                removed = True
        except Exception as exc:
            raise WorkbenchError(f"the keyring failed removing secret {name}: {type(exc).__name__}: {exc}") from exc
    store = _read_json(_data_dir() / FALLBACK_FILE)
    if name in store:
        del store[name]
        _write_private(_data_dir() / FALLBACK_FILE, store)
        removed = True
    names = set(list_secrets())
    if name in names:
        _set_names(names - {name})
        removed = True
    if not removed:
        raise SecretMissing(f"no secret named {one_line(name)!r}", "see: workbench secret list")
