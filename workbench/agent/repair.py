"""Deterministic repair hints for the failures small models meet most.

A 1-7B model often cannot read a traceback well enough to see that the cure for ModuleNotFoundError is
an install, or that a missing file means it should look at what files exist. These rules cost nothing,
are the same every time (so runs stay repeatable), and are added to the observation as `hint:` lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from workbench.sandbox.types import ExecutionResult

# Import names whose PyPI distribution is named differently.
PIP_NAMES = {
    "sklearn": "scikit-learn", "cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml",
    "bs4": "beautifulsoup4", "dateutil": "python-dateutil", "docx": "python-docx", "Bio": "biopython",
    "skimage": "scikit-image", "dotenv": "python-dotenv", "OpenSSL": "pyopenssl",
}

_PY_MISSING = re.compile(r"ModuleNotFoundError: No module named '([A-Za-z0-9_.]+)'")
_R_MISSING = re.compile(r"there is no package called [‘'\"]([A-Za-z0-9_.]+)[’'\"]")
_CMD_MISSING = re.compile(r"(?:^|\n)(?:[^\n:]*: )?(?:line \d+: )?([A-Za-z0-9_.+-]+): (?:command )?not found")
_NO_FILE = re.compile(r"(FileNotFoundError|No such file or directory|cannot open file|does not exist)")


def pip_name(module: str) -> str:
    top = module.split(".")[0]
    return PIP_NAMES.get(top, top)


def hints_for(result: ExecutionResult, list_workspace: Callable[[], Sequence[str]] | None = None) -> list[str]:
    """Hints for a failed execution (none for a success)."""
    if result.ok:
        return []
    hints: list[str] = []
    if result.timed_out or result.killed_by == "timeout":
        hints.append(f"the code ran past the time limit ({result.duration:.0f} s) and was stopped: make it "
                     "faster, process less data, or avoid waiting for input")
    if result.killed_by == "oom":
        hints.append("the code used more memory than the sandbox allows: process the data in chunks")
    text = result.stderr.text() + "\n" + result.stdout.text()
    missing = _PY_MISSING.search(text)
    if missing:
        package = pip_name(missing.group(1))
        hints.append(f"the Python module {missing.group(1)!r} is not installed: install it with "
                     f'{{"action": "install", "manager": "pip", "packages": ["{package}"]}}, then run the '
                     "code again")
    r_missing = _R_MISSING.search(text)
    if r_missing:
        hints.append(f"the R package {r_missing.group(1)!r} is not installed: install it with "
                     f'{{"action": "install", "manager": "r", "packages": ["{r_missing.group(1)}"]}}')
    command = _CMD_MISSING.search(text) if result.language == "shell" else None
    if command:
        hints.append(f"the command {command.group(1)!r} is not installed: try an apt install of the package "
                     "that provides it, or do the work in Python")
    if _NO_FILE.search(text) and list_workspace is not None:
        from workbench.agent.prompts import listing

        hints.append(f"a file was not found; {listing(list(list_workspace()))}")
    if "SyntaxError" in text or "IndentationError" in text:
        hints.append("the code does not parse: check quotes, brackets and indentation (write newlines as \\n "
                     "inside the JSON string)")
    if not hints:
        hints.append("read the last lines of stderr: they name the error and the line; fix that and run again")
    return hints


def error_line(result: ExecutionResult) -> str:
    """A failed execution's error in one line: the last line of stderr (the exception), or what stopped it."""
    if result.timed_out or result.killed_by == "timeout":
        return f"timed out after {result.duration:.1f} s"
    if result.killed_by == "oom":
        return "killed: out of memory"
    if result.killed_by == "user":
        return "stopped by the user"
    for stream in (result.stderr, result.stdout):
        lines = [line.strip() for line in stream.text().splitlines() if line.strip()]
        if lines:
            return f"exit code {result.exit_code}: {lines[-1]}"
    return f"exit code {result.exit_code}"
