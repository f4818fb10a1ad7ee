"""The command line's import budget (issue #21: a CLI as fast as the engine's own).

Each heavy library is imported only by the command that needs it: the CLI's entry point, its help and
`exec --help` must not pull in the engine client, the keyring, the PDF or TUI toolkits or the model
runtime. Each case runs in a fresh interpreter, so what another test imported cannot hide a regression.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("docker", "keyring", "pydantic_settings", "reportlab", "textual", "llama_cpp", "mcp")

# `exec --help` lists the languages, user config included: that needs the settings, nothing else heavy.
CASES = {
    "import workbench.cli": ("import workbench.cli", HEAVY),
    "workbench --help": ("from workbench.cli import main\nmain(['--help'])", HEAVY),
    "workbench exec --help": ("from workbench.cli import main\nmain(['exec', '--help'])",
                              tuple(name for name in HEAVY if name != "pydantic_settings")),
    "import workbench.cli.common": ("import workbench.cli.common", HEAVY),
    "import workbench.cli.exec_cmd": ("import workbench.cli.exec_cmd", HEAVY),
}


def imported_after(code: str, names: tuple[str, ...]) -> list[str]:
    script = (
        "import atexit, json, sys\n"
        f"names = {names!r}\n"
        "atexit.register(lambda: sys.__stderr__.write('IMPORTED=' + json.dumps("
        "[n for n in names if n in sys.modules]) + '\\n'))\n"
        f"{code}\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    marker = [line for line in result.stderr.splitlines() if line.startswith("IMPORTED=")]
    assert marker, f"exit {result.returncode}: {result.stderr[-500:]}"
    return json.loads(marker[-1].removeprefix("IMPORTED="))


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_imports_no_heavy_library(case):
    code, forbidden = CASES[case]
    assert imported_after(code, forbidden) == []


def test_the_check_sees_a_heavy_import():
    # The probe itself must be able to fail: importing docker shows up.
    assert imported_after("import docker", ("docker", "textual")) == ["docker"]
