import pytest

from workbench.config import load_settings
from workbench.errors import ConfigError
from workbench.project import Project


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_defaults_without_files():
    settings = load_settings()
    assert settings.sandbox.memory == "2g"
    assert settings.agent.approval == "auto"


def test_precedence_user_project_env_flags(tmp_path, monkeypatch):
    from workbench import paths

    project = Project.init(tmp_path / "p")
    write(paths.user_config_file(), "[sandbox]\nmemory = '1g'\ncpus = 1.5\npids = 100\ntimeout = 10\n")
    write(project.config_file, "[sandbox]\ncpus = 3.0\npids = 200\ntimeout = 20\n")
    monkeypatch.setenv("WORKBENCH_SANDBOX__PIDS", "300")
    monkeypatch.setenv("WORKBENCH_SANDBOX__TIMEOUT", "30")
    settings = load_settings(project.root, {"sandbox": {"timeout": 40}})
    assert settings.sandbox.memory == "1g"  # user file only
    assert settings.sandbox.cpus == 3.0  # project beats user
    assert settings.sandbox.pids == 300  # env beats project
    assert settings.sandbox.timeout == 40  # flag beats env


def test_corrupt_project_toml_names_the_file(tmp_path):
    project = Project.init(tmp_path / "p")
    write(project.config_file, "[sandbox\nmemory = ")
    before = project.config_file.read_bytes()
    with pytest.raises(ConfigError) as err:
        load_settings(project.root)
    assert str(project.config_file) in err.value.one_line()
    assert "not valid TOML" in err.value.one_line()
    assert project.config_file.read_bytes() == before


def test_invalid_value_names_setting_and_file(tmp_path):
    project = Project.init(tmp_path / "p")
    write(project.config_file, "[sandbox]\npids = 'many'\n")
    with pytest.raises(ConfigError, match=r"sandbox\.pids") as err:
        load_settings(project.root)
    assert str(project.config_file) in err.value.one_line()


def test_unknown_section_is_refused(tmp_path):
    project = Project.init(tmp_path / "p")
    write(project.config_file, "[sandbx]\nmemory = '1g'\n")
    with pytest.raises(ConfigError, match="sandbx"):
        load_settings(project.root)


def test_non_utf8_file(tmp_path):
    project = Project.init(tmp_path / "p")
    project.config_file.write_bytes(b"[sandbox]\nmemory = '\xff\xfe'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(project.root)
