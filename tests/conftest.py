"""Shared fixtures: both pipeline modes, loaded once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PMGUARD_SHARED", ROOT.parent / "shared"))

MODES = ("auto", "blank")


@pytest.fixture(params=MODES, ids=["trained", "blank"])
def model(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests must not depend on (or write to) the developer's ~/.cache; the derived name
    # table is rebuilt once per session in a temporary folder.
    os.environ.setdefault("PMGUARD_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it (for SQLite, not even the file); the
    PostgreSQL variant skips where the server is absent and fails instead under CI."""
    from store.testing import temporary_database, unreachable_reason
    from tests.service_env import unavailable

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'pmguard.db'}"
        return
    reason = unreachable_reason()
    if reason:
        unavailable(reason)
    with temporary_database() as url:
        yield url
