"""Languages the sandbox runs: one registry, with built-ins registered the same way as plug-ins.

A `Language` is the command that runs a file of code inside the container. Everything that names
languages asks this registry: the sandbox (which command to run), the agent's grammar and system prompt,
the TUI's picker, `workbench exec --lang` and its help, doctor and the report. Three ways to add one:

  * a built-in here: one `register(Language(...))` call;
  * a plug-in: a distribution with an entry point in the group `workbench.languages` naming a `Language`,
    a list of them, or a callable returning either (see `workbench.registry`);
  * configuration: a `[languages.NAME]` table in the user's or the project's config (`command`,
    `extension`, optional `apt`, `warm`, `description`, `aliases`). A project's table is a widening
    setting: an untrusted project's is ignored (`workbench.restricted`).

Placeholders in `argv` (and `warm`), filled by the sandbox:
  {file}      the code file, as the container sees it
  {python}    /workspace/.venv/bin/python when the project has that venv (so `pip` installs persist),
              else the image's python3
  {database}  /workspace/<sandbox.sql_database>
Other braces are left as they are (an awk program in a command stays intact).

A broken plug-in or config entry is one line in `problems` naming it (doctor prints them); every other
language keeps working.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench.errors import UsageError
from workbench.findings import Finding
from workbench.inert import one_line
from workbench.registry import BUILT_IN, Registry

PLACEHOLDERS = ("file", "python", "database")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# A name goes into the agent's grammar as a literal and onto command lines: keep it plain.
NAME = re.compile(r"^[a-z][a-z0-9_+-]{0,31}$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{0,31}$")
EXTENSION = re.compile(r"^\.[A-Za-z0-9_+-]{1,16}$")
APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")  # Debian policy 5.6.1
CONFIG_KEYS = ("command", "extension", "apt", "warm", "description", "aliases", "highlight")


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    extension: str  # of the code file (tracebacks and R's source() show it)
    argv: tuple[str, ...]
    description: str = ""
    aliases: tuple[str, ...] = ()
    # The interpreter of warm sessions (`workbench exec --session`), which keeps state between cells:
    # () none; ("{kernel}",) the runner's own for this language (workbench/sandbox/container/kernels: python,
    # shell, r); otherwise the argv of a program that reads one cell per line on the fd in $WB_IN (the path
    # of a file with this language's extension) and answers {"status": N} on the fd in $WB_OUT.
    warm: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()  # Debian packages the project image needs first (installed on first use)
    highlight: str = ""  # the syntax highlighter's name for it (pygments / tree-sitter), "" for plain text

    def __post_init__(self) -> None:
        # A plug-in building a bad Language fails to load (one problem line), never later in the sandbox.
        problem = language_problem(self)
        if problem:
            raise ValueError(f"language {self.name!r}: {problem}")

    def command(self, *, file: str, python: str = "python3", database: str = "/workspace/data.db") -> list[str]:
        return fill(self.argv, file=file, python=python, database=database)


def fill(argv: Iterable[str], **values: str) -> list[str]:
    """`argv` with each known placeholder replaced (unknown braces are kept as written)."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), part) for part in argv]


def language_problem(language: Language) -> str:
    """What is wrong with a language, "" when nothing."""
    if not isinstance(language.name, str) or not NAME.match(language.name):
        return "the name must be 1-32 lowercase letters, digits, _, + or -, starting with a letter"
    if not isinstance(language.extension, str) or not EXTENSION.match(language.extension):
        return f"bad extension {language.extension!r} (a dot and 1-16 letters or digits, e.g. \".js\")"
    if not _strings(language.argv):
        return "the command must be a non-empty list of non-empty strings"
    if not any("{file}" in part for part in language.argv):
        return "the command never names the code file ({file})"
    if language.warm and not _strings(language.warm):
        return "warm must be a list of non-empty strings"
    if any("{kernel}" in part for part in language.warm) and language.name not in ("python", "r", "shell"):
        return "warm may not use {kernel}: the runner's own kernels are the built-ins' (give an interpreter's argv)"
    if not all(isinstance(alias, str) and ALIAS.match(alias) for alias in language.aliases):
        return "each alias must be a plain name (letters, digits, _, + or -)"
    bad = [p for p in language.apt if not isinstance(p, str) or not APT_PACKAGE.match(p)]
    if bad:
        return f"{one_line(str(bad[0]))!r} is not a Debian package name"
    return ""


def _strings(values: Any) -> bool:
    return isinstance(values, tuple) and bool(values) and all(isinstance(v, str) and v for v in values)


class LanguageRegistry(Registry[Language]):
    """A Registry that takes only `Language`s: a plug-in handing in something else is a problem line."""

    def register(self, item: Language, *, name: str | None = None, origin: str = BUILT_IN) -> Language:
        if origin != BUILT_IN and not isinstance(item, Language):
            self.problem(f"{origin}: not a workbench.languages.Language ({type(item).__name__}); ignored")
            return item
        return super().register(item, name=name, origin=origin)


LANGUAGES = LanguageRegistry("language", "workbench.languages", aliases=lambda language: language.aliases)
register = LANGUAGES.register

RUNNER_KERNEL = ("{kernel}",)

PYTHON = register(Language(
    "python", ".py", ("{python}", "-u", "{file}"), "Python 3 (the project venv when present)",
    aliases=("py", "python3"), warm=RUNNER_KERNEL, highlight="python"))
R = register(Language(
    "r", ".R", ("Rscript", "--no-save", "--no-restore", "{file}"), "R via Rscript", aliases=("R",),
    warm=RUNNER_KERNEL, highlight="r"))
SHELL = register(Language(
    "shell", ".sh", ("bash", "{file}"), "bash", aliases=("bash", "sh"), warm=RUNNER_KERNEL, highlight="bash"))
SQL = register(Language(
    "sql", ".sql", ("sqlite3", "-bail", "-header", "-box", "{database}", ".read {file}"),
    "SQLite on the workspace database, output as a table", aliases=("sqlite",), highlight="sql"))


# --- languages from configuration -----------------------------------------------------------------

def from_config(name: str, table: Any) -> Language | str:
    """The `[languages.NAME]` table as a Language, or one line naming the key and what is wrong."""
    key = f"config [languages.{one_line(str(name))}]"
    if not isinstance(table, Mapping):
        return f"{key} is not a table (write command = [...] and extension = \"...\" under it); ignored"
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        return (f"{key}: unknown key {one_line(str(unknown[0]))!r} (known: {', '.join(CONFIG_KEYS)}); ignored")
    command = table.get("command")
    if command is None:
        return f'{key}: command is missing (e.g. command = ["node", "{{file}}"]); ignored'
    if isinstance(command, str) or not _list_of_strings(command):
        return f'{key}: command must be a list of strings (e.g. ["node", "{{file}}"]); ignored'
    extension = table.get("extension")
    if extension is None:
        return f'{key}: extension is missing (e.g. extension = ".js"); ignored'
    for field in ("apt", "warm", "aliases"):
        if field in table and (isinstance(table[field], str) or not _list_of_strings(table[field], empty=True)):
            return f"{key}: {field} must be a list of strings; ignored"
    for field in ("description", "highlight"):
        if not isinstance(table.get(field, ""), str):
            return f"{key}: {field} must be a string; ignored"
    extension = extension if isinstance(extension, str) else repr(extension)
    try:
        return Language(str(name), extension, tuple(command), one_line(table.get("description", "")),
                        aliases=tuple(table.get("aliases", ())), warm=tuple(table.get("warm", ())),
                        apt=tuple(table.get("apt", ())),
                        highlight=table.get("highlight", "") or highlighter_for(extension))
    except ValueError as exc:
        return f"{key}: {str(exc).split(': ', 1)[-1]}; ignored"


def highlighter_for(extension: str) -> str:
    """The highlighter's name for files ending in `extension` (pygments, which Rich brings), "" if none."""
    try:
        from pygments.lexers import get_lexer_for_filename
        from pygments.util import ClassNotFound
    except ImportError:
        return ""
    try:
        lexer = get_lexer_for_filename(f"code{extension}")
    except (ClassNotFound, ValueError):
        return ""
    return lexer.aliases[0] if lexer.aliases else ""


def _list_of_strings(value: Any, *, empty: bool = False) -> bool:
    return isinstance(value, list | tuple) and (empty or bool(value)) and all(
        isinstance(v, str) and v for v in value)


def for_settings(settings: Any) -> LanguageRegistry:
    """The languages one project sees: built-ins, plug-ins, then its settings' `[languages]` tables
    (the user's and, when trusted, the project's). A broken table is a problem line, never an error."""
    tables = getattr(settings, "languages", None) or {}
    if not tables:
        return LANGUAGES
    registry = LanguageRegistry(LANGUAGES.kind, None, aliases=lambda language: language.aliases)
    for entry in LANGUAGES.entries():
        registry.register(entry.item, origin=entry.origin)
    for line in LANGUAGES.problems:
        registry.problem(line)
    for name, table in tables.items():
        made = from_config(name, table)
        if isinstance(made, str):
            registry.problem(made)
        else:
            registry.register(made, origin=f"config [languages.{name}]")
    return registry


def get(language: str, settings: Any = None) -> Language:
    """The language named `language` (or an alias); a UsageError naming the choices otherwise, or the
    problem of the config table or plug-in that meant to define it."""
    registry = for_settings(settings) if settings is not None else LANGUAGES
    if language not in registry:
        for line in registry.problems:
            if f"[languages.{language}]" in line or f"language {language!r}" in line:
                raise UsageError(f"unknown language {language!r}: {line}")
    return registry.get(language)


def names(settings: Any = None) -> list[str]:
    return (for_settings(settings) if settings is not None else LANGUAGES).names()


def choices_text(settings: Any = None) -> str:
    """"python, r, shell or sql": the names as a sentence (for --help)."""
    found = names(settings)
    return found[0] if len(found) == 1 else f"{', '.join(found[:-1])} or {found[-1]}"


def check(settings: Any) -> list[Finding]:
    """Doctor's findings: which languages there are and where each came from; one per problem."""
    registry = for_settings(settings)
    added = [f"{entry.name} ({entry.origin})" for entry in registry.entries() if entry.origin != BUILT_IN]
    built_in = [entry.name for entry in registry.entries() if entry.origin == BUILT_IN]
    detail = ", ".join(built_in) + (f"; added: {', '.join(added)}" if added else "")
    findings = [Finding("languages", "ok", detail)]
    findings += [Finding("language plug-in" if "plug-in" in line else "language config", "warn", line,
                         "fix or remove it; the other languages work")
                 for line in registry.problems]
    return findings


# --- apt packages a language needs, installed into the project image on first use -------------------

def missing_packages(sandbox: Any, language: Language) -> list[str]:
    """The language's apt packages the sandbox's image lacks (asked of dpkg inside the container)."""
    if not language.apt:
        return []
    query = ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *language.apt]
    _code, out = sandbox.run_quiet(query)
    installed = {parts[0].split(":")[0] for parts in (line.split() for line in out.decode(errors="replace")
                                                      .splitlines()) if len(parts) == 2 and parts[1] == "installed"}
    return [package for package in language.apt if package not in installed]


# (sandbox, image) pairs known to hold a language's apt packages: asked of dpkg once per sandbox and image.
_READY: weakref.WeakKeyDictionary[Any, set[tuple[str, tuple[str, ...]]]] = weakref.WeakKeyDictionary()


def prepare(sandbox: Any, language: str | Language) -> Language:
    """The language for an execution in `sandbox`, its apt packages installed first when the project image
    lacks them (through `Sandbox.install("apt", ...)`, which records `package.installed`). A `Language`
    itself is taken as it is (one no registry lists, such as `--db`'s PostgreSQL client)."""
    found = language if isinstance(language, Language) else get(language, sandbox.settings)
    if not found.apt:
        return found
    ready = _READY.setdefault(sandbox, set())
    if (sandbox.image, found.apt) in ready:
        return found
    missing = missing_packages(sandbox, found)
    if missing:
        from workbench.sandbox.errors import InstallFailed

        result = sandbox.install("apt", missing)
        if not result.ok:
            tail = " | ".join(result.output.strip().splitlines()[-2:])
            raise InstallFailed(f"the packages {found.name} needs ({' '.join(missing)}) did not install "
                                f"(exit {result.exit_code}): {one_line(tail)}",
                                f"check [install] apt_mirror, or the apt list of [languages.{found.name}]")
    ready.add((sandbox.image, found.apt))
    return found
