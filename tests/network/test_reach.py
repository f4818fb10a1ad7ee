"""What a project's code may reach, in the same words in `workbench doctor -p DIR` and the TUI's approval
dialog for code: nothing without rules, each rule with its methods and the secret's name (never a value),
an untrusted project's rules said to be ignored, a broken rule named."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.tui.conftest import SIZE, aio, settle
from tests.tui.fakes import FakeServices
from workbench.cli import cli as main
from workbench.config import Settings
from workbench.network.reach import NOTHING, reach
from workbench.network.rules import add_rule, database_rule, http_rule
from workbench.project import Project


def test_doctor_says_what_code_may_reach(tmp_path):
    project = Project.init(tmp_path / "p")
    runner = CliRunner()
    assert reach(project.root) == NOTHING
    add_rule(project.root, http_rule("https://api.example.com/v2/", credential="api-token",
                                     inject="Authorization: Bearer {secret}"))
    add_rule(project.root, database_rule("postgres://db.lan/sales", credential="warehouse", role="analyst"))
    words = reach(project.root)
    assert words == ("https://api.example.com/v2/ (GET,HEAD, Authorization from secret api-token); "
                     "postgres://db.lan:5432/sales (credential warehouse, as analyst); nothing else")
    out = runner.invoke(main, ["doctor", "-p", str(project.root)]).output
    assert f"[ok  ] network: code may reach {words}" in out


def test_a_broken_rule_is_a_warning_naming_it(tmp_path):
    project = Project.init(tmp_path / "p")
    config = project.root / ".workbench" / "config.toml"
    config.write_text('[[network.http]]\nurl = "ftp://files.lan/"\n')
    out = CliRunner().invoke(main, ["doctor", "-p", str(project.root)]).output
    assert "[warn] network: the network policy cannot be used: network.http rule 1 (ftp://files.lan/)" in out


@aio
async def test_the_approval_dialog_for_code_says_the_same(tmp_path):
    from workbench.tui.app import make_app
    from workbench.tui.screens.approval import ApprovalScreen

    demo = Project.init(tmp_path / "demo")
    add_rule(demo.root, http_rule("http://127.0.0.1:8099/ok/", methods="GET,POST"))
    code = json.dumps({"thought": "call the API", "action": "run_code", "language": "python", "code": "print(1)"})
    services = FakeServices(replies=[code])
    app = make_app(demo, services=services, settings=Settings(agent={"approval": "ask"}), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.press(*"call it", "enter")
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#approval-reach")))
        shown = str(app.screen.query_one("#approval-reach").render())
        await pilot.press("n")
    assert shown == f"This code may reach {reach(demo.root)}"
    assert "http://127.0.0.1:8099/ok/ (GET,POST)" in shown
