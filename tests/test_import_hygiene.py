"""The core never imports Textual: every module outside workbench/tui/ imports in a fresh interpreter
without pulling `textual` into sys.modules."""

import pkgutil
import subprocess
import sys

import workbench


def core_modules():
    return sorted(m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.")
                  if not m.name.startswith("workbench.tui"))


def test_there_are_core_modules_to_check():
    names = core_modules()
    assert "workbench.events" in names and "workbench.cli" in names


def test_core_modules_do_not_import_textual():
    script = (
        "import importlib, sys, json\n"
        "bad = {}\n"
        f"for name in {core_modules()!r}:\n"
        "    before = set(sys.modules)\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        bad[name] = f'import failed: {exc!r}'\n"
        "    if 'textual' in sys.modules:\n"
        "        bad[name] = 'imports textual'\n"
        "        break\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{}", result.stdout


def test_each_core_module_alone():
    # One interpreter per module, as a user importing a single piece would.
    failures = []
    for name in core_modules():
        r = subprocess.run([sys.executable, "-c", f"import sys, {name}; print('textual' in sys.modules)"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or r.stdout.strip() != "False":
            failures.append((name, r.stdout.strip(), r.stderr.strip()[-300:]))
    assert failures == []
