"""The languages registry (workbench.languages): built-ins, `[languages.NAME]` from configuration, what an
untrusted project may not add, and one line for each broken entry while the rest keeps working."""

from __future__ import annotations

import subprocess

import pytest

from workbench import languages, trust
from workbench.agent import actions as A
from workbench.agent import prompts
from workbench.config import load_settings
from workbench.errors import UsageError
from workbench.project import Project

NODE = '[languages.node]\ncommand = ["node", "{file}"]\nextension = ".js"\napt = ["nodejs"]\n'


class Settings:
    def __init__(self, **tables):
        self.languages = tables


def test_the_built_ins_are_registered_like_plug_ins():
    entries = languages.LANGUAGES.entries()
    assert [entry.name for entry in entries][:4] == ["python", "r", "shell", "sql"]
    assert all(entry.origin == "built-in" for entry in entries[:4])
    assert languages.get("py").name == "python" and languages.get("R").name == "r"
    assert languages.get("bash").name == "shell" and languages.get("sqlite").name == "sql"
    assert [lang.name for lang in languages.LANGUAGES.items() if lang.warm] == ["python", "r", "shell"]
    with pytest.raises(UsageError, match="unknown language 'cobol'; choose one of: python, r, shell, sql"):
        languages.get("cobol")


def test_placeholders_are_filled_and_other_braces_kept():
    awk = languages.Language("awk", ".awk", ("awk", "-f", "{file}", "{database}", "{nope}", "{print $1}"))
    assert awk.command(file="/opt/x.awk", database="/workspace/d.db") == [
        "awk", "-f", "/opt/x.awk", "/workspace/d.db", "{nope}", "{print $1}"]
    assert languages.PYTHON.command(file="f", python="/workspace/.venv/bin/python") == [
        "/workspace/.venv/bin/python", "-u", "f"]


def test_a_config_table_adds_a_language_for_that_settings_only():
    settings = Settings(node={"command": ["node", "{file}"], "extension": ".js", "apt": ["nodejs"],
                              "aliases": ["js"], "description": "JavaScript (Node.js)"})
    registry = languages.for_settings(settings)
    node = registry.get("js")
    assert (node.name, node.argv, node.extension, node.apt) == ("node", ("node", "{file}"), ".js", ("nodejs",))
    assert node.highlight == "javascript"  # from the extension
    assert registry.origin("node") == "config [languages.node]" and registry.problems == []
    assert "node" not in languages.LANGUAGES  # the shared registry is untouched
    assert languages.names(settings) == ["python", "r", "shell", "sql", "node"]
    assert languages.choices_text(settings) == "python, r, shell, sql or node"


@pytest.mark.parametrize("table, words", [
    ({"extension": ".js"}, 'config [languages.bad]: command is missing (e.g. command = ["node", "{file}"])'),
    ({"command": "node {file}", "extension": ".js"}, "config [languages.bad]: command must be a list of strings"),
    ({"command": [], "extension": ".js"}, "config [languages.bad]: command must be a list of strings"),
    ({"command": ["node", "{file}"]}, "config [languages.bad]: extension is missing"),
    ({"command": ["node", "{file}"], "extension": "js"}, "config [languages.bad]: bad extension 'js'"),
    ({"command": ["node", "{file}"], "extension": "./../x"}, "config [languages.bad]: bad extension"),
    ({"command": ["node"], "extension": ".js"}, "never names the code file ({file})"),
    ({"command": ["node", "{file}"], "extension": ".js", "apt": ["node js"]}, "'node js' is not a Debian package"),
    ({"command": ["node", "{file}"], "extension": ".js", "apt": "nodejs"}, "apt must be a list of strings"),
    ({"command": ["node", "{file}"], "extension": ".js", "comand": 1}, "unknown key 'comand'"),
    ({"command": ["node", "{file}"], "extension": ".js", "warm": ["{kernel}"]}, "warm may not use {kernel}"),
    ({"command": ["node", "{file}"], "extension": ".js", "warm": "node"}, "warm must be a list of strings"),
    ("node", "config [languages.bad] is not a table"),
])
def test_a_broken_table_is_one_line_naming_it_and_the_rest_works(table, words):
    settings = Settings(bad=table, node={"command": ["node", "{file}"], "extension": ".js"})
    registry = languages.for_settings(settings)
    assert registry.names() == ["python", "r", "shell", "sql", "node"]
    [problem] = registry.problems
    assert words in problem and problem.endswith("ignored") and "\n" not in problem
    with pytest.raises(UsageError, match=r"unknown language 'bad': config \[languages.bad\]"):
        languages.get("bad", settings)
    findings = languages.check(settings)
    assert findings[0].status == "ok" and "node (config [languages.node])" in findings[0].detail
    assert [(f.status, f.detail) for f in findings[1:]] == [("warn", problem)]


def test_a_table_may_not_take_a_built_in_name_or_a_bad_one():
    settings = Settings(python={"command": ["evil", "{file}"], "extension": ".py"},
                        **{"Bad Name": {"command": ["x", "{file}"], "extension": ".x"}})
    registry = languages.for_settings(settings)
    assert registry.get("python") is languages.PYTHON
    first, second = registry.problems
    assert "config [languages.python]: registers the language 'python', which built-in already has" in first
    assert "config [languages.Bad Name]" in second and "lowercase" in second


def _write_config(project: Project, text: str) -> None:
    (project.state_dir / "config.toml").write_text(text)


def test_a_project_table_applies_once_trusted_and_never_before(project):
    _write_config(project, NODE)
    settings, ignored = project.settings_and_ignored()
    assert not trust.state(project).trusted
    assert "node" not in languages.names(settings)
    assert ignored == ["languages.node (a language defined by the project runs a command of its choosing)"]
    trust.trust(project)
    settings, ignored = project.settings_and_ignored()
    assert ignored == [] and "node" in languages.names(settings)


def test_the_users_own_tables_apply_in_an_untrusted_project(project):
    from workbench import paths

    paths.ensure_dir(paths.user_config_dir())
    paths.user_config_file().write_text(NODE)
    _write_config(project, '[languages.perl]\ncommand = ["perl", "{file}"]\nextension = ".pl"\n')
    assert not trust.state(project).trusted
    names = languages.names(project.settings())
    assert "node" in names and "perl" not in names
    assert "node" in languages.names(load_settings(None))


def test_the_agent_grammar_parser_and_prompt_take_the_projects_languages():
    settings = Settings(node={"command": ["node", "{file}"], "extension": ".js", "aliases": ["js"]})
    vocabulary = A.Vocabulary.of(settings)
    assert vocabulary.languages == ("python", "r", "shell", "sql", "node")
    assert '"\\"node\\""' in vocabulary.grammar and '"\\"node\\""' not in A.GRAMMAR
    raw = '{"thought": "t", "action": "run_code", "language": "js", "code": "console.log(1)"}'
    assert A.parse(raw, vocabulary) == A.RunCode("t", "node", "console.log(1)")
    assert isinstance(A.parse(raw), A.Malformed)  # the defaults do not know it
    assert "Languages: python, r, shell, sql, node." in prompts.system_prompt(vocabulary)


def test_exec_names_a_broken_table_and_an_unknown_language_in_one_line(project, workbench_cmd):
    _write_config(project, '[languages.node]\nextension = ".js"\n')
    trust.trust(project)
    for language, words in (("node", b"config [languages.node]: command is missing"),
                            ("cobol", b"unknown language 'cobol'; choose one of: python, r, shell, sql")):
        done = subprocess.run([*workbench_cmd, "exec", "-p", str(project.root), "--lang", language, "-c", "1"],
                              capture_output=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and b"Traceback" not in done.stderr
        assert len(done.stderr.decode().strip().splitlines()) == 1, done.stderr


def test_exec_help_lists_the_registry_and_the_users_languages(workbench_cmd):
    from workbench import paths

    out = subprocess.run([*workbench_cmd, "exec", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "python, r, shell or sql" in " ".join(out.split())
    paths.ensure_dir(paths.user_config_dir())
    paths.user_config_file().write_text(NODE)
    out = subprocess.run([*workbench_cmd, "exec", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "python, r, shell, sql or node" in " ".join(out.split())
