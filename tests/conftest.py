"""Shared fixtures: both pipeline modes, loaded once per test session."""

from __future__ import annotations

import os
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
