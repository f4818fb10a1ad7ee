"""Fixtures for database access (defined in tests/network/fixtures.py, shared with tests/security)."""

from tests.network.fixtures import pg_recorder, pg_sandbox, pg_server  # noqa: F401
from tests.sandbox.conftest import engine_ready, module_project  # noqa: F401
