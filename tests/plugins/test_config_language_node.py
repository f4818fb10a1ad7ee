"""A language from configuration alone, for real: JavaScript via Debian's `nodejs`, which the base image
lacks. `[languages.node]` names the command, the extension and the apt package; the first execution in
node installs the package into the project image (the ordinary apt install path, from the image's own
apt sources through the install egress proxy, recorded as `package.installed`), later ones find it there.
The agent's grammar and prompt offer node, and its run_code runs it; `workbench exec --lang node` does too.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.agent.fakes import ScriptedLLM
from tests.sandbox.conftest import Recorder
from workbench import trust

pytestmark = pytest.mark.engine

NODE = '[languages.node]\ncommand = ["node", "{file}"]\nextension = ".js"\napt = ["nodejs"]\n'
RUN = ('{"thought": "compute it in node", "action": "run_code", "language": "node", '
       '"code": "console.log([1, 2, 3, 4].reduce((a, b) => a * b, 1) + 18)"}')
FINISH = '{"thought": "printed", "action": "finish", "answer": "42", "success": true}'


@pytest.fixture
def node_project(project):
    (project.state_dir / "config.toml").write_text(NODE)
    trust.trust(project)  # the user's own edit, trusted (an untrusted project's [languages] are ignored)
    return project


def _package_events(project) -> list[dict]:
    from workbench.audit import AuditLog

    with AuditLog.open(project, create=False) as log:
        return [entry.payload for entry in log.entries() if entry.kind == "package.installed"]


def test_a_config_language_installs_its_apt_packages_on_first_use_and_runs(engine_ready, node_project,
                                                                             workbench_cmd):
    from workbench.agent.runner import run_task
    from workbench.session import WorkSession

    recorder = Recorder()
    llm = ScriptedLLM([RUN, FINISH])
    with WorkSession.open(node_project, bus=recorder.bus, details={"command": "test"}) as session:
        outcome = run_task(session, "Multiply 1 to 4 and add 18, in JavaScript.", llm, approve=None, memory=None)
    assert outcome.success, (outcome, llm.observations())
    assert "Languages: python, r, shell, sql, node." in llm.prompts[0][0]["content"]
    kinds = recorder.kinds()
    installed = [e.payload for e in recorder.of("package.installed")]
    assert [(p["name"], p["manager"]) for p in installed if p["name"] == "nodejs"] == [("nodejs", "apt")]
    assert kinds.index("package.installed") < kinds.index("exec.started")  # installed before it ran
    [started] = recorder.of("exec.started")
    assert started.payload["language"] == "node"
    [finished] = recorder.of("exec.finished")
    assert finished.payload["exit_code"] == 0

    # A later session (and process) finds node in the project image: it runs, and nothing is installed again.
    done = subprocess.run([*workbench_cmd, "exec", "-p", str(node_project.root), "--lang", "node", "-c",
                           "console.log(process.version.startsWith('v'), 6 * 7)"], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "true 42"
    assert b"installing" not in done.stderr  # exec says so when a language's packages install on first use
    assert [p["name"] for p in _package_events(node_project)].count("nodejs") == 1


def test_an_untrusted_projects_language_never_installs_or_runs(engine_ready, project, workbench_cmd):
    (project.state_dir / "config.toml").write_text(NODE)  # edited behind Workbench's back: restricted
    done = subprocess.run([*workbench_cmd, "exec", "-p", str(project.root), "--lang", "node", "-c", "1"],
                          capture_output=True, timeout=120)
    assert done.returncode == 2 and b"unknown language 'node'" in done.stderr, done.stderr
    # refused before any session opened: nothing ran, nothing was installed or logged
    assert not (project.state_dir / "audit.db").exists() or _package_events(project) == []
