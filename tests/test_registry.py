"""The Registry seam (workbench.registry): built-ins and plug-ins registered the same way; plug-ins load
lazily; a broken or duplicate plug-in is one problem line and never an exception for the rest."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import pytest

from workbench.errors import UsageError
from workbench.registry import BUILT_IN, Registry


@dataclass(frozen=True)
class Part:
    name: str
    aliases: tuple[str, ...] = ()


# What the fake entry points below name (this module is importable as tests.test_registry).
ONE = Part("one-plugin", aliases=("op",))
SEVERAL = [Part("two"), Part("three")]
DUPLICATE = Part("alpha")
NAMELESS = object()


def make_parts():
    return [Part("from-callable")]


def _entry_point(name: str, value: str, group: str = "wb.test") -> metadata.EntryPoint:
    return metadata.EntryPoint(name, value, group)


@pytest.fixture
def plugins(monkeypatch):
    """Entry points of the group "wb.test" (the real entry_points for every other group)."""
    found: list[metadata.EntryPoint] = []
    calls = []
    real = metadata.entry_points

    def entry_points(**params):
        if params.get("group") == "wb.test":
            calls.append(params)
            return list(found)
        return real(**params)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    return found, calls


def _registry(group: str | None = "wb.test") -> Registry[Part]:
    registry: Registry[Part] = Registry("widget", group, aliases=lambda part: part.aliases)
    registry.register(Part("alpha", aliases=("a", "A")))
    registry.register(Part("beta"))
    return registry


def test_built_ins_come_first_and_aliases_resolve():
    registry = _registry(None)
    assert registry.names() == ["alpha", "beta"]
    assert registry.get("a").name == "alpha" and registry.get("A").name == "alpha"
    assert registry.resolve("beta") == "beta" and registry.resolve("gamma") is None
    assert "a" in registry and "gamma" not in registry and 3 not in registry
    assert registry.origin("alpha") == BUILT_IN and registry.origin("gamma") == ""
    assert [part.name for part in registry] == ["alpha", "beta"]
    assert registry.problems == []


def test_an_unknown_name_is_a_usage_error_naming_the_choices():
    with pytest.raises(UsageError, match="unknown widget 'gamma'; choose one of: alpha, beta"):
        _registry(None).get("gamma")


def test_a_built_in_taking_a_taken_name_is_a_bug():
    registry = _registry(None)
    with pytest.raises(ValueError, match="already has"):
        registry.register(Part("alpha"))


def test_a_config_entry_taking_a_taken_name_is_a_problem_line():
    registry = _registry(None)
    registry.register(Part("beta"), origin="config [widgets.beta]")
    assert registry.problems == ["config [widgets.beta]: registers the widget 'beta', which built-in already has; "
                                 "ignored"]
    assert registry.names() == ["alpha", "beta"]


def test_an_alias_never_shadows_a_name():
    registry = _registry(None)
    registry.register(Part("gamma", aliases=("beta", "a", "g")))
    assert registry.get("beta").name == "beta" and registry.get("a").name == "alpha"
    assert registry.get("g").name == "gamma"


def test_plugins_load_lazily_once_in_every_form(plugins):
    found, calls = plugins
    found += [_entry_point("one", "tests.test_registry:ONE"), _entry_point("several", "tests.test_registry:SEVERAL"),
              _entry_point("callable", "tests.test_registry:make_parts")]
    registry = _registry()
    assert calls == []  # nothing is listed until someone asks
    assert registry.names() == ["alpha", "beta", "from-callable", "one-plugin", "two", "three"]
    assert registry.get("op").name == "one-plugin"
    assert registry.origin("two").startswith("plug-in ") and "several = tests.test_registry:SEVERAL" in \
        registry.origin("two")
    registry.names()
    assert len(calls) == 1  # once


def test_broken_plugins_are_one_line_each_and_the_rest_works(plugins):
    found, _ = plugins
    found += [_entry_point("broken", "wb_no_such_module_anywhere:PART"),
              _entry_point("dup", "tests.test_registry:DUPLICATE"),
              _entry_point("nameless", "tests.test_registry:NAMELESS"),
              _entry_point("good", "tests.test_registry:ONE")]
    registry = _registry()
    assert registry.names() == ["alpha", "beta", "one-plugin"]
    problems = registry.problems
    assert len(problems) == 3, problems
    broken, dup, nameless = problems
    assert "broken = wb_no_such_module_anywhere:PART" in broken and "failed to load: ModuleNotFoundError" in broken
    assert "dup = tests.test_registry:DUPLICATE" in dup and "'alpha', which built-in already has" in dup
    assert "nameless" in nameless and "without a name" in nameless
    assert all("\n" not in line for line in problems)
    assert registry.get("alpha") == Part("alpha", aliases=("a", "A"))  # the built-in, not the duplicate


def test_entry_points_that_cannot_be_listed_are_a_problem(monkeypatch):
    def failing(**params):
        raise OSError("unreadable site-packages")

    monkeypatch.setattr(metadata, "entry_points", failing)
    registry = _registry()
    assert registry.names() == ["alpha", "beta"]
    assert registry.problems == ["the wb.test plug-ins could not be listed: OSError: unreadable site-packages"]


def test_a_copy_takes_additions_the_original_never_sees(plugins):
    found, _ = plugins
    found.append(_entry_point("one", "tests.test_registry:ONE"))
    registry = _registry()
    project = registry.copy()
    project.register(Part("node"), origin="config [widgets.node]")
    project.problem("config [widgets.bad]: command is missing; ignored")
    assert project.names() == ["alpha", "beta", "one-plugin", "node"]
    assert registry.names() == ["alpha", "beta", "one-plugin"]
    assert registry.problems == [] and project.problems == ["config [widgets.bad]: command is missing; ignored"]
    assert project.get("op").name == "one-plugin" and project.origin("node") == "config [widgets.node]"
