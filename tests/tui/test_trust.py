"""A received project in the workstation: restricted in the status bar, a dialog listing what is ignored,
and `t` trusts it (the same record as `workbench trust`)."""

from __future__ import annotations

import shutil

from workbench import trust
from workbench.config import Settings
from workbench.project import Project

from .conftest import SIZE, aio, settle
from .fakes import FakeServices


def received_project(tmp_path) -> Project:
    made = Project.init(tmp_path / "theirs")
    (made.state_dir / "config.toml").write_text('[sandbox]\nmemory = "48g"\n[install]\nallow_hosts = "[@click=app.quit]"\n')
    shutil.copytree(made.root, tmp_path / "demo")
    return Project.open(tmp_path / "demo")


@aio
async def test_a_received_project_opens_restricted_and_t_trusts_it(tmp_path):
    from workbench.tui.app import make_app
    from workbench.tui.screens.trust import TrustScreen
    from workbench.tui.widgets.status_bar import StatusBar

    project = received_project(tmp_path)
    app = make_app(project, services=FakeServices(), settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TrustScreen))
        assert isinstance(app.screen, TrustScreen)
        await settle(pilot, lambda: bool(app.screen.query("#trust-text")))
        shown = app.screen.query_one("#trust-text").content
        text = shown.plain if hasattr(shown, "plain") else str(shown)
        assert "sandbox.memory = 48g" in text and "install.allow_hosts" in text
        assert app.main.query_one(StatusBar).trust == "restricted"
        assert "project restricted" in app.main.query_one(StatusBar).render().plain
        await pilot.press("t")
        await settle(pilot, lambda: trust.state(project).trusted and app.main.query_one(StatusBar).trust == "")
        assert trust.state(project).trusted
        assert app.main.query_one(StatusBar).trust == ""
        assert app.settings.sandbox.memory == "48g"
        assert app.is_running  # the [@click=app.quit] value in the dialog did nothing


@aio
async def test_staying_restricted_keeps_it_restricted(tmp_path):
    from workbench.tui.app import make_app
    from workbench.tui.screens.trust import TrustScreen

    project = received_project(tmp_path)
    app = make_app(project, services=FakeServices(), settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TrustScreen))
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, TrustScreen)
        assert not trust.state(project).trusted


@aio
async def test_a_project_you_made_shows_no_trust_dialog(make):
    from workbench.tui.screens.trust import TrustScreen

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        assert not isinstance(app.screen, TrustScreen)
