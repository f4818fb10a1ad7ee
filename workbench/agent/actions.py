"""The agent's actions: one JSON object per step, a strict grammar that forces it, and a validating parser.

Why a hand-written grammar: llama-cpp-python's JSON-schema-to-grammar lets raw newlines into strings
(abetlen/llama-cpp-python#1259) and invalid JSON came out when measured here. This grammar allows only
JSON escapes inside strings, fixes the key order, and keeps whitespace to one optional space, so a small
model cannot wander off into blank lines. Output that still does not parse or validate (a provider
without grammar support, or `max_tokens` cut it short) becomes a `Malformed` value the loop turns into an
observation, never an exception.

Shape (keys in this order):

    {"thought": "...", "action": "run_code", "language": "python", "code": "..."}
    {"thought": "...", "action": "install", "manager": "pip", "packages": ["..."]}
    {"thought": "...", "action": "read_file", "path": "..."}
    {"thought": "...", "action": "write_file", "path": "...", "content": "..."}
    {"thought": "...", "action": "save_note", "title": "...", "text": "..."}
    {"thought": "...", "action": "search_memory", "query": "..."}
    {"thought": "...", "action": "think"}
    {"thought": "...", "action": "finish", "answer": "...", "success": true}

`save_note` and `search_memory` go to the project's memory (Markdown notes, `workbench.memory`).

Nothing here lists actions, languages or package managers: a `Vocabulary` takes them from their registries
(`workbench.agent.tools.TOOLS`, `workbench.languages`, `workbench.sandbox.managers`), for the defaults or
for one project's settings (its `[languages]`), and the grammar and the parser are derived from it. The
module-level `GRAMMAR`, `LANGUAGES`, `MANAGERS` and `ACTION_NAMES` are the defaults' (computed when asked,
so importing this module loads no plug-in).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from workbench import languages as language_registry
from workbench.agent.tools import (
    TOOLS,
    Finish,
    Install,
    Param,
    ReadFile,
    RunCode,
    SaveNote,
    SearchMemory,
    Think,
    Tool,
    ToolCall,
    ToolContext,
    WriteFile,
)

__all__ = ["Action", "Finish", "Install", "Malformed", "ReadFile", "RunCode", "SaveNote", "SearchMemory", "Think",
           "ToolCall", "ToolContext", "Vocabulary", "WriteFile", "approval_of", "is_effect", "manager_names",
           "parse", "run_tool", "signature", "to_json", "to_payload", "validate"]

MAX_PACKAGES = 20

Action = Think | RunCode | Install | ReadFile | WriteFile | SaveNote | SearchMemory | Finish | ToolCall


@dataclass(frozen=True)
class Malformed:
    """Model output that is not a valid action: the raw text and why, to be shown back to the model."""

    raw: str
    error: str


def manager_descriptions() -> tuple[tuple[str, str], ...]:
    """(name, what it installs into) for each package manager, from their registry (asked when needed:
    importing this module loads no plug-in)."""
    from workbench.sandbox.managers import MANAGERS

    return tuple((manager.name, manager.description) for manager in MANAGERS.items())


def manager_names() -> tuple[str, ...]:
    return tuple(name for name, _ in manager_descriptions())


@dataclass(frozen=True)
class Vocabulary:
    """What the model may say: the tools, and the languages and package managers their fields take."""

    tools: tuple[Tool, ...]
    languages: tuple[str, ...]
    managers: tuple[str, ...]
    language_aliases: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, settings: Any = None) -> Vocabulary:
        """The registries' vocabulary; with `settings`, including that project's `[languages]`."""
        registry = language_registry.for_settings(settings) if settings is not None else language_registry.LANGUAGES
        entries = registry.entries()
        aliases = tuple((alias, entry.name) for entry in entries for alias in entry.item.aliases)
        languages = tuple(entry.name for entry in entries)
        managers = manager_names()
        empty = {"language"} if not languages else set()
        empty |= {"manager"} if not managers else set()
        tools = tuple(tool for tool in TOOLS.items() if not {p.kind for p in tool.params} & empty)
        return cls(tools, languages, managers, aliases)

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(tool.name for tool in self.tools)

    def tool(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def language(self, value: str) -> str | None:
        """The registered name for `value` (a name or alias, any case), else None."""
        aliases = dict(self.language_aliases)
        for candidate in (value, value.lower()):
            if candidate in self.languages:
                return candidate
            if candidate in aliases:
                return aliases[candidate]
        return None

    @cached_property
    def grammar(self) -> str:
        return build_grammar(self)


def __getattr__(name: str) -> Any:  # the defaults, computed when asked (see the module's doc)
    if name == "GRAMMAR":
        return Vocabulary.of().grammar
    if name == "LANGUAGES":
        return Vocabulary.of().languages
    if name == "MANAGERS":
        return manager_names()
    if name == "ACTION_NAMES":
        return Vocabulary.of().action_names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_payload(action: Action) -> dict[str, Any]:
    """The JSON-able form used in events (`llm.action`)."""
    if isinstance(action, ToolCall):
        data = {"thought": action.thought, "action": action.name, **dict(action.arguments)}
    else:
        data = asdict(action)
        data["action"] = data.pop("name")
    return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}


def signature(action: Action) -> str:
    """What the action *does*, without the thought: equal signatures mean the model repeats itself."""
    data = to_payload(action)
    data.pop("thought", None)
    return json.dumps(data, sort_keys=True)


def to_json(action: Action) -> str:
    """The canonical one-line JSON of an action, as the model is asked to write it."""
    data = to_payload(action)
    ordered = {"thought": data.pop("thought"), "action": data.pop("action"), **data}
    return json.dumps(ordered, ensure_ascii=False)


def approval_of(action: Action) -> str:
    """Which approval setting asks before `action` runs: "executions", "installs" or "none"."""
    if isinstance(action, ToolCall):
        return action.approval
    return TOOLS.get(action.name).approval


def is_effect(action: Action) -> bool:
    """Whether `action`'s result is what a `finish` is checked against (see `Tool.effect`)."""
    if isinstance(action, ToolCall):
        return action.effect
    return TOOLS.get(action.name).effect


def run_tool(call: ToolCall, context: ToolContext, vocabulary: Vocabulary | None = None) -> tuple[str, bool]:
    """Carry out a plug-in tool's call: (observation, ok)."""
    tool = (vocabulary or Vocabulary.of()).tool(call.name)
    if tool is None or tool.run is None:
        return f"{call.name}: this tool cannot be carried out here", False
    text, ok = tool.run(context, call)
    return str(text), bool(ok)


# --- the grammar -----------------------------------------------------------------------------------

def _alternatives(values: tuple[str, ...]) -> str:
    return " | ".join(f'"\\"{value}\\""' for value in values)


def _rule(name: str) -> str:
    return name.replace("_", "-")


RULE_OF_KIND = {"string": "string", "text": "string", "boolean": "boolean", "integer": "integer",
                "language": "language", "manager": "manager", "packages": "packages"}


def _tool_rule(tool: Tool) -> str:
    parts = [f'"\\"{tool.name}\\""']
    for param in tool.params:
        parts.append(f'sp "," sp "\\"{param.name}\\"" sp ":" sp {RULE_OF_KIND[param.kind]}')
    return f"{_rule(tool.name):<11} ::= " + " ".join(parts)


def build_grammar(vocabulary: Vocabulary) -> str:
    kinds = {param.kind for tool in vocabulary.tools for param in tool.params}
    lines = [
        'root        ::= "{" sp "\\"thought\\"" sp ":" sp string sp "," sp "\\"action\\"" sp ":" sp action sp "}"',
        f"action      ::= {' | '.join(_rule(tool.name) for tool in vocabulary.tools)}",
        *(_tool_rule(tool) for tool in vocabulary.tools),
    ]
    if "language" in kinds:
        lines.append(f"language    ::= {_alternatives(vocabulary.languages)}")
    if "manager" in kinds:
        lines.append(f"manager     ::= {_alternatives(vocabulary.managers)}")
    if "packages" in kinds:
        lines.append(f'packages    ::= "[" sp package ( sp "," sp package ){{0,{MAX_PACKAGES - 1}}} sp "]"')
        lines.append(r'package     ::= "\"" [A-Za-z0-9._] [A-Za-z0-9._=<>!~+:/@\[\]-]{0,80} "\""')
    if "boolean" in kinds:
        lines.append('boolean     ::= "true" | "false"')
    if "integer" in kinds:
        lines.append('integer     ::= "-"? [0-9] [0-9]{0,17}')
    lines += [
        r'string      ::= "\"" char* "\""',
        r'char        ::= [^"\\\x00-\x1F\x7F] | "\\" ( ["\\/bfnrt] | "u" hex hex hex hex )',
        "hex         ::= [0-9a-fA-F]",
        'sp          ::= " "?',
    ]
    return "\n" + "\n".join(lines) + "\n"


# --- parsing and validation ------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```\s*$")


def parse(raw: str, vocabulary: Vocabulary | None = None) -> Action | Malformed:
    """Parse one model reply into an action, or say precisely why it is not one."""
    text = raw.strip()
    if not text:
        return Malformed(raw, "the reply was empty")
    text = _FENCE.sub("", text).strip()  # models without a grammar like code fences
    try:
        data, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        start = text.find("{")
        if start <= 0:
            return Malformed(raw, f"not valid JSON: {exc.msg} at character {exc.pos}")
        try:  # tolerate chatter before the object
            data, end = json.JSONDecoder().raw_decode(text[start:])
            end += start
        except json.JSONDecodeError as inner:
            return Malformed(raw, f"not valid JSON: {inner.msg} at character {inner.pos + start}")
    if text[end:].strip():
        return Malformed(raw, "extra text after the JSON object: send exactly one object")
    return validate(data, raw, vocabulary)


def validate(data: Any, raw: str = "", vocabulary: Vocabulary | None = None) -> Action | Malformed:
    """Turn decoded JSON into an action, checking types and allowed values."""
    vocabulary = vocabulary or Vocabulary.of()
    if not isinstance(data, dict):
        return Malformed(raw, "the reply must be one JSON object")
    name = data.get("action")
    tool = vocabulary.tool(name) if isinstance(name, str) else None
    if tool is None:
        return Malformed(raw, f'"action" must be one of {", ".join(vocabulary.action_names)} (got {name!r})')
    thought = data.get("thought", "")
    if not isinstance(thought, str):
        return Malformed(raw, '"thought" must be a string')
    allowed = {"thought", "action", *(param.name for param in tool.params)}
    extra = sorted(set(data) - allowed)
    if extra:
        return Malformed(raw, f'unexpected key(s) for "{name}": {", ".join(extra)}')
    try:
        values = {param.name: _value(param, data, vocabulary) for param in tool.params}
    except _Invalid as exc:
        return Malformed(raw, str(exc))
    if tool.make is None:
        return ToolCall(thought, tool.name, tuple(values.items()), tool.approval, tool.effect)
    return tool.make(thought, **values)


class _Invalid(ValueError):
    pass


def _string(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _Invalid(f'"{key}" must be a string')
    if not allow_empty and not value.strip():
        raise _Invalid(f'"{key}" must not be empty')
    return value


def _value(param: Param, data: dict[str, Any], vocabulary: Vocabulary) -> Any:
    key, kind = param.name, param.kind
    if kind in ("string", "text"):
        return _string(data, key, allow_empty=kind == "text")
    if kind == "boolean":
        if not isinstance(data.get(key), bool):
            raise _Invalid(f'"{key}" must be true or false')
        return data[key]
    if kind == "integer":
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f'"{key}" must be a whole number')
        return value
    if kind == "language":
        given = _string(data, key)
        found = vocabulary.language(given)
        if found is None:
            raise _Invalid(f'"{key}" must be one of {", ".join(vocabulary.languages)} (got {given.lower()!r})')
        return found
    if kind == "manager":
        manager = _string(data, key).lower()
        if manager not in vocabulary.managers:
            raise _Invalid(f'"{key}" must be one of {", ".join(vocabulary.managers)} (got {manager!r})')
        return manager
    packages = data.get(key)  # kind == "packages"
    if isinstance(packages, str):
        packages = [packages]
    if not isinstance(packages, list) or not packages or not all(isinstance(p, str) and p.strip()
                                                                 for p in packages):
        raise _Invalid(f'"{key}" must be a non-empty list of package names')
    if len(packages) > MAX_PACKAGES:
        raise _Invalid(f"at most {MAX_PACKAGES} packages per install")
    return tuple(p.strip() for p in packages)
