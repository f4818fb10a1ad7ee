import json

import pytest

from workbench.errors import ProjectError
from workbench.project import FORMAT_VERSION, MIGRATIONS, Project


def test_init_creates_layout_and_stamp(tmp_path):
    project = Project.init(tmp_path / "p")
    assert project.workspace.is_dir()
    assert project.memory_dir.is_dir()
    manifest = json.loads((project.state_dir / "project.json").read_text())
    assert manifest["format"] == FORMAT_VERSION
    assert manifest["id"] == project.id and len(project.id) == 32


def test_reopen_keeps_identity_and_files(tmp_path):
    first = Project.init(tmp_path / "p")
    (first.workspace / "data.csv").write_text("a,b\n1,2\n")
    again = Project.open(tmp_path / "p")
    assert again.id == first.id
    assert (again.workspace / "data.csv").read_text() == "a,b\n1,2\n"
    assert Project.init(tmp_path / "p").id == first.id  # init on a project is harmless


def test_open_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ProjectError, match="does not exist") as err:
        Project.open(tmp_path / "nope")
    assert "workbench init" in err.value.one_line()


def test_open_plain_folder_is_not_a_project(tmp_path):
    with pytest.raises(ProjectError, match="not a Workbench project"):
        Project.open(tmp_path)


def test_open_with_create_makes_it(tmp_path):
    project = Project.open(tmp_path / "new", create=True)
    assert project.workspace.is_dir()


def test_damaged_manifest_is_named_and_left_alone(tmp_path):
    project = Project.init(tmp_path / "p")
    manifest = project.state_dir / "project.json"
    manifest.write_text("{not json")
    with pytest.raises(ProjectError, match="project.json is damaged"):
        Project.open(project.root)
    assert manifest.read_text() == "{not json"


def test_state_folder_that_is_a_file(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / ".workbench").write_text("oops")
    with pytest.raises(ProjectError, match="is a file"):
        Project.open(root)


def test_newer_format_is_refused(tmp_path):
    project = Project.init(tmp_path / "p")
    manifest = project.state_dir / "project.json"
    data = json.loads(manifest.read_text())
    data["format"] = FORMAT_VERSION + 5
    manifest.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="newer Workbench"):
        Project.open(project.root)


def test_migration_steps_run_in_order_and_are_recorded(tmp_path, monkeypatch):
    project = Project.init(tmp_path / "p")
    manifest = project.state_dir / "project.json"
    data = json.loads(manifest.read_text())
    data["format"] = FORMAT_VERSION - 1
    manifest.write_text(json.dumps(data))
    seen = []
    monkeypatch.setitem(MIGRATIONS, FORMAT_VERSION - 1,
                        ("add-notes-folder", lambda p, m: seen.append(p.root)))
    reopened = Project.open(project.root)
    assert seen == [project.root]
    assert reopened.format == FORMAT_VERSION
    recorded = json.loads(manifest.read_text())["migrations"]
    assert recorded[-1]["name"] == "add-notes-folder"
