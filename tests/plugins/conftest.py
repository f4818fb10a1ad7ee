"""The sandbox tests' engine fixture, for the plug-in tests that run code for real."""

from tests.sandbox.conftest import engine_ready  # noqa: F401
