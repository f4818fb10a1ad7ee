"""The security tests reuse the sandbox fixtures (and their CI-fails / local-skips gate)."""

from tests.network.fixtures import pg_recorder, pg_sandbox, pg_server  # noqa: F401, E402 - the database relay attacks
from tests.sandbox.conftest import engine_ready, module_project, recorder, sandbox  # noqa: F401
from tests.tui.conftest import demo, make, services  # noqa: F401, E402 - the inert-text tests drive the TUI
