"""The agent's tools: one registry of what the agent can do, each with the fields its JSON carries.

The grammar that forces the model's reply, the validating parser and the system prompt's list of actions
are all derived from this registry (`workbench.agent.actions`, `workbench.agent.prompts`), so a tool is
declared once. The built-ins are registered below through the same `register` a plug-in's tools go
through; a third-party package adds tools with an entry point in the group `workbench.tools` naming a
`Tool`, a list of them, or a callable returning either.

A built-in tool is carried out by the agent loop itself (it needs the loop's sandbox, memory and file
confinement). A plug-in tool brings its own `run(context, call) -> (observation, ok)`; the loop gives it a
`ToolContext` (the session's sandbox, the workspace folder, and `emit` for events) and treats whatever it
raises as a failed action, never as a crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.findings import Finding
from workbench.registry import BUILT_IN, Registry

# What a field holds: a non-empty string, a string that may be empty, true/false, an integer, one of the
# registered languages, one of the package managers, or a list of package names.
Kind = Literal["string", "text", "boolean", "integer", "language", "manager", "packages"]
KINDS: tuple[str, ...] = ("string", "text", "boolean", "integer", "language", "manager", "packages")
# A tool's and a field's name go into the grammar as literals: plain names only.
TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind = "string"
    example: Any = "..."  # shown to the model in the system prompt


@dataclass(frozen=True)
class ToolCall:
    """An action of a plug-in tool: its name and the validated values of its fields; `approval` and
    `effect` are its tool's (see `Tool`), carried so the loop need not look the tool up again."""

    thought: str
    name: str
    arguments: tuple[tuple[str, Any], ...] = ()
    approval: str = field(default="executions", compare=False)
    effect: bool = field(default=True, compare=False)

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.arguments).get(key, default)


@dataclass(frozen=True)
class ToolContext:
    """What a plug-in tool's `run` may use."""

    sandbox: Callable[[], Any]  # the session's SandboxAPI (started on first use)
    workspace: Path | None
    emit: Callable[[str, dict[str, Any]], Any]
    step: int


@dataclass(frozen=True)
class Tool:
    name: str
    params: tuple[Param, ...] = ()
    description: str = ""  # one line after its example in the system prompt ("" for none)
    # Builds the action from (thought, **values); None: a `ToolCall`.
    make: Callable[..., Any] | None = None
    # A plug-in's own implementation; built-ins are carried out by the loop.
    run: Callable[[ToolContext, ToolCall], tuple[str, bool]] | None = None
    # Which approval setting asks before it runs: [agent] approval ("executions"), approve_installs
    # ("installs"), or none.
    approval: Literal["executions", "installs", "none"] = "executions"
    # Whether its result is what a `finish` is checked against (an execution, an install, a write), or
    # only something the agent looked at (a read, a search).
    effect: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r}: 1-40 lowercase letters, digits or _, starting with a letter")
        for param in self.params:
            if not TOOL_NAME.match(param.name) or param.name in ("thought", "action"):
                raise ValueError(f"tool {self.name}: bad field name {param.name!r}")
            if param.kind not in KINDS:
                raise ValueError(f"tool {self.name}: field {param.name} has unknown kind {param.kind!r} "
                                 f"(one of {', '.join(KINDS)})")

    def example(self) -> dict[str, Any]:
        return {param.name: param.example for param in self.params}


class ToolRegistry(Registry[Tool]):
    """A Registry that takes only `Tool`s: a plug-in handing in something else is a problem line."""

    def register(self, item: Tool, *, name: str | None = None, origin: str = BUILT_IN) -> Tool:
        if origin != BUILT_IN and not isinstance(item, Tool):
            self.problem(f"{origin}: not a workbench.agent.tools.Tool ({type(item).__name__}); ignored")
            return item
        if origin != BUILT_IN and item.run is None:
            self.problem(f"{origin}: the tool {item.name!r} has no run(context, call); ignored")
            return item
        return super().register(item, name=name, origin=origin)


TOOLS = ToolRegistry("tool", "workbench.tools")
register = TOOLS.register


def check(settings: Any = None) -> list[Finding]:
    """Doctor's findings: the agent's tools and where the added ones came from; one per broken plug-in."""
    entries = TOOLS.entries()
    added = [f"{entry.name} ({entry.origin})" for entry in entries if entry.origin != BUILT_IN]
    detail = ", ".join(entry.name for entry in entries if entry.origin == BUILT_IN)
    findings = [Finding("agent tools", "ok", detail + (f"; added: {', '.join(added)}" if added else ""))]
    return findings + [Finding("agent tool plug-in", "warn", line, "fix or uninstall the plug-in")
                       for line in TOOLS.problems]


# --- the built-in actions ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Think:
    thought: str
    name: Literal["think"] = "think"


@dataclass(frozen=True)
class RunCode:
    thought: str
    language: str
    code: str
    name: Literal["run_code"] = "run_code"


@dataclass(frozen=True)
class Install:
    thought: str
    manager: str
    packages: tuple[str, ...]
    name: Literal["install"] = "install"


@dataclass(frozen=True)
class ReadFile:
    thought: str
    path: str
    name: Literal["read_file"] = "read_file"


@dataclass(frozen=True)
class WriteFile:
    thought: str
    path: str
    content: str
    name: Literal["write_file"] = "write_file"


@dataclass(frozen=True)
class SaveNote:
    thought: str
    title: str
    text: str
    name: Literal["save_note"] = "save_note"


@dataclass(frozen=True)
class SearchMemory:
    thought: str
    query: str
    name: Literal["search_memory"] = "search_memory"


@dataclass(frozen=True)
class Finish:
    thought: str
    answer: str
    success: bool
    name: Literal["finish"] = "finish"


# Registration order is the order the grammar and the prompt list them in. The examples are the system
# prompt's: placeholders in capitals, so a small model that copies one verbatim fails visibly (a file that
# does not exist, a package that is not there) instead of printing a plausible number it could report.
register(Tool("run_code", (Param("language", "language", "python"),
                          Param("code", "string", "print(open('FILE_NAME.csv').read(500))")), make=RunCode))
register(Tool("install", (Param("manager", "manager", "pip"), Param("packages", "packages", ["PACKAGE_NAME"])),
              make=Install, approval="installs"))
register(Tool("read_file", (Param("path", "string", "FILE_NAME.csv"),), make=ReadFile, approval="none",
              effect=False))
register(Tool("write_file", (Param("path", "string", "FILE_NAME.txt"),
                            Param("content", "text", "TEXT TO WRITE")), make=WriteFile))
register(Tool("save_note", (Param("title", "text", "SHORT TITLE"), Param("text", "string", "A FACT FOR LATER")),
              make=SaveNote, approval="none", effect=False))
register(Tool("search_memory", (Param("query", "string", "WORDS TO LOOK UP"),), make=SearchMemory,
              approval="none", effect=False))
register(Tool("think", make=Think, approval="none", effect=False))
register(Tool("finish", (Param("answer", "text", "THE RESULT YOUR CODE PRINTED"),
                        Param("success", "boolean", True)), make=Finish, approval="none", effect=False))
