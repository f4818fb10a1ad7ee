"""Package managers are one registry: a plug-in's manager (an entry point in `workbench.managers`) is listed,
checked and picked by install() exactly like the built-ins; a broken or clashing plug-in is one line."""

from __future__ import annotations

from importlib import metadata
from types import SimpleNamespace

import pytest

from workbench.config import Settings
from workbench.sandbox.managers.base import Manager, ManagerRun


class EchoManager(Manager):
    """A plug-in's manager: it installs nothing, and says it installed each package at 1.0."""

    name = "echo"
    description = "a test plug-in's packages"
    target = "workspace"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def install(self, sandbox, packages, progress):
        self.calls.append(packages)
        if progress:
            progress("echo: installing " + " ".join(packages))
        return ManagerRun(0, "installed\n", {p: "1.0" for p in packages},
                          details={p: {"channel": "test"} for p in packages})


ECHO = EchoManager()


class ClashingPip(EchoManager):
    name = "pip"


def echo_and_clashing_pip():
    return [ECHO, ClashingPip()]


def _entry_points(monkeypatch, *values: str) -> None:
    """Entry points in the managers' group, as an installed distribution's metadata would declare them."""
    from workbench.sandbox.managers import GROUP

    found = [metadata.EntryPoint(name=f"plugin{i}", value=value, group=GROUP) for i, value in enumerate(values)]
    real = metadata.entry_points

    def entry_points(**select):
        return found if select.get("group") == GROUP else real(**select)

    monkeypatch.setattr("workbench.registry.metadata.entry_points", entry_points)


@pytest.fixture
def registry(monkeypatch):
    """A fresh MANAGERS (built-ins registered, plug-ins not loaded yet) that install() and doctor use."""
    from workbench.sandbox import install, managers

    fresh = managers.new_registry()
    monkeypatch.setattr(managers, "MANAGERS", fresh)
    monkeypatch.setattr(install, "MANAGERS", fresh)
    ECHO.calls.clear()
    return fresh


class FakeSandbox:
    """What install() uses of a sandbox: its settings, its project, and where events go."""

    def __init__(self, tmp_path):
        self.settings = Settings()
        self.project = SimpleNamespace(workspace=tmp_path)
        self.events: list[tuple[str, dict]] = []

    def _emit(self, kind, payload):
        self.events.append((kind, payload))


def test_a_plugin_manager_is_listed_and_picked_by_install(registry, monkeypatch, tmp_path):
    from workbench.sandbox.install import install
    from workbench.sandbox.managers import check
    from workbench.sandbox.types import InstalledPackage

    _entry_points(monkeypatch, "tests.sandbox.test_managers:ECHO")
    assert registry.names()[:3] == ["pip", "r", "apt"] and registry.names()[-1] == "echo"
    assert registry.get("echo") is ECHO and "tests.sandbox.test_managers:ECHO" in registry.origin("echo")
    assert registry.origin("pip") == "built-in" and registry.problems == []
    box, lines = FakeSandbox(tmp_path), []
    result = install(box, "echo", ["wbdemo-a", "wbdemo-b==2"], progress=lines.append)
    assert ECHO.calls == [["wbdemo-a", "wbdemo-b==2"]] and lines == ["echo: installing wbdemo-a wbdemo-b==2"]
    assert result.ok and result.manager == "echo"
    assert result.installed == (InstalledPackage("wbdemo-a", "1.0", "echo"), InstalledPackage("wbdemo-b==2", "1.0",
                                                                                             "echo"))
    kinds = [kind for kind, _ in box.events]
    assert kinds == ["package.install_started", "package.installed", "package.installed"]
    assert box.events[1][1].encode() == {"name": "wbdemo-a", "version": "1.0", "manager": "echo", "channel": "test"}
    # doctor's install findings name it too (it has no sources: it may reach nothing)
    egress = next(f for f in check(Settings()) if f.name == "install egress")
    assert "echo nothing (local folders only)" in egress.detail


def test_a_plugin_taking_a_built_in_name_is_one_line_and_the_rest_keeps_working(registry, monkeypatch, tmp_path):
    from workbench.sandbox.install import install
    from workbench.sandbox.managers import PipManager, check

    _entry_points(monkeypatch, "tests.sandbox.test_managers:echo_and_clashing_pip")
    assert registry.names()[-1] == "echo" and registry.names().count("pip") == 1
    assert isinstance(registry.get("pip"), PipManager)  # the built-in keeps its name
    (problem,) = registry.problems
    assert "echo_and_clashing_pip" in problem and "'pip'" in problem and "built-in already has" in problem
    assert "\n" not in problem
    findings = check(Settings())
    warned = [f for f in findings if f.name == "package manager plug-in"]
    assert [f.detail for f in warned] == [problem] and warned[0].status == "warn"
    assert any(f.name == "install egress" and f.status == "ok" for f in findings)
    assert install(FakeSandbox(tmp_path), "echo", ["six"]).ok  # the plug-in's other manager still works


def test_a_plugin_that_fails_to_import_is_one_line(registry, monkeypatch):
    _entry_points(monkeypatch, "tests.sandbox.no_such_plugin_module:MANAGER")
    assert registry.names()[:3] == ["pip", "r", "apt"]
    (problem,) = registry.problems
    assert "tests.sandbox.no_such_plugin_module:MANAGER" in problem and "failed to load" in problem


def test_an_unknown_manager_is_a_usage_error_naming_the_choices(registry, tmp_path):
    from workbench.errors import UsageError
    from workbench.sandbox.install import install

    box = FakeSandbox(tmp_path)
    with pytest.raises(UsageError) as caught:
        install(box, "npm", ["left-pad"])
    assert "unknown package manager 'npm'; choose one of: pip, r, apt" in caught.value.one_line()
    assert box.events == []  # refused before anything started


def test_every_built_in_says_what_it_is(registry):
    for manager in registry:
        assert manager.description and "\n" not in manager.description, manager.name
        assert manager.target in ("workspace", "image")
        assert all(hasattr(Settings().install, setting) for setting in manager.sources), manager.name
    assert registry.get("apt").target == "image" and registry.get("pip").sources == ("pip_find_links",
                                                                                      "pip_index_url")
