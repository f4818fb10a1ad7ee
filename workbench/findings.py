"""A `Finding`: what one check saw (ok / warn / fail) and how to fix it.

Each subsystem answers `check(settings) -> list[Finding]` about its own parts; `workbench doctor` only
collects and prints them. This module is the one thing they share, so it imports nothing of Workbench.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[self.status]
        text = f"[{mark}] {self.name}: {self.detail}"
        return f"{text}\n       fix: {self.fix}" if self.fix and self.status != "ok" else text
