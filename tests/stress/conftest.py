"""The stress tests reuse the daemon tests' fixtures: a tiny random-weight model, a daemon on a
free loopback UDP port, OSC clients (tests/server/conftest.py)."""

from tests.server.conftest import client_factory, daemon_factory, tiny_model  # noqa: F401
