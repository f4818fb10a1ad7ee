"""A configured language's own warm interpreter (`warm = [...]` in [languages.NAME]): the runner starts it
as given, hands it each cell as a file with the language's extension, and it keeps its state between
cells; a language without one says which have warm sessions."""

from __future__ import annotations

import subprocess

import pytest

from workbench import trust

pytestmark = pytest.mark.engine

# A POSIX-sh interpreter speaking the runner's cell protocol: a cell's path per line on $WB_IN, its status
# as {"status": N} on $WB_OUT.
CONFIG = r'''
[languages.posix]
command = ["sh", "{file}"]
extension = ".sh"
warm = ["sh", "-c", "while IFS= read -r cell <&$WB_IN; do . \"$cell\"; printf '{\"status\": %d}\\n' $? >&$WB_OUT; rm -f \"$cell\"; done"]

[languages.perl]
command = ["perl", "{file}"]
extension = ".pl"
'''


def test_a_configured_warm_interpreter_keeps_state_between_cells(engine_ready, project, workbench_cmd):
    (project.state_dir / "config.toml").write_text(CONFIG)
    trust.trust(project)

    def run(language: str, code: str) -> subprocess.CompletedProcess:
        return subprocess.run([*workbench_cmd, "exec", "-p", str(project.root), "--session", "s1", "--lang",
                               language, "-c", code], capture_output=True, timeout=300)

    try:
        first = run("posix", "x=41")
        assert first.returncode == 0, first.stderr
        second = run("posix", "echo $((x + 1)); exit_status_of_this_cell() { return 3; }; exit_status_of_this_cell")
        assert (second.returncode, second.stdout.strip()) == (3, b"42"), second.stderr
        python = run("python", "print('python too')")  # the built-in kernels still work beside it
        assert python.returncode == 0 and python.stdout.strip() == b"python too", python.stderr
        perl = run("perl", "print 1")
        assert perl.returncode == 2
        assert b"perl has no warm sessions (choose python, r, shell, posix" in perl.stderr
        assert len(perl.stderr.decode().strip().splitlines()) == 1
    finally:
        subprocess.run([*workbench_cmd, "session", "stop", "-p", str(project.root)], capture_output=True,
                       timeout=120)
