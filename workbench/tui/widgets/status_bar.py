"""One line at the bottom: model, engine (rootless/rootful), limits, sandbox state, session, scheduler.

A failed unattended run puts a warning first ("⚠ 1 schedule failed: nightly") until the analyst has
looked at the Schedules view; the scheduler's state comes last and only when there is something to say.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from workbench.inert import one_line
from workbench.tui.services import DoctorReport  # the core through the TUI's one seam


class StatusBar(Static):
    """Shows what the analyst needs to trust a run at a glance. Fed by doctor and by events."""

    model: reactive[str] = reactive("checking…")
    engine: reactive[str] = reactive("checking…")
    isolation: reactive[str] = reactive("")
    limits: reactive[str] = reactive("")
    sandbox: reactive[str] = reactive("not started")
    session: reactive[str] = reactive("opening…")
    heartbeat: reactive[str] = reactive("")  # e.g. "scheduler: running elsewhere (pid 42)"
    alert: reactive[str] = reactive("")  # e.g. "⚠ 1 schedule failed: nightly"
    trust: reactive[str] = reactive("")  # "restricted" for a project not trusted on this machine
    demo_model: reactive[bool] = reactive(False)  # the bundled SmolLM2: it cannot do real tasks

    def apply_report(self, report: DoctorReport) -> None:
        """Take model, engine, isolation and limits from doctor's findings."""
        model = report.get("model")
        engine = report.get("engine")
        isolation = report.get("isolation")
        limits = report.get("limits")
        self.model = (model.detail if model.status == "ok" else "missing") if model else "unknown"
        self.demo_model = bool(model and model.status == "warn" and "demo model" in model.detail)
        if self.demo_model:
            self.model = model.detail.split(" (")[0] + " · demo model, cannot do real tasks: ctrl+p → Choose model"
        if engine is None:
            self.engine = "unknown"
        elif engine.status != "ok":
            self.engine = "unavailable"
        else:
            self.engine = engine.detail.split(" at ")[0]
        self.isolation = isolation.detail.replace(" engine", "") if isolation else ""
        if limits is None:
            self.limits = ""
        else:
            self.limits = "enforced" if limits.status == "ok" else "NOT enforced"

    def render(self) -> Text:
        sep = ("  │  ", "dim")
        text = Text(no_wrap=True, overflow="ellipsis")
        # Model and schedule names are not Workbench's own words: shown on one line, escapes visible.
        model = one_line(self.model)
        model_style = "bold yellow" if self.demo_model else ""
        parts = [("model", model, model_style), ("engine", one_line(" ".join(p for p in (self.engine, self.isolation) if p)),
                  ""),
                 ("limits", self.limits or "?", "bold red" if self.limits.startswith("NOT") else ""),
                 ("sandbox", one_line(self.sandbox), "bold" if self.sandbox == "running" else ""),
                 ("session", one_line(self.session), "")]
        if self.alert:
            parts.insert(0, ("", one_line(self.alert), "bold yellow"))
        if self.trust:
            parts.insert(0, ("project", self.trust, "bold yellow"))
        if self.heartbeat:
            parts.append(("", one_line(self.heartbeat), ""))
            # the scheduler's state must fit: the model's name gives way first
            width = self.content_size.width or 160
            used = sum(len(label) + 1 + len(value) for label, value, _ in parts) + len(sep[0]) * (len(parts) - 1)
            index = parts.index(("model", model, model_style))
            keep = len(model) - (used - width)
            if keep < 8:
                del parts[index]  # even a short model name would push the scheduler's state off
            elif used > width:
                short = model.split(" (")[0]
                parts[index] = ("model", short if len(short) <= keep else short[: keep - 1] + "…", model_style)
        for index, (label, value, style) in enumerate(parts):
            if index:
                text.append(*sep)
            if label:
                text.append(f"{label} ", "dim")
            text.append(value, style)
        return text
