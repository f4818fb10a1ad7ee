"""The command line contract: help everywhere, one-line errors, exit codes."""

import subprocess

import pytest

CONTRACT = ["init", "exec", "install", "run", "audit", "report", "heartbeat", "memory", "doctor", "setup", "model"]


def run(cmd, *args, **kw):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, **kw)


def test_help_lists_the_whole_contract(workbench_cmd):
    result = run(workbench_cmd, "--help")
    assert result.returncode == 0
    for name in CONTRACT:
        assert f"  {name} " in result.stdout, name


@pytest.mark.parametrize("name", CONTRACT)
def test_each_subcommand_has_help(workbench_cmd, name):
    result = run(workbench_cmd, name, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def assert_one_line_error(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_exec_on_missing_project(workbench_cmd):
    result = run(workbench_cmd, "exec", "-p", "/nonexistent", "--lang", "python", "-c", "print(1)")
    assert_one_line_error(result, "/nonexistent", "does not exist")


def test_corrupt_config_is_named_and_kept(workbench_cmd, tmp_path):
    assert run(workbench_cmd, "init", str(tmp_path / "p")).returncode == 0
    config = tmp_path / "p" / ".workbench" / "config.toml"
    config.write_text("[sandbox\n")
    result = run(workbench_cmd, "exec", "-p", str(tmp_path / "p"), "--lang", "python", "-c", "print(1)")
    assert_one_line_error(result, str(config), "not valid TOML")
    assert config.read_text() == "[sandbox\n"


def test_unreadable_project_folder(workbench_cmd, tmp_path):
    # Root reads any folder, so make the state folder unusable the way a real mishap does.
    root = tmp_path / "p"
    root.mkdir()
    (root / ".workbench").write_text("not a folder")
    result = run(workbench_cmd, "exec", "-p", str(root), "--lang", "python", "-c", "print(1)")
    assert_one_line_error(result, ".workbench", "is a file")
    assert (root / ".workbench").read_text() == "not a folder"


def test_init_then_reopen(workbench_cmd, tmp_path):
    first = run(workbench_cmd, "init", str(tmp_path / "p"))
    second = run(workbench_cmd, "init", str(tmp_path / "p"))
    assert first.returncode == second.returncode == 0
    assert (tmp_path / "p" / "workspace").is_dir()


def test_unknown_command(workbench_cmd):
    result = run(workbench_cmd, "--no-such-flag")
    assert_one_line_error(result, "no-such-flag")
    assert result.returncode == 2
