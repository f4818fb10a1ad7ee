"""Deciding whether an artifact recorded in the log can be shown as the image the user saw.

Why the hash check: the report shows the log, and the log records each artifact's SHA-256. The file in
``workspace/`` may have been overwritten or deleted since; embedding it then would show a reviewer
something that is not what the execution produced. So an image is embedded only when the file is still
there, inside the workspace, and its digest matches; otherwise the report says why it is not shown.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from pathlib import Path

from workbench.confined import Confined, Refused
from workbench.inert import one_line
from workbench.report.model import ArtifactRef

EMBEDDABLE = {"image/png", "image/jpeg", "image/jpg", "image/gif"}
SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
MAX_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True)
class ArtifactCheck:
    path: Path | None  # where the file was, when `embed` (for naming it; the bytes are in `data`)
    embed: bool
    reason: str  # why not, or "" when embedded
    data: bytes = b""  # the bytes whose digest matched: what is embedded (never re-read by name)


def is_image(artifact: ArtifactRef) -> bool:
    mime = artifact.mime.lower().split(";")[0].strip()
    return mime.startswith("image/") or Path(artifact.path).suffix.lower() in SUFFIXES


def check(workspace: Path, artifact: ArtifactRef,
          formats: frozenset[str] | set[str] = EMBEDDABLE) -> ArtifactCheck:
    """Whether `artifact` may be embedded, and why not.

    Code in the sandbox owns every name in workspace/, so the file is read through `workbench.confined`:
    no symlink is followed anywhere on its path, only a regular file is opened, and at most MAX_BYTES are
    read. The bytes checked against the digest are the bytes embedded, so nothing can be swapped in between.
    `formats` are the MIME types the caller can show (the notebook export adds SVG, which it embeds as an image).
    """
    mime = artifact.mime.lower().split(";")[0].strip() or SUFFIXES.get(Path(artifact.path).suffix.lower(), "")
    if mime not in formats:
        return ArtifactCheck(None, False, f"{mime or 'this format'} is not embedded; its digest is listed")
    rel = artifact.path
    for prefix in ("/workspace/", "workspace/"):
        if rel.startswith(prefix):
            rel = rel[len(prefix):]
    if "\0" in rel:
        return ArtifactCheck(None, False, "its path cannot be resolved")
    rel = posixpath.normpath(rel)
    if rel.startswith(("/", "../")) or rel in ("..", "."):
        return ArtifactCheck(None, False, "its path points outside the workspace; not embedded")
    try:
        with Confined(workspace) as folder:
            entry = folder.lstat(rel)
            if entry is None:
                return ArtifactCheck(None, False, "the file is no longer in workspace/")
            if entry.kind != "file":  # said from lstat alone: a symlink is not followed, a FIFO not opened
                return ArtifactCheck(None, False, _not_embedded(entry.describe(), entry.kind))
            if entry.size > MAX_BYTES:
                return ArtifactCheck(None, False, f"the file is too large to embed ({entry.size} bytes)")
            read = folder.read(rel, MAX_BYTES)
    except Refused as exc:  # a symlink above it, or the file swapped between the look and the open
        return ArtifactCheck(None, False, f"{one_line(exc)}; not embedded")
    except FileNotFoundError:
        return ArtifactCheck(None, False, "the file is no longer in workspace/")
    except OSError as exc:
        return ArtifactCheck(None, False, f"the file cannot be read: {exc.strerror or exc}")
    if read.truncated:  # it grew past the cap after the look
        return ArtifactCheck(None, False, f"the file is too large to embed (over {MAX_BYTES} bytes)")
    digest = hashlib.sha256(read.data).hexdigest()
    if not artifact.sha256:
        return ArtifactCheck(None, False, "the log records no digest for it, so it cannot be checked; not embedded")
    if digest != artifact.sha256.lower():
        return ArtifactCheck(None, False, f"the file in workspace/ has changed since (its sha256 is now {digest}); "
                                          "not embedded")
    return ArtifactCheck(Path(workspace) / rel, True, "", read.data)


def _not_embedded(description: str, kind: str) -> str:
    verb = "followed" if kind == "symlink" else "opened"
    return f"in workspace/, {description}: not {verb}, not embedded"
