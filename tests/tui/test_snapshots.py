"""Snapshots of the main screen in each built-in theme and of the error screen (Textual is pinned exactly).

Deterministic: the project is called `demo` and its workspace holds fixed files, the services are fakes
with a fixed session id, doctor report and audit view, and the cursor does not blink.
"""

from __future__ import annotations

import pytest

from workbench.config import Settings
from workbench.tui import themes
from workbench.tui.widgets.task_input import TaskInput

from .conftest import SIZE
from .fakes import FIXED_SESSION, NO_ENGINE_REPORT, FakeServices


def _workspace(project) -> None:
    (project.workspace / "data").mkdir()
    (project.workspace / "data" / "sales.csv").write_text("region,total\nnorth,10\nsouth,12\n")
    (project.workspace / "notes.md").write_text("# Notes\n")


async def _ready(pilot) -> None:
    app = pilot.app
    for _ in range(200):
        screen = app.screen_stack[0]
        if getattr(screen, "session", None) is not None and "verified" in str(
                screen.query_one("#audit-status").render_lines(screen.query_one("#audit-status").region)[0].text):
            break
        await pilot.pause(0.02)
    for box in app.query(TaskInput):
        box.cursor_blink = False
    tree = app.screen_stack[0].query_one("#files-tree")
    for _ in range(100):
        if len(tree.root.children) == 2:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.2)


@pytest.mark.parametrize("theme", themes.BUILTIN_NAMES)
def test_main_screen(theme, demo, snap_compare):
    _workspace(demo)
    from workbench.tui.app import make_app

    app = make_app(demo, services=FakeServices(), settings=Settings(ui={"theme": theme}), persist_theme=False)
    assert app.theme == theme
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)
    assert FakeServices().open_session(demo, Settings()).session_id == FIXED_SESSION


def test_error_screen(demo, snap_compare):
    _workspace(demo)
    from workbench.tui.app import make_app

    app = make_app(demo, services=FakeServices(report=NO_ENGINE_REPORT), settings=Settings(), persist_theme=False)

    async def ready(pilot) -> None:
        await _ready(pilot)
        for _ in range(100):
            if type(pilot.app.screen).__name__ == "ErrorScreen":
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
