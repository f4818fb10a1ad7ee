"""The container-side files in the base image they run in: the R kernel parses with the image's R, the
shell kernel with its bash, every .py with its python3 (the version the image has, not the host's)."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import run

pytestmark = pytest.mark.engine


@pytest.fixture
def sandbox(project):
    from tests.conftest import need
    from workbench.config import Settings
    from workbench.sandbox import BASE_IMAGE, Sandbox, image_present, probe

    found = probe(Settings())
    need(found.reachable, f"a container engine ({found.error}; run packaging/setup-engine.sh)")
    need(image_present(settings=Settings()), f"the base image {BASE_IMAGE} (run: workbench setup)")
    with Sandbox.open(project) as box:
        yield box


def test_the_installed_files_parse_in_the_image(sandbox):
    checks = {
        "r": "invisible(parse(file = '/opt/workbench/kernels/r.R')); cat('parsed\\n')",
        "shell": "bash -n /opt/workbench/kernels/shell.sh && /usr/bin/python3 -c \"import ast, sys\n"
                 "for path in sys.argv[1:]: ast.parse(open(path).read(), path)\n"
                 "print('parsed')\" /opt/workbench/*.py /opt/workbench/kernels/*.py",
    }
    for language, code in checks.items():
        result, _ = run(sandbox, language, code)
        assert result.ok and result.stdout.kept == b"parsed\n", (language, result.stderr.text())
