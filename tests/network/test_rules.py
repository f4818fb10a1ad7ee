"""The [network] rules in .workbench/config.toml: parsed, written back without touching the rest of the
file, a broken rule named in one line, and an untrusted project's rules ignored."""

from __future__ import annotations

import pytest

from workbench.errors import WorkbenchError
from workbench.network import rules
from workbench.project import Project


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_CONFIG_DIR", str(tmp_path / "config"))
    return Project.init(tmp_path / "proj")


def test_rules_round_trip_and_the_rest_of_the_file_stays(project):
    config = project.root / ".workbench" / "config.toml"
    with project_change(project):
        config.write_text("# mine\n[sandbox]\ntimeout = 30  # keep\n")
    rules.add_rule(project.root, rules.http_rule("https://API.example.com/v2/", "GET,post", "tok",
                                                 "Authorization: Bearer {secret}"))
    rules.add_rule(project.root, rules.database_rule("postgres://db.lan/sales", "wh", "analyst"))
    text = config.read_text()
    assert text.startswith("# mine\n[sandbox]\ntimeout = 30  # keep\n") and "[[network.http]]" in text
    policy = rules.load_policy(project.root)
    assert policy.http == (rules.HttpRule("https", "api.example.com", 443, "/v2/", ("GET", "POST"), "tok",
                                          "Authorization: Bearer {secret}"),)
    assert policy.databases == (rules.DatabaseRule("db.lan", 5432, "sales", "wh", "analyst"),)
    assert project.settings().sandbox.timeout == 30  # the settings still load, the project still trusted
    rules.remove_rule(project.root, "https://api.example.com/v2/")
    assert rules.load_policy(project.root).http == ()
    with pytest.raises(WorkbenchError, match="no rule for"):
        rules.remove_rule(project.root, "https://api.example.com/v2/")


def project_change(project):
    from workbench import trust

    return trust.own_change(project)


@pytest.mark.parametrize("entry, problem", [
    ('url = "ftp://x/"', "scheme 'ftp' is not supported"),
    ('url = "http://x/"\nmethods = ["FETCH"]', "unknown method 'FETCH'"),
    ('url = "http://x/"\ncredential = "t"', "--credential and --inject go together"),
    ('url = "http://x/"\ncredential = "t"\ninject = "Authorization Bearer"', "is not 'Header-Name"),
    ('url = "http://u:p@x/"', "carries no user or password"),
    ('url = "http://x/a/../b"', "dot segments"),
    ('url = "http://x/"\nwhat = 1', "unknown key 'what'"),
])
def test_a_broken_rule_is_one_line_naming_it_and_the_problem(project, entry, problem):
    with project_change(project):
        (project.root / ".workbench" / "config.toml").write_text(f"[[network.http]]\n{entry}\n")
    with pytest.raises(WorkbenchError) as caught:
        rules.load_policy(project.root)
    line = caught.value.one_line()
    assert "network.http rule 1" in line and problem in line and "\n" not in line


def test_an_untrusted_projects_rules_are_ignored_and_say_so(project):
    rules.add_rule(project.root, rules.http_rule("http://127.0.0.1:9/"))
    from workbench import trust

    trust.revoke(project)
    policy = rules.load_policy(project.root)
    assert not policy and "ignored" in policy.ignored
    assert rules.written_policy(project.root).http  # what `network list` shows
    _settings, ignored = project.settings_and_ignored()
    assert any(line.startswith("network") and "widen" in line for line in ignored)
