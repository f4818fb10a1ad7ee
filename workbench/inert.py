"""Text from the sandbox, made inert for display: no terminal escapes, no markup, nothing interpreted.

Sandboxed code controls file names, file contents, CSV cells, output, runner replies, package names and
the model's words. Any of them may hold an OSC or CSI sequence (a terminal escape that retitles the window,
rewrites the screen or, in some terminals, runs an action) or Rich console markup (`[@click=...]`, `[/x]`).
Everything Workbench shows itself goes through one of these:

  visible(text)      every control character (C0 but tab and newline, DEL, C1) and every bidi or zero-width
                     format character shown as a visible escape (`\\x1b`, `\\u202e`): the text keeps all
                     its information and the terminal interprets none of it
  one_line(text)     the same, and newlines and tabs shown too: for a name, a label, a cell, a status line
  plain(text)        a `rich.text.Text` of `visible(text)`: Textual widgets render it as it is, never as markup

A file's own stdout/stderr streamed by `workbench exec` is the one place left raw (like `docker exec`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported only where a Text is wanted (the CLI stays light)
    from rich.text import Text

# C0 except \t \n, DEL, C1; then the Unicode format characters that reorder or hide text (bidi overrides and
# isolates, zero-width joiners and spaces, the BOM) and the line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_CONTROL_OR_LAYOUT = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """`text` with control and hidden format characters as visible escapes; tabs and newlines kept."""
    text = text if isinstance(text, str) else str(text)
    return _CONTROL.sub(_escape, text)


def one_line(text: object) -> str:
    """`visible(text)` on one line: newlines, carriage returns and tabs escaped as well."""
    text = text if isinstance(text, str) else str(text)
    return _CONTROL_OR_LAYOUT.sub(_escape, text)


def plain(text: object, style: str = "", *, single_line: bool = False) -> Text:
    """A Rich `Text` holding `text` made visible: no markup is parsed from it, ever."""
    from rich.text import Text

    return Text(one_line(text) if single_line else visible(text), style=style)


def is_inert(text: str) -> bool:
    """True when `text` holds nothing a terminal would interpret (the tests' check)."""
    return not _CONTROL.search(text) and all(unicodedata.category(c) != "Cc" or c in "\t\n" for c in text)
