"""The security tests reuse the sandbox fixtures (and their CI-fails / local-skips gate)."""

from tests.sandbox.conftest import engine_ready, module_project, recorder, sandbox  # noqa: F401
