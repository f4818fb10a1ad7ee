"""Structure that shows it: the rules a reader of workbench/ can rely on, checked on every run.

1. The import contracts in pyproject.toml hold (`[tool.importlinter]`: the layers, the core without Textual,
   the TUI's screens and widgets through `workbench.tui.services`). By hand: `.venv/bin/lint-imports`.
2. No import cycle between Workbench's modules, lazy and TYPE_CHECKING imports included (grimp's graph,
   the one import-linter builds).
3. No private name (`_name`) imported or used across modules: `from x import _name`, `x._name`.
4. No module longer than LONG_MODULE lines unless its docstring has a line starting "Long because" that
   says why (the convention the README's layout section documents).

The KNOWN lists are temporary: what others are fixing right now, each with who. A KNOWN entry that is no
longer needed fails `test_known_exceptions_are_still_needed`, so the lists only shrink.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections import deque
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application import output
from importlinter.application.use_cases import create_report, read_user_options
from importlinter.application.user_options import UserOptions
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"
PYPROJECT = ROOT / "pyproject.toml"
configuration.configure()  # import-linter's config readers, as its command line sets them up
registry.register(LayersContract, "layers")  # the contract types pyproject.toml uses
registry.register(ForbiddenContract, "forbidden")

LONG_MODULE = 400  # lines; over it, say why at the top ("Long because ...") or split the module
REASON = re.compile(r"^\s*Long because \S", re.MULTILINE)

# Import edges being removed now (importer -> imported), each with who. Cut before looking for cycles:
KNOWN_CYCLES: dict[tuple[str, str], str] = {
}
# Ignored by the import contracts:
KNOWN_CONTRACT_BREACHES: dict[tuple[str, str], str] = {
}
# Private names used across modules: (the module that uses it, "imported module.name").
KNOWN_PRIVATE: dict[tuple[str, str], str] = {}
# Long modules without their reason yet: module -> who is splitting it or stating why.
KNOWN_LONG: dict[str, str] = {
}


# --- the import graph -------------------------------------------------------------------------------
def build_graph() -> grimp.ImportGraph:
    return grimp.build_graph("workbench", cache_dir=None)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return build_graph()


def _strongly_connected(graph: grimp.ImportGraph, cut: set[tuple[str, str]]) -> list[list[str]]:
    """Groups of modules that import each other (Tarjan's algorithm, iterative), leaving out `cut`."""
    edges = {m: sorted(t for t in graph.find_modules_directly_imported_by(m) if (m, t) not in cut)
             for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def _one_cycle(graph: grimp.ImportGraph, group: list[str], cut: set[tuple[str, str]]) -> str:
    """The shortest cycle through the group's first module, with each import's line: what to read to
    break it."""
    members = set(group)
    start = group[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph.find_modules_directly_imported_by(node)):
            if child not in members or (node, child) in cut:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                path.reverse()
                path.append(start)
                return " -> ".join(f"{a} (l.{_lines(graph, a, b)})" for a, b in zip(path, path[1:], strict=False)) \
                    + f" -> {start}"
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    return " <-> ".join(group)


def _lines(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return ",".join(str(d["line_number"]) for d in details) or "?"


def cycles(graph: grimp.ImportGraph) -> list[str]:
    cut = set(KNOWN_CYCLES)
    return [_one_cycle(graph, group, cut) for group in _strongly_connected(graph, cut)]


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, ("modules that import each other (lazy and TYPE_CHECKING imports count): move the "
                       "shared part down into a module both import, or pass it in:\n  " + "\n  ".join(found))


def test_a_cycle_is_found_and_named():
    graph = build_graph()
    graph.add_import(importer="workbench.errors", imported="workbench.audit.log", line_number=1,
                     line_contents="from workbench.audit.log import AuditLog")
    found = [c for c in cycles(graph) if "workbench.errors (l.1) -> workbench.audit.log" in c]
    assert len(found) == 1
    first, last = found[0].split(" ", 1)[0], found[0].rsplit(" ", 1)[-1]
    assert first == last  # a closed loop, each step with its line


# --- the import contracts ---------------------------------------------------------------------------
def _options(extra_ignored: set[tuple[str, str]]) -> UserOptions:
    options = read_user_options(str(PYPROJECT))
    contracts = []
    for contract in options.contracts_options:
        contract = dict(contract)
        ignored = list(contract.get("ignore_imports", [])) + [f"{a} -> {b}" for a, b in sorted(extra_ignored)]
        if ignored:
            contract["ignore_imports"] = ignored
            contract["unmatched_ignore_imports_alerting"] = "none"
        contracts.append(contract)
    return UserOptions(options.session_options, contracts)


def broken_contracts(extra_ignored: set[tuple[str, str]]) -> list[str]:
    report = create_report(_options(extra_ignored), cache_dir=None)
    assert not report.could_not_run, report.invalid_contract_options
    broken = []
    for contract, check in report.get_contracts_and_checks():
        if not check.kept:
            with output.console.capture() as captured:
                contract.render_broken_contract(check)
            broken.append(f"{contract.name}:\n{captured.get().strip()}")
    return broken


def test_import_contracts_hold():
    broken = broken_contracts(set(KNOWN_CONTRACT_BREACHES) | set(KNOWN_CYCLES))
    assert not broken, "\n\n".join(broken) + "\n\n(the contracts live in pyproject.toml, [tool.importlinter])"


def test_a_broken_contract_fails():
    """The contracts do catch something: the core importing the TUI breaks the layers contract."""
    options = read_user_options(str(PYPROJECT))
    layers = next(c for c in options.contracts_options if c["id"] == "layers")
    settings = {k: v for k, v in layers.items() if k not in ("name", "type", "id")}
    settings["ignore_imports"] = [f"{a} -> {b}" for a, b in (*KNOWN_CONTRACT_BREACHES, *KNOWN_CYCLES)]
    settings["unmatched_ignore_imports_alerting"] = "none"
    contract = LayersContract(name="layers", session_options=options.session_options, contract_options=settings)
    breached = build_graph()
    breached.add_import(importer="workbench.sandbox.engine", imported="workbench.tui.app", line_number=3,
                        line_contents="from workbench.tui.app import WorkbenchApp")
    assert not contract.check(breached, verbose=False).kept


def test_textual_contract_covers_the_whole_core(graph):
    """Every top-level module but the two faces (and __main__) is under "core never imports Textual"."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    sources = set(next(c for c in config if c["id"] == "core-without-textual")["source_modules"])
    top = graph.find_children("workbench")
    assert sources == top - {"workbench.__main__", "workbench.cli", "workbench.tui"}, (
        "add new top-level modules to the core-without-textual contract in pyproject.toml")


# --- private names ----------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path) -> list[tuple[str, str, int]]:
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    return private_uses_in(path.read_text(encoding="utf-8"), me, package)


def private_uses_in(source: str, me: str, package: str) -> list[tuple[str, str, int]]:
    """(this module, "other.module._name", line) for each private name of another Workbench module used in
    `source`, the text of module `me` in `package`."""
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # a local name -> the Workbench module or object it stands for
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, source] if source else base)
            if source != "workbench" and not source.startswith("workbench."):
                continue
            for alias in node.names:
                if _private(alias.name) and source != me:
                    found.append((me, f"{source}.{alias.name}", node.lineno))
                bound[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "workbench" or alias.name.startswith("workbench."):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain, value = [], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            owner = ".".join([bound[value.id], *reversed(chain)])
            if owner != me and not owner.startswith(me + "."):
                found.append((me, f"{owner}.{node.attr}", node.lineno))
    return found


def _private_names_defined(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes, variables, attributes it assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {name for name in names if _private(name)}


def private_attributes_of_others(sources: dict[str, str]) -> list[tuple[str, str, int]]:
    """`thing._name` where the module never defines `_name` but another Workbench module does: reaching
    into another module's object (`sandbox._kernels` outside the sandbox). `self`/`cls` are the module's own."""
    trees = {me: ast.parse(text) for me, text in sources.items()}
    defined = {me: _private_names_defined(tree) for me, tree in trees.items()}
    owners: dict[str, list[str]] = {}
    for me, names in defined.items():
        for name in names:
            owners.setdefault(name, []).append(me)
    found = []
    for me, tree in trees.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in defined[me]
                    and node.attr in owners
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append((me, f"{' or '.join(sorted(owners[node.attr]))}.{node.attr} ({ast.unparse(node)})",
                              node.lineno))
    return found


def all_private_uses() -> list[tuple[str, str, int]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    sources = {_module_name(path): path.read_text(encoding="utf-8") for path in paths}
    return ([use for path in paths for use in private_uses(path)]
            + private_attributes_of_others(sources))


def test_no_private_names_across_modules():
    offenders = [f"{me} l.{line}: {name}" for me, name, line in all_private_uses()
                 if (me, name) not in KNOWN_PRIVATE]
    assert not offenders, ("private names used outside their module: make them public (a real name, a "
                           "docstring) or move the code that needs them:\n  " + "\n  ".join(offenders))


def test_private_name_check_sees_both_forms():
    source = ("from workbench.doctor import _reachable\nfrom workbench.sandbox import policy\n"
              "from . import image\nimport workbench.audit.log as log\n"
              "x = policy._ulimit(1) + image._tag + log._private\ny = policy.public + _own + self._mine\n")
    found = {name for _me, name, _line in private_uses_in(source, "workbench.sandbox.fake", "workbench.sandbox")}
    assert found == {"workbench.doctor._reachable", "workbench.sandbox.policy._ulimit",
                     "workbench.sandbox.image._tag", "workbench.audit.log._private"}


def test_private_attribute_of_another_modules_object_is_seen():
    sources = {"workbench.sandbox.sandbox": "class Sandbox:\n    def __init__(self):\n        self._kernels = None\n",
               "workbench.tui.app": "def f(sandbox):\n    return sandbox._kernels, sandbox.public, os._exit\n",
               "workbench.sandbox.other": "class K:\n    def g(self):\n        return self._kernels\n"}
    found = private_attributes_of_others(sources)
    assert [(me, line) for me, _name, line in found] == [("workbench.tui.app", 2)]
    assert "workbench.sandbox.sandbox._kernels" in found[0][1]


# --- long modules -----------------------------------------------------------------------------------
def long_modules() -> list[tuple[str, int]]:
    """(module, lines) for each module over LONG_MODULE lines whose docstring does not say why."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= LONG_MODULE:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not REASON.search(doc):
            found.append((_module_name(path), lines))
    return found


def test_long_modules_say_why():
    offenders = [f"{name} ({lines} lines)" for name, lines in long_modules() if name not in KNOWN_LONG]
    assert not offenders, (f"modules over {LONG_MODULE} lines: split them, or add a line starting "
                           "'Long because ...' to the module docstring saying why one module is right:\n  "
                           + "\n  ".join(offenders))


def test_known_exceptions_are_still_needed(graph):
    def exists(a: str, b: str) -> bool:
        return a in graph.modules and b in graph.modules and graph.direct_import_exists(importer=a, imported=b)

    privates = {(me, name) for me, name, _line in all_private_uses()}
    long_now = {name for name, _lines in long_modules()}
    stale = ([f"cycle {a} -> {b}" for a, b in KNOWN_CYCLES  # gone, or no longer part of a cycle
              if not (exists(a, b) and graph.chain_exists(importer=b, imported=a))]
             + [f"import {a} -> {b}" for a, b in KNOWN_CONTRACT_BREACHES if not exists(a, b)]
             + [f"private {me}: {name}" for me, name in KNOWN_PRIVATE if (me, name) not in privates]
             + [f"long {name}" for name in KNOWN_LONG if name not in long_now])
    assert not stale, "fixed, so take them off the KNOWN lists in tests/test_structure.py:\n  " + "\n  ".join(stale)
