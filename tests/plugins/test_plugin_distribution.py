"""A real plug-in distribution, built and installed at test time, adds a language and an agent tool.

Two distributions are made from source folders (pyproject.toml with entry points) and installed with pip
into a folder of their own, put on PYTHONPATH for the `workbench` commands run here, so the venv is left as
it was. pip builds each wheel through PEP 517 with a few-line backend kept in the source folder (the venv
has no wheel-building backend, and the test must not need the network): `wb-lang-good` adds the language `pyiso` (the image's python3 in isolated mode) and the agent tool
`word_count`; `wb-lang-bad` has one entry point whose import fails, one that registers "python" again, and
a "tool" that is not one.
Each bad one is one line naming it (in doctor), and everything else works, the good plug-in included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A PEP 517 backend that packs the folder's modules and its [project] entry points into a wheel.
BACKEND = """
    import base64, hashlib, pathlib, tomllib, zipfile

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
        name, version = project["name"].replace("-", "_"), project["version"]
        info = f"{name}-{version}.dist-info"
        files = {path.name: path.read_bytes() for path in sorted(pathlib.Path(".").glob("wb_lang_*.py"))}
        files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {version}\\n".encode()
        files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: wb-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        files[f"{info}/entry_points.txt"] = "".join(
            f"[{group}]\\n" + "".join(f"{key} = {value}\\n" for key, value in points.items()) + "\\n"
            for group, points in project["entry-points"].items()).encode()
        record = []
        for path, data in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        files[f"{info}/RECORD"] = ("\\n".join(record) + f"\\n{info}/RECORD,,\\n").encode()
        wheel = f"{name}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(pathlib.Path(wheel_directory) / wheel, "w") as archive:
            for path, data in files.items():
                archive.writestr(path, data)
        return wheel
    """
BUILD_SYSTEM = """
    [build-system]
    requires = []
    build-backend = "wb_build"
    backend-path = ["."]
    """

GOOD = {
    "wb_build.py": BACKEND,
    "pyproject.toml": BUILD_SYSTEM + """
        [project]
        name = "wb-lang-good"
        version = "0.1"

        [project.entry-points."workbench.languages"]
        pyiso = "wb_lang_good:LANGUAGE"

        [project.entry-points."workbench.tools"]
        word_count = "wb_lang_good:tools"
        """,
    "wb_lang_good.py": """
        from workbench.agent.tools import Param, Tool
        from workbench.languages import Language

        LANGUAGE = Language("pyiso", ".py", ("python3", "-I", "{file}"), "Python 3 in isolated mode (a plug-in)",
                            aliases=("isolated",))


        def count(context, call):
            return f"word_count: {len(call.get('text').split())} words", True


        def tools():
            return [Tool("word_count", (Param("text", "string", "some words"),), "count the words of a text",
                         run=count, approval="none", effect=False)]
        """,
}
BAD = {
    "wb_build.py": BACKEND,
    "pyproject.toml": BUILD_SYSTEM + """
        [project]
        name = "wb-lang-bad"
        version = "0.1"

        [project.entry-points."workbench.languages"]
        broken = "wb_lang_bad_broken:LANGUAGE"
        again = "wb_lang_bad_again:LANGUAGE"

        [project.entry-points."workbench.tools"]
        not_a_tool = "wb_lang_bad_again:LANGUAGE"
        """,
    "wb_lang_bad_broken.py": """
        import wb_a_module_nobody_has  # noqa: F401
        """,
    "wb_lang_bad_again.py": """
        from workbench.languages import Language

        LANGUAGE = Language("python", ".py", ("python3", "{file}"), "a second python")
        """,
}


def _source(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    """The folder the two distributions are installed into (offline: no index, the venv's setuptools)."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    for name, files in (("good", GOOD), ("bad", BAD)):
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                               "--no-build-isolation", "--target", str(target), str(_source(root / name, files))],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in target.glob("*.dist-info")) == ["wb_lang_bad-0.1.dist-info",
                                                                  "wb_lang_good-0.1.dist-info"]
    return str(target)


def _run(command: list[str], plugin_path: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=plugin_path)
    return subprocess.run(command, capture_output=True, text=True, timeout=kwargs.pop("timeout", 120), env=env,
                          **kwargs)


def test_the_plugins_language_is_in_exec_help(plugin_path, workbench_cmd):
    done = _run([*workbench_cmd, "exec", "--help"], plugin_path)
    assert done.returncode == 0, done.stderr
    assert "python, r, shell, sql or pyiso" in " ".join(done.stdout.split())
    without = subprocess.run([*workbench_cmd, "exec", "--help"], capture_output=True, text=True, timeout=120)
    assert "pyiso" not in without.stdout  # installed into its own folder: the venv is unchanged


AGENT_VIEW = """
import json
from workbench.agent import actions as A, prompts
from workbench.languages import LANGUAGES
v = A.Vocabulary.of()
call = A.parse('{"thought": "t", "action": "word_count", "text": "one two three"}', v)
ctx = A.ToolContext(lambda: None, None, lambda kind, payload: None, 1)
print(json.dumps({"grammar": v.grammar, "prompt": prompts.system_prompt(v), "names": LANGUAGES.names(),
                  "problems": LANGUAGES.problems, "call": A.to_payload(call), "ran": A.run_tool(call, ctx),
                  "python": LANGUAGES.get("python").description,
                  "isolated": A.parse('{"thought": "t", "action": "run_code", "language": "isolated", '
                                      '"code": "print(1)"}', v).language}))
"""


def test_the_plugins_language_and_tool_are_in_the_agents_grammar_and_prompt(plugin_path):
    done = _run([sys.executable, "-c", AGENT_VIEW], plugin_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert '"\\"pyiso\\""' in seen["grammar"]
    assert 'word-count  ::= "\\"word_count\\"" sp "," sp "\\"text\\"" sp ":" sp string' in seen["grammar"]
    assert "word-count" in seen["grammar"].split("action      ::= ")[1].splitlines()[0]
    assert ('{"thought": "what and why", "action": "word_count", "text": "some words"}  '
            "(count the words of a text)") in seen["prompt"]
    assert "Languages: python, r, shell, sql, pyiso." in seen["prompt"]
    assert seen["names"] == ["python", "r", "shell", "sql", "pyiso"]
    assert seen["call"] == {"thought": "t", "action": "word_count", "text": "one two three"}
    assert seen["ran"] == ["word_count: 3 words", True]
    assert seen["isolated"] == "pyiso"
    assert seen["python"] == "Python 3 (the project venv when present)"  # the built-in, not the duplicate
    again, broken = seen["problems"]  # entry points load in name order
    assert broken.startswith("plug-in wb-lang-bad (broken = wb_lang_bad_broken:LANGUAGE): failed to load: "
                             "ModuleNotFoundError")
    assert again.startswith("plug-in wb-lang-bad (again = wb_lang_bad_again:LANGUAGE): registers the language "
                            "'python', which built-in already has")


def test_doctor_lists_the_plugin_and_one_line_per_bad_one(plugin_path, workbench_cmd, tmp_path):
    done = _run([*workbench_cmd, "doctor"], plugin_path, timeout=300, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    [languages] = [line for line in out.splitlines() if "] languages:" in line]
    assert "python, r, shell, sql; added: pyiso (plug-in wb-lang-good (pyiso = wb_lang_good:LANGUAGE))" in languages
    plugin_lines = [line for line in out.splitlines() if "] language plug-in:" in line]
    assert len(plugin_lines) == 2, out
    assert "again = wb_lang_bad_again:LANGUAGE" in plugin_lines[0] and "'python'" in plugin_lines[0]
    assert "broken = wb_lang_bad_broken:LANGUAGE" in plugin_lines[1] and "ModuleNotFoundError" in plugin_lines[1]
    [tools] = [line for line in out.splitlines() if "] agent tools:" in line]
    assert "; added: word_count (plug-in wb-lang-good (word_count = wb_lang_good:tools))" in tools
    [bad_tool] = [line for line in out.splitlines() if "] agent tool plug-in:" in line]
    assert "not_a_tool = wb_lang_bad_again:LANGUAGE" in bad_tool and "not a workbench.agent.tools.Tool" in bad_tool


@pytest.mark.engine
def test_the_plugins_language_runs_in_the_sandbox_and_python_still_does(engine_ready, plugin_path, workbench_cmd,
                                                                        project):
    base = [*workbench_cmd, "exec", "-p", str(project.root)]
    done = _run([*base, "--lang", "pyiso", "-c", "import sys; print(sys.flags.isolated, 6 * 7)"], plugin_path,
                timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 42"
    done = _run([*base, "--lang", "python", "-c", "import sys; print(sys.flags.isolated)"], plugin_path, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr
