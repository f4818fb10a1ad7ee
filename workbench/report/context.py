"""What every section of the report is built from, gathered once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.project import Project
from workbench.report.environment import EngineFacts
from workbench.report.model import ReportModel
from workbench.report.source import Snapshot
from workbench.report.styles import Styles


@dataclass
class Selection:
    """The filters the report was asked for (None: not filtered)."""

    since: datetime | None = None
    until: datetime | None = None
    session: str | None = None

    @property
    def filtered(self) -> bool:
        return self.since is not None or self.until is not None or self.session is not None


@dataclass
class ReportContext:
    project: Project
    styles: Styles
    snapshot: Snapshot
    model: ReportModel
    engine: EngineFacts
    selection: Selection
    generated_at: datetime
    generated_by: str
    version: str
    environments: Any = None  # workbench.report.software.Environments: the appendix, and each execution's

    @property
    def verified(self) -> bool:
        return self.snapshot.verification.ok

    @property
    def root(self) -> str:
        """The root hash every page shows: the verified root, else the last signed one."""
        v = self.snapshot.verification
        if v.root:
            return v.root
        cp = self.snapshot.checkpoint
        return cp.root if cp else ""

    @property
    def root_label(self) -> str:
        """What the footer calls `root`: the verified root, or the signed root nothing could confirm."""
        if self.verified:
            return "log root"
        return "log DID NOT VERIFY · " + ("root as recomputed" if self.snapshot.verification.root
                                          else "last signed root (unconfirmed)")
