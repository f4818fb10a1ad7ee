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
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

LANGUAGES = ("python", "r", "shell", "sql")
MANAGERS = ("pip", "r", "apt")
ACTION_NAMES = ("think", "run_code", "install", "read_file", "write_file", "save_note", "search_memory", "finish")
MAX_PACKAGES = 20


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


Action = Think | RunCode | Install | ReadFile | WriteFile | SaveNote | SearchMemory | Finish


@dataclass(frozen=True)
class Malformed:
    """Model output that is not a valid action: the raw text and why, to be shown back to the model."""

    raw: str
    error: str


def to_payload(action: Action) -> dict[str, Any]:
    """The JSON-able form used in events (`llm.action`)."""
    data = asdict(action)
    data["action"] = data.pop("name")
    if isinstance(action, Install):
        data["packages"] = list(action.packages)
    return data


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


# --- the grammar -----------------------------------------------------------------------------------

def _alternatives(values: tuple[str, ...]) -> str:
    return " | ".join(f'"\\"{value}\\""' for value in values)


GRAMMAR = rf"""
root        ::= "{{" sp "\"thought\"" sp ":" sp string sp "," sp "\"action\"" sp ":" sp action sp "}}"
action      ::= think | run-code | install | read-file | write-file | save-note | search-memory | finish
think       ::= "\"think\""
run-code    ::= "\"run_code\"" sp "," sp "\"language\"" sp ":" sp language sp "," sp "\"code\"" sp ":" sp string
install     ::= "\"install\"" sp "," sp "\"manager\"" sp ":" sp manager sp "," sp "\"packages\"" sp ":" sp packages
read-file   ::= "\"read_file\"" sp "," sp "\"path\"" sp ":" sp string
write-file  ::= "\"write_file\"" sp "," sp "\"path\"" sp ":" sp string sp "," sp "\"content\"" sp ":" sp string
save-note   ::= "\"save_note\"" sp "," sp "\"title\"" sp ":" sp string sp "," sp "\"text\"" sp ":" sp string
search-memory ::= "\"search_memory\"" sp "," sp "\"query\"" sp ":" sp string
finish      ::= "\"finish\"" sp "," sp "\"answer\"" sp ":" sp string sp "," sp "\"success\"" sp ":" sp boolean
language    ::= {_alternatives(LANGUAGES)}
manager     ::= {_alternatives(MANAGERS)}
packages    ::= "[" sp package ( sp "," sp package ){{0,{MAX_PACKAGES - 1}}} sp "]"
package     ::= "\"" [A-Za-z0-9._] [A-Za-z0-9._=<>!~+:/@\[\]-]{{0,80}} "\""
boolean     ::= "true" | "false"
string      ::= "\"" char* "\""
char        ::= [^"\\\x00-\x1F\x7F] | "\\" ( ["\\/bfnrt] | "u" hex hex hex hex )
hex         ::= [0-9a-fA-F]
sp          ::= " "?
"""


# --- parsing and validation ------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```\s*$")


def parse(raw: str) -> Action | Malformed:
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
    return validate(data, raw)


def validate(data: Any, raw: str = "") -> Action | Malformed:
    """Turn decoded JSON into an action, checking types and allowed values."""
    if not isinstance(data, dict):
        return Malformed(raw, "the reply must be one JSON object")
    name = data.get("action")
    if name not in ACTION_NAMES:
        return Malformed(raw, f'"action" must be one of {", ".join(ACTION_NAMES)} (got {name!r})')
    thought = data.get("thought", "")
    if not isinstance(thought, str):
        return Malformed(raw, '"thought" must be a string')
    allowed = {"thought", "action", *_FIELDS[name]}
    extra = sorted(set(data) - allowed)
    if extra:
        return Malformed(raw, f'unexpected key(s) for "{name}": {", ".join(extra)}')
    try:
        return _BUILDERS[name](thought, data)
    except _Invalid as exc:
        return Malformed(raw, str(exc))


class _Invalid(ValueError):
    pass


def _string(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _Invalid(f'"{key}" must be a string')
    if not allow_empty and not value.strip():
        raise _Invalid(f'"{key}" must not be empty')
    return value


def _run_code(thought: str, data: dict[str, Any]) -> RunCode:
    language = _string(data, "language").lower()
    if language not in LANGUAGES:
        raise _Invalid(f'"language" must be one of {", ".join(LANGUAGES)} (got {language!r})')
    return RunCode(thought, language, _string(data, "code"))


def _install(thought: str, data: dict[str, Any]) -> Install:
    manager = _string(data, "manager").lower()
    if manager not in MANAGERS:
        raise _Invalid(f'"manager" must be one of {", ".join(MANAGERS)} (got {manager!r})')
    packages = data.get("packages")
    if isinstance(packages, str):
        packages = [packages]
    if not isinstance(packages, list) or not packages or not all(isinstance(p, str) and p.strip()
                                                                 for p in packages):
        raise _Invalid('"packages" must be a non-empty list of package names')
    if len(packages) > MAX_PACKAGES:
        raise _Invalid(f"at most {MAX_PACKAGES} packages per install")
    return Install(thought, manager, tuple(p.strip() for p in packages))


def _finish(thought: str, data: dict[str, Any]) -> Finish:
    success = data.get("success")
    if not isinstance(success, bool):
        raise _Invalid('"success" must be true or false')
    return Finish(thought, _string(data, "answer", allow_empty=True), success)


_FIELDS: dict[str, tuple[str, ...]] = {
    "think": (), "run_code": ("language", "code"), "install": ("manager", "packages"), "read_file": ("path",),
    "write_file": ("path", "content"), "save_note": ("title", "text"), "search_memory": ("query",),
    "finish": ("answer", "success"),
}
_BUILDERS = {
    "think": lambda thought, data: Think(thought),
    "run_code": _run_code,
    "install": _install,
    "read_file": lambda thought, data: ReadFile(thought, _string(data, "path")),
    "write_file": lambda thought, data: WriteFile(thought, _string(data, "path"),
                                                  _string(data, "content", allow_empty=True)),
    "save_note": lambda thought, data: SaveNote(thought, _string(data, "title", allow_empty=True),
                                                _string(data, "text")),
    "search_memory": lambda thought, data: SearchMemory(thought, _string(data, "query")),
    "finish": _finish,
}
