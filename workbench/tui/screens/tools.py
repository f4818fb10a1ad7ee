"""The main screen's tool actions: run code, install, verify, export, switch model, open in $EDITOR.

A mixin so that `main.py` keeps to layout and event routing. Each action asks in a dialog, then does
its blocking part on a thread worker.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Any

from textual import work

from workbench.tui.screens.approval import ApprovalScreen
from workbench.tui.screens.models import ModelChooser
from workbench.tui.screens.prompts import CodeRequest, ExecPrompt, InputPrompt

PANES = {"steps": "#steps", "output": "#output", "files": "#files-tree", "audit": "#audit-sessions"}


class ToolActions:
    """Mixed into MainScreen (which provides session, services, project, workers and widgets)."""

    # --- run code yourself -------------------------------------------------------------------------
    def action_run_code(self) -> None:
        def run(request: CodeRequest | None) -> None:
            if request is None:
                return
            if self.session is None:
                self.notify("The session is still opening; try again in a moment.", severity="warning")
                return
            if self._execution is not None:
                self.notify("Code is already running. Stop it first (ctrl+s).", severity="warning")
                return
            self._last_code = request
            self.execute(request.language, request.code)

        last = getattr(self, "_last_code", None)
        languages = self.services.languages(self.app.settings)  # the registry's, the project's [languages] too
        self.app.push_screen(ExecPrompt(last.language, last.code, languages) if last
                             else ExecPrompt(languages=languages), run)

    # --- packages ----------------------------------------------------------------------------------
    def action_install_package(self) -> None:
        def install(value: str | None) -> None:
            if not value or self.session is None:
                return
            manager, *packages = value.split()
            if not packages:
                return
            self.notify(f"Installing {' '.join(packages)} with {manager}…", timeout=4)
            self.install_packages(manager, packages)

        self.app.push_screen(InputPrompt("Install packages into the project (enter installs, esc cancels)",
                                         "package names, separated by spaces",
                                         choices=tuple(self.services.managers())), install)

    @work(thread=True, exclusive=True, exit_on_error=False, group="install")
    def install_packages(self, manager: str, packages: list[str]) -> None:
        if not self.gate.try_acquire("package install"):
            self.later(self.notify, f"The {self.gate.holder or 'scheduled run'} is running; install when it "
                       "has finished.", severity="warning")
            return
        try:
            result = self.services.install(self.session, manager, packages)
        finally:
            self.gate.release()
        ok = getattr(result, "ok", True)
        installed = ", ".join(f"{p.name} {p.version}" for p in getattr(result, "installed", ())) or "nothing new"
        message = f"Installed: {installed}" if ok else f"Install failed (exit {getattr(result, 'exit_code', '?')})"
        refused = getattr(result, "refused", ())
        if refused:
            message += f"\nRefused (not an install source): {', '.join(refused)}"
        self.later(self.notify, message, severity="information" if ok else "error", timeout=8)

    # --- audit -------------------------------------------------------------------------------------
    def action_verify_audit(self) -> None:
        self.notify("Verifying the audit log…", timeout=3)
        self.load_audit(verify=True)

    def action_export_report(self) -> None:
        default = str(self.project.root / "report.pdf")

        def export(path: str | None) -> None:
            if path:
                self.notify(f"Writing {path}…", timeout=4)
                self.write_report(path)

        self.app.push_screen(InputPrompt("Export the PDF report to (enter writes it, esc cancels)",
                                         "path/to/report.pdf", default), export)

    @work(thread=True, exclusive=True, exit_on_error=False, group="report")
    def write_report(self, path: str) -> None:
        """Through the `workbench report` command, the contract reviewers use too."""
        command = [sys.executable, "-m", "workbench", "report", "-p", str(self.project.root), "--out", path]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if done.returncode == 0:
            self.later(self.notify, f"Report written: {path}", timeout=8)
        else:
            reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
            self.later(self.notify, reason, title="Report failed", severity="error", timeout=12)

    # --- model and theme ---------------------------------------------------------------------------
    def action_switch_model(self) -> None:
        self.find_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="models")
    def find_models(self) -> None:
        """Probing servers and reading GGUF headers blocks: in a thread, the picker pushed when done."""
        found = self.services.model_choices(self.app.settings)
        self.later(self.app.push_screen, ModelChooser(found.choices, found.notes), self._model_picked)

    def _model_picked(self, model: Any) -> None:
        if model is not None:
            self.use_model(model)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models")
    def use_model(self, model: Any) -> None:
        self.services.use_model_choice(self.project, model)
        self.later(self.app.reload_settings)
        self.later(self.notify, f"Model: {model.name} (used from the next task on)", timeout=6)
        self.check_environment()

    def action_switch_theme(self) -> None:
        self.app.action_change_theme()

    # --- approvals from the palette ----------------------------------------------------------------
    def action_approve(self) -> None:
        self._decide(True)

    def action_deny(self) -> None:
        self._decide(False)

    def _decide(self, approved: bool) -> None:
        screen = next((s for s in reversed(self.app.screen_stack) if isinstance(s, ApprovalScreen)), None)
        if screen is None:
            self.notify("No action is waiting for approval.", timeout=3)
        else:
            screen.dismiss(approved)

    # --- panes -------------------------------------------------------------------------------------
    def action_focus_pane(self, pane: str) -> None:
        if pane == "input":
            if self.maximized is not None:
                self.minimize()
            self.query_one("#task").focus()
            return
        self.query_one(PANES[pane]).focus()

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        focused = self.focused
        node = focused
        while node is not None and "pane" not in node.classes:
            node = node.parent
        if node is not None:
            self.maximize(node, container=False)

    def action_resize(self, step: int) -> None:
        self._left_width = max(1, min(8, self._left_width + step))
        self.query_one("#left").styles.width = f"{self._left_width}fr"
        self.query_one("#right").styles.width = f"{10 - self._left_width}fr"

    # --- files -------------------------------------------------------------------------------------
    def action_open_in_editor(self) -> None:
        from workbench.tui.widgets.files_panel import FilesPanel

        panel = self.query_one(FilesPanel)
        path = panel.selected
        if path is None:
            self.notify("Select a file in the Files pane first (F4, then enter).", severity="warning")
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            self.notify("Set $EDITOR (for example: export EDITOR=nano) to open files.", severity="warning")
            return
        # The editor runs as the host user and follows whatever the name points at: only a regular file
        # inside the workspace (no symlink on the way, checked with O_NOFOLLOW) is handed to it.
        refused = panel.refuse_to_edit(path)
        if refused is not None:
            self.notify(refused, severity="warning", timeout=8)
            return
        with self.app.suspend():
            subprocess.run([*shlex.split(editor), str(path)], check=False)
        panel.load_preview(path)
