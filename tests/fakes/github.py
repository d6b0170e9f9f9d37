"""The fake GitHub the tests use: the sandbox tracker (sandbox/github.py), as a fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.github import DEFAULT_TOKEN, FakeGitHub  # noqa: F401


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A started fake GitHub, stopped after the test."""
    with FakeGitHub() as fake:
        yield fake
