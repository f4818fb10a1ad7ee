"""Deciding whether an artifact recorded in the log can be shown as the image the user saw.

Why the hash check: the report shows the log, and the log records each artifact's SHA-256. The file in
``workspace/`` may have been overwritten or deleted since; embedding it then would show a reviewer
something that is not what the execution produced. So an image is embedded only when the file is still
there, inside the workspace, and its digest matches; otherwise the report says why it is not shown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from workbench.report.model import ArtifactRef

EMBEDDABLE = {"image/png", "image/jpeg", "image/jpg", "image/gif"}
SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
MAX_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True)
class ArtifactCheck:
    path: Path | None  # the file to embed, when `embed`
    embed: bool
    reason: str  # why not, or "" when embedded


def is_image(artifact: ArtifactRef) -> bool:
    mime = artifact.mime.lower().split(";")[0].strip()
    return mime.startswith("image/") or Path(artifact.path).suffix.lower() in SUFFIXES


def check(workspace: Path, artifact: ArtifactRef) -> ArtifactCheck:
    """Whether `artifact` may be embedded, and why not."""
    mime = artifact.mime.lower().split(";")[0].strip() or SUFFIXES.get(Path(artifact.path).suffix.lower(), "")
    if mime not in EMBEDDABLE:
        return ArtifactCheck(None, False, f"{mime or 'this format'} is not embedded; its digest is listed")
    rel = artifact.path
    for prefix in ("/workspace/", "workspace/"):
        if rel.startswith(prefix):
            rel = rel[len(prefix):]
    try:
        root = workspace.resolve()
        target = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return ArtifactCheck(None, False, "its path cannot be resolved")
    if not target.is_relative_to(root):
        return ArtifactCheck(None, False, "its path points outside the workspace; not embedded")
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return ArtifactCheck(None, False, "the file is no longer in workspace/")
    except OSError as exc:
        return ArtifactCheck(None, False, f"the file cannot be read: {exc.strerror or exc}")
    if size > MAX_BYTES:
        return ArtifactCheck(None, False, f"the file is too large to embed ({size} bytes)")
    try:
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
    except OSError as exc:
        return ArtifactCheck(None, False, f"the file cannot be read: {exc.strerror or exc}")
    if not artifact.sha256:
        return ArtifactCheck(None, False, "the log records no digest for it, so it cannot be checked; not embedded")
    if digest != artifact.sha256.lower():
        return ArtifactCheck(None, False, f"the file in workspace/ has changed since (its sha256 is now {digest}); "
                                          "not embedded")
    return ArtifactCheck(target, True, "")
