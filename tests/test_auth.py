"""Sign-in, roles, CSRF and API tokens through the Flask test client.

Every role check runs from one table of (role, method, path, expected status) over a
test-only blueprint plus the real account pages; a second check makes sure no registered
view outside a short public list was left without `requires`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import argon2
import pytest
from flask import Blueprint, Flask, jsonify
from flask_login import current_user
from sqlalchemy import select

from app import create_app
from settings import SettingsError, load_settings
from store import users as store_users
from store.db import session_scope
from store.models import ApiToken, User
from tests.service_env import ServiceEnv, make_settings
from tests.web_helpers import (  # noqa: F401
    PASSWORD,
    cheap_hashing,
    csrf_token,
    login,
    signed_in,
)
from web.auth import IP_LIMIT, LIMITER, MemoryLoginLimiter, requires, safe_next

ROLES = ("engineer", "incident_manager", "admin")

# --- a test-only blueprint: one page and one API view per role, read and write ----------

probe = Blueprint("probe", __name__)


def _who() -> dict:
    return {"user": current_user.username, "role": current_user.role}


@probe.get("/probe/read")
@requires("engineer")
def page_read() -> str:
    return f"read by {current_user.username}"


@probe.post("/probe/review")
@requires("incident_manager")
def page_review() -> str:
    return "reviewed"


@probe.post("/probe/admin")
@requires("admin")
def page_admin() -> str:
    return "administered"


@probe.get("/api/probe/read")
@requires("engineer")
def api_read():
    return jsonify(_who())


@probe.post("/api/probe/review")
@requires("incident_manager")
def api_review():
    return jsonify(_who())


@probe.post("/api/probe/admin")
@requires("admin")
def api_admin():
    return jsonify(_who())


# --- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ServiceEnv]:
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "",
        github_url="https://api.github.invalid",
        github_token="t",
    )
    e = ServiceEnv(settings, "pmguard-auth")
    e.app.register_blueprint(probe)
    for role in ROLES:
        add_user(e.app, role, role)
    yield e
    e.stop()


@pytest.fixture
def app(env: ServiceEnv) -> Flask:
    return env.app


def add_user(app: Flask, name: str, role: str, password: str = PASSWORD) -> None:
    with session_scope(app.extensions["pmguard"].sessions) as db:
        store_users.create_user(db, name, password, role)


def db_user(app: Flask, name: str) -> User:
    with session_scope(app.extensions["pmguard"].sessions) as db:
        user = store_users.get_user(db, name)
        assert user is not None
        return user


def run(app: Flask, fn, *args):
    with session_scope(app.extensions["pmguard"].sessions) as db:
        return fn(db, *args)


def new_token(app: Flask, username: str, name: str = "ci") -> str:
    return run(app, store_users.create_token, username, name)[1]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- signing in and out -----------------------------------------------------------------


def test_login_success_opens_a_session_with_safe_cookie_flags(app: Flask) -> None:
    client = app.test_client()
    r = login(client, "Engineer")  # usernames are case-insensitive
    assert r.status_code == 302
    assert r.headers["Location"] == "/incidents"  # the dashboard's queue is the start page
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http, no PMGUARD_SECURE_COOKIES
    page = client.get("/account")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "engineer" in html and "Engineer" in html
    assert db_user(app, "engineer").last_login_at is not None


def test_https_requests_get_secure_cookies(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/login", base_url="https://pmguard.example").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    r = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": token},
        base_url="https://pmguard.example",
        headers={"Referer": "https://pmguard.example/login"},  # Flask-WTF's HTTPS check
    )
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"]


def test_secure_cookies_forced_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMGUARD_SECURE_COOKIES", "1")
    e = ServiceEnv(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", ""), "q")
    try:
        add_user(e.app, "ana", "engineer")
        r = login(e.app.test_client(), "ana")
        assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]
    finally:
        e.stop()


@pytest.mark.parametrize("username", ["engineer", "nobody"])
def test_wrong_password_or_unknown_user_gets_one_message(app: Flask, username: str) -> None:
    r = login(app.test_client(), username, "not the password at all")
    assert r.status_code == 200
    assert "Wrong username or password." in r.get_data(as_text=True)
    if username == "engineer":
        user = db_user(app, "engineer")
        assert user.failed_logins == 1 and user.last_failed_login_at is not None


def from_address(app: Flask, address: str, **headers: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    client.environ_base.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return client


@pytest.fixture
def pauses(app: Flask) -> list[float]:
    """The limiter's slow-downs, recorded instead of slept."""
    slept: list[float] = []
    app.extensions[LIMITER] = MemoryLoginLimiter(sleep=slept.append)
    return slept


def test_strangers_cannot_lock_out_a_named_user(app: Flask, pauses: list[float]) -> None:
    # Twenty wrong passwords for "admin" from twenty other addresses...
    for i in range(20):
        r = login(from_address(app, f"10.0.1.{i + 1}"), "admin", "wrong password here")
        assert r.status_code == 200
    # ...slow sign-ins for that name down, but the admin still signs in from their own.
    assert login(from_address(app, "10.0.0.7"), "admin").status_code == 302
    assert pauses and max(pauses) <= MemoryLoginLimiter.MAX_PAUSE


def test_failures_for_a_name_only_slow_it_down_a_little(app: Flask, pauses: list[float]) -> None:
    for i in range(5):
        login(from_address(app, f"10.0.1.{i + 1}"), "engineer", "wrong password here")
    assert pauses == []  # the first few mistakes cost nothing
    for i in range(5, 30):
        login(from_address(app, f"10.0.1.{i + 1}"), "engineer", "wrong password here")
    assert pauses == sorted(pauses) and 0 < pauses[0] < pauses[-1] == MemoryLoginLimiter.MAX_PAUSE


def test_five_failures_from_one_address_for_one_user_then_429(app: Flask) -> None:
    attacker = from_address(app, "10.0.0.66")
    for _ in range(5):
        assert login(attacker, "engineer", "wrong password here").status_code == 200
    r = login(attacker, "engineer")  # even the right password is not tried any more
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in r.get_data(as_text=True)
    # The same account from elsewhere, and other accounts from there, are not affected.
    assert login(from_address(app, "10.0.0.7"), "engineer").status_code == 302
    assert login(attacker, "admin").status_code == 302


def test_one_address_failing_against_many_users_is_limited(app: Flask) -> None:
    now = [1000.0]
    app.extensions[LIMITER] = MemoryLoginLimiter(clock=lambda: now[0], sleep=lambda _s: None)
    client = app.test_client()
    for i in range(IP_LIMIT):
        assert login(client, f"someone{i}", "wrong password here").status_code == 200
    assert login(client, "admin").status_code == 429  # a new name, same address
    assert login(from_address(app, "10.0.0.7"), "admin").status_code == 302
    now[0] += timedelta(minutes=15).total_seconds()
    assert login(client, "admin").status_code == 302


@pytest.mark.parametrize("hops", [0, 1])
def test_client_address_comes_from_trusted_proxies_only(env: ServiceEnv, hops: int) -> None:
    app = create_app(replace(env.service.settings, trusted_proxies=hops), service=env.service)
    for i in range(5):
        # Every request arrives from the proxy; the client is in X-Forwarded-For.
        client = from_address(app, "10.9.9.9", x_forwarded_for=f"203.0.113.{i % 2}")
        assert login(client, "engineer", "wrong password here").status_code == 200
    third = from_address(app, "10.9.9.9", x_forwarded_for="203.0.113.3")
    if hops:
        # Behind the proxy each client counts on its own: one's mistakes lock nobody out.
        assert login(third, "engineer").status_code == 302
    else:
        # Without a trusted proxy the header is the client's to forge, so it is ignored.
        assert login(third, "engineer").status_code == 429


def test_trusted_proxies_setting(tmp_path: Path) -> None:
    assert load_settings(env={}).trusted_proxies == 0
    assert load_settings(env={"PMGUARD_TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    with pytest.raises(SettingsError, match="trusted_proxies"):
        load_settings(env={"PMGUARD_TRUSTED_PROXIES": "-1"})


def test_successful_login_clears_the_username_count(app: Flask) -> None:
    client = app.test_client()
    for _ in range(4):
        login(client, "engineer", "wrong password here")
    assert login(client, "engineer").status_code == 302
    limiter = app.extensions[LIMITER]
    assert limiter.retry_after(["user:engineer"]) is None


def test_disabled_user_cannot_sign_in_and_loses_open_sessions(app: Flask) -> None:
    client = signed_in(app, "engineer")
    assert client.get("/account").status_code == 200
    run(app, store_users.set_disabled, "engineer", True)
    r = client.get("/account")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    r = login(app.test_client(), "engineer")
    assert r.status_code == 403
    assert "disabled" in r.get_data(as_text=True)


def test_password_reset_ends_open_sessions(app: Flask) -> None:
    client = signed_in(app, "engineer")
    run(app, store_users.set_password, "engineer", "a brand new passphrase")
    assert client.get("/account").status_code == 302
    assert login(app.test_client(), "engineer", "a brand new passphrase").status_code == 302


def test_logout_is_a_post_that_ends_the_session(app: Flask) -> None:
    client = signed_in(app, "engineer")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    r = client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert client.get("/account").status_code == 302


def copy_of(app: Flask, client) -> object:
    """Another browser holding a copy of `client`'s session cookie."""
    thief = app.test_client()
    cookie = client.get_cookie("session")
    thief.set_cookie("session", cookie.value)
    return thief


def test_sign_out_ends_the_session_on_the_server(app: Flask) -> None:
    client = signed_in(app, "engineer")
    thief = copy_of(app, client)
    assert thief.get("/account").status_code == 200  # the copy works while signed in
    r = client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert r.status_code == 302
    # The copied cookie is still validly signed and unexpired, but no longer loads a user.
    r = thief.get("/account")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert db_user(app, "engineer").session_generation == 1
    # Signing in again opens a new session that works.
    assert signed_in(app, "engineer").get("/account").status_code == 200


def test_a_password_change_moves_the_session_generation(app: Flask) -> None:
    run(app, store_users.set_password, "engineer", "a brand new passphrase")
    assert db_user(app, "engineer").session_generation == 1


def test_anonymous_page_request_redirects_to_login_and_back(app: Flask) -> None:
    client = app.test_client()
    r = client.get("/probe/read?x=1")
    assert r.status_code == 302
    assert r.headers["Location"] == "/login?next=/probe/read?x%3D1"
    r = login(client, "engineer", next_url="/probe/read?x=1")
    assert r.status_code == 302 and r.headers["Location"] == "/probe/read?x=1"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "http:/evil.example",
        "evil.example",
    ],
)
def test_next_never_leaves_the_site(app: Flask, target: str) -> None:
    r = login(app.test_client(), "engineer", next_url=target)
    assert r.status_code == 302
    assert r.headers["Location"] == "/incidents"  # the start page, not the target
    assert safe_next(target) is None


@pytest.mark.parametrize("dashboard", [False, True])
def test_index_goes_to_incidents_only_when_that_page_exists(
    tmp_path: Path, dashboard: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.auth

    e = ServiceEnv(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", ""), "q")
    try:
        if not dashboard:  # a start page that is not registered: fall back to /account
            monkeypatch.setattr(web.auth, "HOME", "/no-such-page")
        add_user(e.app, "ana", "engineer")
        client = signed_in(e.app, "ana")
        assert client.get("/").headers["Location"] == ("/incidents" if dashboard else "/account")
        # Signing in goes to the same start page.
        r = login(e.app.test_client(), "ana")
        assert r.headers["Location"] == ("/incidents" if dashboard else "/account")
    finally:
        e.stop()


# --- roles ------------------------------------------------------------------------------

ANON = None
ROLE_TABLE = [
    # (role, method, path, expected status)
    *[(role, "GET", "/probe/read", 200) for role in ROLES],
    ("engineer", "POST", "/probe/review", 403),
    ("incident_manager", "POST", "/probe/review", 200),
    ("admin", "POST", "/probe/review", 200),
    ("engineer", "POST", "/probe/admin", 403),
    ("incident_manager", "POST", "/probe/admin", 403),
    ("admin", "POST", "/probe/admin", 200),
    *[(role, "GET", "/api/probe/read", 200) for role in ROLES],
    ("engineer", "POST", "/api/probe/review", 403),
    ("incident_manager", "POST", "/api/probe/review", 200),
    ("admin", "POST", "/api/probe/review", 200),
    ("engineer", "POST", "/api/probe/admin", 403),
    ("incident_manager", "POST", "/api/probe/admin", 403),
    ("admin", "POST", "/api/probe/admin", 200),
    *[(role, "GET", "/account", 200) for role in ROLES],
    *[(role, "GET", "/", 302) for role in ROLES],
    (ANON, "GET", "/probe/read", 302),
    (ANON, "POST", "/probe/review", 302),
    (ANON, "POST", "/probe/admin", 302),
    (ANON, "GET", "/api/probe/read", 401),
    (ANON, "POST", "/api/probe/review", 401),
    (ANON, "POST", "/api/probe/admin", 401),
    (ANON, "GET", "/account", 302),
    (ANON, "POST", "/account/tokens", 302),
    (ANON, "POST", "/account/password", 302),
    (ANON, "GET", "/", 302),
    (ANON, "GET", "/login", 200),
    (ANON, "GET", "/healthz", 200),
]


# API views run twice: signed in with a session cookie and with the role's API token.
ROLE_CASES = [
    pytest.param(
        role, method, path, expected, via, id=f"{role or 'anonymous'}-{via}-{method}-{path}"
    )
    for role, method, path, expected in ROLE_TABLE
    for via in (("session", "token") if role and path.startswith("/api/") else ("session",))
]


@pytest.mark.parametrize(("role", "method", "path", "expected", "via"), ROLE_CASES)
def test_role_table(
    app: Flask, role: str | None, method: str, path: str, expected: int, via: str
) -> None:
    api = path.startswith("/api/")
    if via == "token" and not (api and role):
        pytest.skip("API tokens only authenticate signed-in roles under /api/")
    headers: dict[str, str] = {}
    if role is None:
        client = app.test_client()
        headers["X-CSRFToken"] = csrf_token(client)
    elif via == "token":
        client = app.test_client()
        headers.update(bearer(new_token(app, role)))
    else:
        client = signed_in(app, role)
        headers["X-CSRFToken"] = csrf_token(client, "/account")
    r = client.open(path, method=method, headers=headers)
    assert r.status_code == expected, r.get_data(as_text=True)[:300]
    if api and expected in (401, 403):
        assert r.is_json and r.get_json()["error"]
    if api and expected == 200:
        assert r.get_json() == {"user": role, "role": role}
    if expected == 403 and not api:
        html = r.get_data(as_text=True)
        assert "Not permitted" in html and "role" in html
    if expected == 302 and role is None:
        assert r.headers["Location"].startswith("/login?next=")


# Probes and Prometheus scrape without a sign-in; keep /metrics on the internal network.
PUBLIC_ENDPOINTS = {
    "static",
    "ops.healthz",
    "ops.readyz",
    "ops.metrics",
    "auth.login",
    "auth.logout",
}


def test_every_view_states_the_role_it_needs(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.startswith("webhooks."):
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_role", None) in ROLES, (
            f"{rule.rule} ({rule.endpoint}) has no @requires(role)"
        )


def test_requires_refuses_an_unknown_role_at_import() -> None:
    with pytest.raises(store_users.BadRole):
        requires("superuser")


# --- CSRF -------------------------------------------------------------------------------


def test_forms_need_a_csrf_token(app: Flask) -> None:
    client = app.test_client()
    r = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)
    client = signed_in(app, "engineer")
    assert client.post("/account/tokens", data={"name": "ci"}).status_code == 400
    r = client.post(
        "/account/tokens",
        data={"name": "ci", "csrf_token": "forged"},
    )
    assert r.status_code == 400
    r = client.post(
        "/account/tokens", data={"name": "ci", "csrf_token": csrf_token(client, "/account")}
    )
    assert r.status_code == 200


def test_webhooks_take_signed_posts_without_csrf(env: ServiceEnv) -> None:
    r = env.github("ping", {"zen": "Design for failure.", "hook_id": 1})
    assert r.status_code == 200 and r.get_json()["pong"] is True
    closed = {
        "action": "closed",
        "issue": {
            "number": 3,
            "state": "closed",
            "state_reason": "completed",
            "title": "x",
            "labels": [{"name": "incident"}],
            "user": {"login": "a"},
        },
        "repository": {"full_name": "acme/ops"},
        "sender": {"login": "ana", "type": "User"},
    }
    assert env.github("issues", closed).status_code == 202
    # Still signature-checked: CSRF exemption is not an authentication exemption.
    assert env.github("issues", closed, signature="sha256=" + "0" * 64).status_code == 401


def test_session_cookie_api_posts_need_csrf(app: Flask) -> None:
    client = signed_in(app, "admin")
    r = client.post("/api/probe/review")
    assert r.status_code == 400 and "CSRF" in r.get_json()["error"]
    r = client.post("/api/probe/review", headers={"X-CSRFToken": csrf_token(client, "/account")})
    assert r.status_code == 200 and r.get_json()["user"] == "admin"


# --- API tokens -------------------------------------------------------------------------


def test_api_token_authenticates_and_records_use(app: Flask) -> None:
    token = new_token(app, "incident_manager")
    client = app.test_client()
    r = client.post("/api/probe/review", headers=bearer(token))  # no CSRF needed
    assert r.status_code == 200 and r.get_json()["user"] == "incident_manager"
    assert "Set-Cookie" not in r.headers  # a token call opens no session
    with session_scope(app.extensions["pmguard"].sessions) as db:
        row = db.scalar(select(ApiToken).where(ApiToken.name == "ci"))
        assert row.last_used_at is not None
        assert token not in (row.token_hash, row.prefix)
        assert row.token_hash == store_users.token_hash(token)


@pytest.mark.parametrize("case", ["wrong", "revoked", "disabled", "malformed", "empty"])
def test_api_token_refused(app: Flask, case: str) -> None:
    token = new_token(app, "admin")
    if case == "wrong":
        token = store_users.TOKEN_PREFIX + "x" * 43
    elif case == "revoked":
        user = db_user(app, "admin")
        token_id = run(app, store_users.tokens_for, user.id)[0].id
        run(app, store_users.revoke_token, user.id, token_id)
    elif case == "disabled":
        run(app, store_users.set_disabled, "admin", True)
    elif case == "malformed":
        token = "not-a-pmguard-token"
    elif case == "empty":
        token = ""
    client = app.test_client()
    for method in ("GET", "POST"):
        path = "/api/probe/read" if method == "GET" else "/api/probe/admin"
        r = client.open(path, method=method, headers=bearer(token))
        assert r.status_code == 401, (method, r.get_data(as_text=True))
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in r.get_json()["error"]


def test_a_bearer_token_decides_even_with_a_session_cookie(app: Flask) -> None:
    client = signed_in(app, "admin")
    r = client.get("/api/probe/read", headers=bearer("pmg_wrong"))
    assert r.status_code == 401
    engineer_token = new_token(app, "engineer")
    r = client.post("/api/probe/admin", headers=bearer(engineer_token))
    assert r.status_code == 403  # the token's user (engineer), not the cookie's (admin)


def test_tokens_do_not_open_pages(app: Flask) -> None:
    token = new_token(app, "admin")
    r = app.test_client().get("/probe/read", headers=bearer(token))
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


# --- the account page -------------------------------------------------------------------


def test_account_creates_a_token_shown_once_and_revokes_it(app: Flask) -> None:
    client = signed_in(app, "engineer")
    r = client.post(
        "/account/tokens", data={"name": "ci", "csrf_token": csrf_token(client, "/account")}
    )
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    shown = re.search(r'value="(pmg_[^"]+)"', r.get_data(as_text=True))
    assert shown, "the new token is on the page"
    token = shown.group(1)
    assert app.test_client().get("/api/probe/read", headers=bearer(token)).status_code == 200

    page = client.get("/account").get_data(as_text=True)
    assert token not in page and "ci" in page and "active" in page

    # A second live token with the same name is refused with a message.
    r = client.post(
        "/account/tokens", data={"name": "ci", "csrf_token": csrf_token(client, "/account")}
    )
    assert r.status_code == 400 and "already has a token named" in r.get_data(as_text=True)

    token_id = int(re.search(r"/account/tokens/(\d+)/revoke", page).group(1))
    r = client.post(
        f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/account")}
    )
    assert r.status_code == 302
    assert "revoked" in client.get("/account").get_data(as_text=True)
    assert app.test_client().get("/api/probe/read", headers=bearer(token)).status_code == 401


def test_nobody_revokes_another_users_token(app: Flask) -> None:
    new_token(app, "admin")
    admin_token_id = run(app, store_users.tokens_for, db_user(app, "admin").id)[0].id
    client = signed_in(app, "engineer")
    r = client.post(
        f"/account/tokens/{admin_token_id}/revoke",
        data={"csrf_token": csrf_token(client, "/account")},
    )
    assert r.status_code == 404
    assert not run(app, store_users.tokens_for, db_user(app, "admin").id)[0].revoked


def test_change_password_keeps_this_session(app: Flask) -> None:
    client = signed_in(app, "engineer")
    other = signed_in(app, "engineer")
    form = {
        "current": "wrong password!!",
        "new": "another long passphrase",
        "confirm": "another long passphrase",
        "csrf_token": csrf_token(client, "/account"),
    }
    r = client.post("/account/password", data=form)
    assert r.status_code == 400 and "not right" in r.get_data(as_text=True)
    r = client.post("/account/password", data={**form, "current": PASSWORD})
    assert r.status_code == 302
    assert client.get("/account").status_code == 200  # this browser stays signed in
    assert other.get("/account").status_code == 302  # every other session ended
    assert login(app.test_client(), "engineer", "another long passphrase").status_code == 302


@pytest.mark.parametrize("new", ["aaaaaaaaaaaa", "Password2024!", "engineer-engineer"])
def test_change_password_refuses_weak_ones(app: Flask, new: str) -> None:
    client = signed_in(app, "engineer")
    r = client.post("/account/password", data={
        "current": PASSWORD, "new": new, "confirm": new,
        "csrf_token": csrf_token(client, "/account"),
    })
    assert r.status_code == 400
    assert re.search(r"too few different|too common|contains the username", r.get_data(
        as_text=True))
    assert login(app.test_client(), "engineer").status_code == 302  # the old one stands


def test_the_nav_shows_each_role_the_pages_it_may_open(app: Flask) -> None:
    admin = signed_in(app, "admin").get("/account").get_data(as_text=True)
    engineer = signed_in(app, "engineer").get("/account").get_data(as_text=True)
    for html in (admin, engineer):
        assert 'href="/incidents"' in html and 'href="/health/learning"' in html
    assert 'href="/rules"' in admin and 'href="/rules"' not in engineer
    # The audit log holds reviewers' reasons: incident managers and admins only.
    assert 'href="/audit"' in admin and 'href="/audit"' not in engineer


# --- storage of secrets -----------------------------------------------------------------


def test_passwords_are_stored_as_strong_argon2id_hashes(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the production hasher, not the cheap one
    assert store_users.PASSWORD_HASHER.memory_cost >= 65536
    add_user(app, "strong", "engineer", "a passphrase to hash")
    stored = db_user(app, "strong").password_hash
    assert stored.startswith("$argon2id$") and "a passphrase to hash" not in stored
    params = argon2.extract_parameters(stored)
    assert params.memory_cost >= 65536 and params.time_cost >= 2
    assert store_users.verify_password(stored, "a passphrase to hash")
    assert not store_users.verify_password(stored, "a passphrase to hasH")


def test_weak_hashes_are_upgraded_at_sign_in(app: Flask) -> None:
    old = db_user(app, "engineer").password_hash  # made with the cheap test hasher
    stronger = argon2.PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    store_users.PASSWORD_HASHER = stronger  # undone by the autouse monkeypatch
    assert login(app.test_client(), "engineer").status_code == 302
    new = db_user(app, "engineer").password_hash
    assert new != old and argon2.extract_parameters(new).time_cost == 2


# --- the limiter on its own -------------------------------------------------------------


def test_memory_limiter_window_reset_and_bounded_size() -> None:
    now = [0.0]
    limiter = MemoryLoginLimiter(
        limit=2, window=timedelta(seconds=60), clock=lambda: now[0], max_keys=3
    )
    limiter.failed(["a"])
    assert limiter.retry_after(["a"]) is None
    now[0] = 10
    limiter.failed(["a"])
    assert limiter.retry_after(["a", "b"]) == 50  # the first failure leaves the window at 60
    now[0] = 30
    assert limiter.retry_after(["a"]) == 30
    now[0] = 60.5  # the failure at 0 has left the window: one is not enough to block
    assert limiter.retry_after(["a"]) is None
    limiter.failed(["a"])
    limiter.reset("a")
    assert limiter.retry_after(["a"]) is None
    for key in "bcdef":
        limiter.failed([key])
    assert len(limiter._failures) <= 3


# --- response headers -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/account", "/healthz", "/nowhere", "/api/probe/read"])
def test_every_response_forbids_framing_and_sniffing(app: Flask, path: str) -> None:
    r = signed_in(app, "admin").get(path)
    csp = r.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert r.headers.get("X-Frame-Options") == "DENY"
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.headers.get("Referrer-Policy") == "same-origin"


def test_signed_webhook_answers_carry_the_headers_too(env: ServiceEnv) -> None:
    r = env.app.test_client().post("/webhooks/github", data=b"{}")
    assert r.status_code == 401
    assert r.headers.get("X-Frame-Options") == "DENY"
