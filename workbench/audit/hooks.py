"""Who hears of a new signed checkpoint: the per-user witness state and cosigning witnesses.

`AuditLog` calls `checkpoint_signed` after it has committed a checkpoint; each registered callback gets the
project root (None for a bare log file), the database path and the checkpoint. A callback that fails never
undoes the checkpoint: its error is logged and the next one still runs (a witness that is down must not stop
the log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.audit.checkpoint import Checkpoint

log = logging.getLogger(__name__)

Callback = Callable[[Path | None, Path, "Checkpoint"], None]
_callbacks: list[Callback] = []

# Built-in listeners register like any other, through `on_checkpoint_signed` when their module is imported;
# they are imported on the first signed checkpoint, so opening a log costs nothing for them.
BUILTIN_LISTENERS = ("workbench.audit.witness",)
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    import importlib

    for name in BUILTIN_LISTENERS:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken listener must not stop the log
            log.warning("checkpoint listener %s cannot be loaded: %s", name, exc)


def on_checkpoint_signed(callback: Callback) -> Callback:
    """Register `callback` (usable as a decorator); registering the same function twice keeps one."""
    if callback not in _callbacks:
        _callbacks.append(callback)
    return callback


def checkpoint_signed(project_root: Path | None, db_path: Path, checkpoint: Checkpoint) -> None:
    _load_builtins()
    for callback in list(_callbacks):
        try:
            callback(project_root, db_path, checkpoint)
        except Exception as exc:  # noqa: BLE001 - a listener's failure is its own
            log.warning("after checkpoint %s: %s failed: %s", checkpoint.size, getattr(callback, "__name__", callback),
                        exc)
