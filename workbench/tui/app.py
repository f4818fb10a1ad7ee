"""The Textual workstation: `make_app(project)` is the one factory the CLI and the tests use.

Building the app has no side effects beyond reading theme files and settings: no engine is contacted,
nothing is written. The main screen starts its workers (doctor, session, audit) once mounted.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.inert import one_line, visible
from workbench.project import Project
from workbench.tui import themes, user_config
from workbench.tui.screens.error import Problem
from workbench.tui.screens.main import MainScreen
from workbench.tui.services import Services

SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005

# (title, help, action on the main screen) for the command palette: every action the app has.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("New session", "Start a fresh session (the workspace and installed packages carry over)", "new_session"),
    ("Stop", "Stop the agent and the running code now", "stop"),
    ("Approve", "Approve the action waiting for approval", "approve"),
    ("Deny", "Deny the action waiting for approval", "deny"),
    ("Run code directly", "Type code in any language and run it in the sandbox (recorded)", "run_code"),
    ("Install package", "Install pip, R or apt packages into the project", "install_package"),
    ("Verify audit", "Recompute the audit log's hash chain and check its signatures", "verify_audit"),
    ("Export report", "Write the PDF compliance report", "export_report"),
    ("Choose model", "Pick a model server or GGUF file found on this machine for this project", "switch_model"),
    ("Switch theme", "Pick a theme (the choice is saved)", "switch_theme"),
    ("Open file in $EDITOR", "Open the file selected in the Files pane", "open_in_editor"),
    ("Add note", "Write a note into the project's memory (the agent reads relevant notes)", "add_note"),
    ("Search notes", "Search the project's memory and show the best notes", "search_notes"),
    ("Edit note in $EDITOR", "Pick a note and open its Markdown file in $EDITOR", "edit_note"),
    ("Delete note", "Pick a note and delete it (its file and its index entry)", "delete_note"),
    ("Show schedules", "The heartbeat schedules: next run, last run and its outcome (F7)", "show_schedules"),
    ("Pause or resume schedule", "Pick a schedule and pause it, or resume it", "pause_schedule"),
    ("Run schedule now", "Pick a schedule and run it now, unattended, in its own session", "run_schedule"),
    ("Check environment", "Run doctor again: engine, image, model, keyring", "check_environment"),
    ("Trust this project", "Let a received project's own settings and schedules apply (workbench trust)",
     "trust_project"),
    ("Zoom pane", "Maximize the focused pane (again to restore)", "zoom"),
    ("Focus Steps", "Move to the Steps pane (F2)", "focus_pane('steps')"),
    ("Focus Output", "Move to the Output pane (F3)", "focus_pane('output')"),
    ("Focus Files", "Move to the Files pane (F4)", "focus_pane('files')"),
    ("Focus Audit", "Move to the Audit pane (F5)", "focus_pane('audit')"),
)


class WorkbenchApp(App):
    TITLE = "Workbench"
    CSS_PATH = "workbench.tcss"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, project: Project, *, services: Services | None = None, settings: Settings | None = None,
                 user_themes: Any = None, persist_theme: bool = True) -> None:
        super().__init__()
        self.project = project
        self.services = services or Services()
        self.settings_error: ConfigError | None = None
        self.settings = settings if settings is not None else self._load_settings()
        self.persist_theme = persist_theme
        self.sub_title = one_line(project.name)
        self.theme_errors = self._register_themes(user_themes)
        wanted = self.settings.ui.theme
        self._theme_missing = wanted not in self.available_themes
        self.theme = themes.DEFAULT_THEME if self._theme_missing else wanted

    def _load_settings(self) -> Settings:
        try:
            return self.project.settings()
        except ConfigError as exc:
            self.settings_error = exc
            return Settings.model_construct()

    def reload_settings(self) -> None:
        self.settings = self._load_settings()

    def _register_themes(self, user_dir: Any) -> tuple[str, ...]:
        found = themes.load_all(user_dir)
        # Only Workbench's themes and the user's are offered (a search for "light" must find
        # workbench-light, not one of Textual's demo themes); textual-ansi stays for ANSI terminals.
        for name in list(self.available_themes):
            if name != "textual-ansi":
                self.unregister_theme(name)
        if themes.DEFAULT_THEME not in found.themes:
            self.register_theme(themes.fallback_theme())
        for theme in found.themes.values():
            self.register_theme(theme)
        return found.errors

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Every toast, from any widget or thread, as plain text: messages carry file names, package names,
        errors and the model's words, so markup is never parsed (`[/x]` would raise, `[@click=...]` would
        run an action) and terminal escapes are shown, not sent. Workbench's own toasts use no markup."""
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        super().notify(visible(message), title=one_line(title), severity=severity, markup=False, **kwargs)

    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_mount(self) -> None:
        # Responsiveness under load (see bench/tui.py): worker threads (sandbox streams, the model,
        # sqlite) hand the GIL back sooner, and the objects made at startup are moved out of the
        # collector's way so that a full collection never stalls a keypress for ~150 ms.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.call_after_refresh(gc.freeze)
        if self.theme_errors:
            self.notify(themes.invalid_notice(self.theme_errors), title="Invalid theme files",
                        severity="warning", timeout=15)
        if self._theme_missing:
            self.notify(f"Theme {self.settings.ui.theme!r} not found; using {themes.DEFAULT_THEME}.",
                        severity="warning", timeout=10)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.settings_error is not None:
            error = self.settings_error
            self.main.show_problems([Problem("settings", error.message, error.hint or "fix or remove the file")],
                                    "Workbench's settings could not be read (defaults are in use)")

    def on_unmount(self) -> None:
        sys.setswitchinterval(getattr(self, "_switch_interval", 0.005))
        gc.unfreeze()

    @property
    def main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    def _theme_changed(self, theme: Any) -> None:
        if self.persist_theme:
            self.save_theme(theme.name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="theme")
    def save_theme(self, name: str) -> None:
        try:
            user_config.save_theme(name)
        except (OSError, ValueError) as exc:
            self.main.later(self.notify, f"Could not save the theme choice: {exc}", severity="warning")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for title, help_text, action in COMMANDS:
            yield SystemCommand(title, help_text, lambda action=action: self._run_main_action(action))
        # Textual's own "Theme" entry does what "Switch theme" does; one entry is clearer.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Theme")

    def _run_main_action(self, action: str) -> None:
        self.call_later(self.run_action, action, self.main)

    async def action_quit(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                if screen.heartbeat is not None:
                    screen.heartbeat.stop.set()  # a scheduled run waiting for the user's turn gives up
                await screen.close_session()
                await screen.stop_heartbeat()
        self.exit()


def make_app(project: Project, *, services: Services | None = None, settings: Settings | None = None,
             user_themes: Any = None, persist_theme: bool = True) -> WorkbenchApp:
    """The one factory the CLI and the tests use to build the app."""
    return WorkbenchApp(project, services=services, settings=settings, user_themes=user_themes,
                        persist_theme=persist_theme)
