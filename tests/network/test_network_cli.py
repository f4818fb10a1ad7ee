"""`workbench secret` and `workbench network` as a user runs them: the value only from stdin and never
shown, the rules in the project's config by name only, and one-line errors for bad input that change
nothing."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.test_cli import assert_one_line_error

VALUE = "cli-" + "v4lue-77aa"


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "WORKBENCH_DATA_DIR": str(tmp_path / "data"), "WORKBENCH_CONFIG_DIR": str(tmp_path / "cfg"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "WORKBENCH_SERVICE": "0"}


def wb(cmd, env, *args, stdin=""):
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env)


def test_secrets_come_from_stdin_are_listed_by_name_and_kept_in_a_0600_file(workbench_cmd, env, tmp_path):
    result = wb(workbench_cmd, env, "secret", "set", "api", stdin=VALUE)
    assert result.returncode == 0 and "0600" in result.stdout and VALUE not in result.stdout + result.stderr
    store = tmp_path / "data" / "secrets.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    listed = wb(workbench_cmd, env, "secret", "list")
    assert listed.stdout.split() == ["api"] and VALUE not in listed.stdout + listed.stderr
    assert wb(workbench_cmd, env, "secret", "rm", "api").returncode == 0
    assert VALUE not in store.read_text()
    assert_one_line_error(wb(workbench_cmd, env, "secret", "rm", "api"), "no secret named 'api'")
    assert_one_line_error(wb(workbench_cmd, env, "secret", "set", "api", stdin=""), "no value on stdin")


def test_network_rules_by_name_only_and_one_line_errors(workbench_cmd, env, tmp_path):
    project = tmp_path / "proj"
    assert wb(workbench_cmd, env, "init", str(project)).returncode == 0
    config = project / ".workbench" / "config.toml"
    result = wb(workbench_cmd, env, "network", "allow", "-p", str(project), "https://api.example.com/v2/",
                "--method", "GET,POST", "--credential", "api", "--inject", "Authorization: Bearer {secret}")
    assert result.returncode == 0, result.stderr
    assert "workbench secret set api" in result.stderr  # not in the vault yet: said
    listed = wb(workbench_cmd, env, "network", "list", "-p", str(project))
    assert "https://api.example.com/v2/ (GET,POST, Authorization from secret api)" in listed.stdout
    before = config.read_text()
    for args, needle in [
        (["ftp://x/"], "scheme 'ftp' is not supported"),
        (["http://x/", "--credential", "api"], "--credential and --inject go together"),
        (["postgres://db/sales"], "needs --credential"),
        (["http://x/", "--method", "BREW"], "unknown method 'BREW'"),
    ]:
        assert_one_line_error(wb(workbench_cmd, env, "network", "allow", "-p", str(project), *args), needle)
        assert config.read_text() == before  # nothing else changed
    assert wb(workbench_cmd, env, "network", "remove", "-p", str(project), "https://api.example.com/v2/"
              ).returncode == 0
    assert "no network rules" in wb(workbench_cmd, env, "network", "list", "-p", str(project)).stdout


def test_an_untrusted_projects_rules_are_said_to_be_ignored(workbench_cmd, env, tmp_path):
    project = tmp_path / "proj"
    wb(workbench_cmd, env, "init", str(project))
    wb(workbench_cmd, env, "network", "allow", "-p", str(project), "http://127.0.0.1:9/")
    assert wb(workbench_cmd, env, "trust", "--revoke", "-p", str(project)).returncode == 0
    listed = wb(workbench_cmd, env, "network", "list", "-p", str(project))
    assert "http://127.0.0.1:9/" in listed.stdout and "network rules are ignored" in listed.stderr
