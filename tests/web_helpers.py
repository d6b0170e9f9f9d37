"""Signing in from a Flask test client: shared by the dashboard, admin, API and auth tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import argon2
import pytest
from flask import Flask
from flask.testing import FlaskClient

from store import users as store_users

PASSWORD = "correct horse battery"
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production argon2 costs ~0.1 s a hash and these tests sign in dozens of times; the
    # one test about hashing strength undoes this and uses the real parameters.
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(store_users, "PASSWORD_HASHER", cheap)
    monkeypatch.setattr(store_users, "_dummy_hash", None)


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a page carries in its <meta> tag."""
    match = _META.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF meta tag on {path}"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD,
          next_url: str | None = None, **kwargs):
    data = {"username": username, "password": password, "csrf_token": csrf_token(client)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data, **kwargs)


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    r = login(client, username)
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


# Console messages about the Content-Security-Policy, from the browser tests' pages: a page
# that needs an inline script or style the policy refuses logs one, and must not.
CSP_VIOLATIONS: list[str] = []


def watch_csp(message: Any) -> None:
    """A Playwright console listener: `page.on("console", watch_csp)`."""
    if "Content Security Policy" in message.text:
        CSP_VIOLATIONS.append(message.text)


def csp_fixture() -> Any:
    """An autouse fixture failing the test when a watched page logged a CSP violation."""

    @pytest.fixture(autouse=True)
    def no_csp_violations() -> Iterator[None]:
        CSP_VIOLATIONS.clear()
        yield
        assert CSP_VIOLATIONS == []

    return no_csp_violations
