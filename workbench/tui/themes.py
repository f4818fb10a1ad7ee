"""Themes are data: TOML files, validated on load, registered with `App.register_theme`.

Built-in themes ship inside the wheel as `workbench/_themes` (pyproject force-includes the repository's
`themes/`); in a development checkout they are read from `themes/` directly. Users drop their own files
in `paths.user_themes_dir()`. The file format is documented in `themes/README.md`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from workbench import paths

DEFAULT_THEME = "workbench-dark"
BUILTIN_NAMES = ("workbench-dark", "workbench-light", "workbench-high-contrast")
COLOR_KEYS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground", "background",
              "surface", "panel", "boost")
TOP_KEYS = {"name", "dark", "description", "colors", "variables"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ThemeError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ThemeSet:
    """Themes found on disk, and one line per file that failed."""

    themes: dict[str, Theme]
    errors: tuple[str, ...]


def builtin_themes_dir() -> Path:
    """`workbench/_themes` when installed from a wheel, else the repository's `themes/`."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "_themes"
    if installed.is_dir():
        return installed
    return package.parent / "themes"


def _color(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ThemeError(f"{where} must be a colour string, not {type(value).__name__}")
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ThemeError(f"{where} = {value!r} is not a colour") from exc
    return value


def theme_from_data(data: dict[str, Any], source: str = "<data>") -> Theme:
    """Check every key and colour of one theme's data and build the Textual `Theme`."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ThemeError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ThemeError(f"{source}: 'name' must be lowercase letters, digits, '-' or '_' (got {name!r})")
    dark = data.get("dark")
    if not isinstance(dark, bool):
        raise ThemeError(f"{source}: 'dark' must be true or false")
    colors = data.get("colors")
    if not isinstance(colors, dict) or "primary" not in colors:
        raise ThemeError(f"{source}: a [colors] table with at least 'primary' is required")
    bad = set(colors) - set(COLOR_KEYS)
    if bad:
        raise ThemeError(f"{source}: unknown colour(s) {', '.join(sorted(bad))} (known: {', '.join(COLOR_KEYS)})")
    checked = {key: _color(value, f"{source}: colors.{key}") for key, value in colors.items()}
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeError(f"{source}: [variables] must be a table")
    checked_vars = {str(key): _color(value, f"{source}: variables.{key}") for key, value in variables.items()}
    try:
        return Theme(name=name, dark=dark, variables=checked_vars, **checked)
    except Exception as exc:  # Textual's own checks, in case it rejects something we let through
        raise ThemeError(f"{source}: {exc}") from exc


def load_theme_file(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThemeError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{path}: not valid TOML ({exc})") from exc
    return theme_from_data(data, str(path))


def load_folder(folder: Path) -> ThemeSet:
    """Every `*.toml` theme in `folder` (sorted by file name); a missing folder is empty."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    try:
        files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    except OSError as exc:
        return ThemeSet({}, (f"{folder}: cannot list ({exc})",))
    for path in files:
        try:
            theme = load_theme_file(path)
        except ThemeError as exc:
            errors.append(str(exc))
            continue
        themes[theme.name] = theme
    return ThemeSet(themes, tuple(errors))


def load_all(user_dir: Path | None = None) -> ThemeSet:
    """Built-in themes, then the user's (which may replace a built-in of the same name)."""
    builtin = load_folder(builtin_themes_dir())
    user = load_folder(user_dir if user_dir is not None else paths.user_themes_dir())
    return ThemeSet({**builtin.themes, **user.themes}, builtin.errors + user.errors)


def fallback_theme() -> Theme:
    """Used only if the built-in files are missing from an install: the app still starts."""
    return Theme(name=DEFAULT_THEME, primary="#4EA1F3", secondary="#7C8CF8", accent="#F0A35E",
                 warning="#E5C07B", error="#EF6B73", success="#7FD18B", foreground="#D7DCE2",
                 background="#14171C", surface="#1B1F26", panel="#232934", dark=True)


def invalid_notice(errors: tuple[str, ...]) -> str:
    """One notice for all the files that failed."""
    lines = [f"{len(errors)} theme file(s) skipped, using the default theme where needed:"]
    lines += [f"• {error}" for error in errors]
    return "\n".join(lines)
