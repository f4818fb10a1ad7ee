"""The TUI's pickers offer what the registries hold: the run-code dialog's languages (a project's
[languages] too) and the install dialog's package managers; the approval dialog asks the services seam."""

from __future__ import annotations

import ast
from pathlib import Path

from textual.widgets import Select

from workbench.config import Settings

from .conftest import SIZE, aio, settle

NODE = {"node": {"command": ["node", "{file}"], "extension": ".js"}}


def _options(select: Select) -> list[str]:  # Select has no public accessor for its options
    return [str(value) for _, value in select._options if value is not Select.BLANK]


@aio
async def test_the_run_code_picker_offers_the_registrys_languages_and_the_projects(make):
    app = make(settings=Settings(languages=NODE))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "ExecPrompt")
        select = app.screen.query_one("#exec-language", Select)
        assert _options(select) == ["python", "r", "shell", "sql", "node"]
        select.value = "node"
        await pilot.pause(0.1)
        assert app.screen.query_one("TextArea").language == "javascript"  # highlighted from its extension
        select.value = "r"
        await pilot.pause(0.1)
        assert app.screen.query_one("TextArea").language is None  # the editor has no R highlighting


@aio
async def test_the_install_picker_offers_the_registrys_managers(make):
    from workbench.sandbox.managers import MANAGERS

    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        app.screen.action_install_package()
        await settle(pilot, lambda: app.screen.__class__.__name__ == "InputPrompt" and bool(app.screen.query(Select)))
        await pilot.pause(0.2)
        assert _options(app.screen.query_one(Select)) == MANAGERS.names()
        await pilot.press("escape")
        assert "conda" in MANAGERS.names()


def test_the_tui_screens_reach_the_core_only_through_services():
    screens = Path(__file__).parents[2] / "workbench" / "tui" / "screens"
    for name in ("approval.py", "prompts.py"):
        tree = ast.parse((screens / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        core = {module for module in imported if module.startswith("workbench.")
                and not module.startswith(("workbench.tui", "workbench.inert"))}
        assert core <= {"workbench.agent.actions"} if name == "approval.py" else core == set(), (name, core)


@aio
async def test_the_approval_dialog_highlights_a_configured_language_from_the_registry(make):
    from workbench.tui.screens.approval import ApprovalScreen

    app = make(settings=Settings(languages=NODE))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        screen = ApprovalScreen({"thought": "t", "action": "run_code", "language": "node", "code": "console.log(1)"})
        app.push_screen(screen)
        await settle(pilot, lambda: app.screen is screen and bool(screen.query("#approval-code-text")))
        assert screen.lexer_for("node") == "javascript" and screen.lexer_for("shell") == "bash"
        assert screen.lexer_for("cobol") == "text"
        await pilot.press("n")
