"""Kept for the fakes' imports: the local server now lives in sandbox/server.py."""

from sandbox.server import LocalServer, QuietHandler  # noqa: F401
