"""Write one key of the user's config TOML without disturbing anything else in the file.

Only `[ui] theme` is written from the TUI. The file is edited as text (comments, order and other keys
stay as they were), checked with tomllib before it replaces the old one, and replaced atomically.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

from workbench import paths

_TABLE_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"'-]+)\s*\]\s*(#.*)?$")


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def set_key(text: str, table: str, key: str, value: str) -> str:
    """Return `text` with `[table] key = "value"` set, keeping every other line as it was."""
    lines = text.splitlines()
    new_line = f"{key} = {_toml_string(value)}"
    key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
    start = None
    for index, line in enumerate(lines):
        match = _TABLE_RE.match(line)
        if match and match.group(1).strip() == table:
            start = index
            break
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{table}]", new_line]
        return "\n".join(lines) + "\n"
    end = len(lines)
    for index in range(start + 1, len(lines)):
        if _TABLE_RE.match(lines[index]) or lines[index].lstrip().startswith("[["):
            end = index
            break
    for index in range(start + 1, end):
        if key_re.match(lines[index]):
            lines[index] = new_line
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, new_line)
    return "\n".join(lines) + "\n"


def save_theme(name: str, config_file: Path | None = None) -> Path:
    """Persist the theme choice as `[ui] theme` in the user config file; returns the file written."""
    path = config_file or paths.user_config_file()
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = ""
    new = set_key(old, "ui", "theme", name)
    data = tomllib.loads(new)  # refuse to write anything that would not parse back
    if data.get("ui", {}).get("theme") != name:
        raise ValueError(f"could not set [ui] theme in {path}")
    paths.ensure_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return path
