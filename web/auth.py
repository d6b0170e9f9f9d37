"""Sign-in, roles, CSRF and API tokens: what every dashboard page and API view stands on.

A view states the least role it needs; the server enforces it on every request:

    from web.auth import requires

    @bp.get("/incidents")
    @requires("engineer")           # engineer < incident_manager < admin
    def incidents(): ...

`current_user` (Flask-Login) is a `Principal`: `.username`, `.role`, `.can("admin")`.

Pages answer an anonymous request with a redirect to /login and a refused role with the
403 page; anything under /api/ answers JSON `{"error": ...}` with 401 or 403 instead.
Browsers authenticate with a session cookie; API clients with `Authorization: Bearer
<token>` (tokens are created on /account or with `pmguard users token`). Every POST, PUT,
PATCH and DELETE needs a CSRF token (Flask-WTF) unless it comes with a valid API token, or
to a blueprint exempted in app.py (the webhooks, which are signed by the tracker).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import (
    Forbidden,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
)
from werkzeug.routing import RequestRedirect
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

from store import queries
from store import users as store_users
from store.db import session_scope
from store.models import ROLES, User

__all__ = [
    "ROLES",
    "LoginLimiter",
    "MemoryLoginLimiter",
    "Principal",
    "bp",
    "forbidden",
    "init_app",
    "is_api_request",
    "requires",
    "safe_next",
]

bp = Blueprint("auth", __name__)

ROLE_LABELS = {"engineer": "Engineer", "incident_manager": "Incident manager", "admin": "Admin"}
LIMITER = "pmguard_login_limiter"  # app.extensions key of the LoginLimiter
# Failed sign-ins in LOGIN_WINDOW before the next attempt is refused (429). Counted per
# (address, username), so a stranger's guesses never lock the account's owner out, and per
# address, so one address cannot guess its way through many accounts either. Failures for
# a username from everywhere only slow sign-ins for it down (MemoryLoginLimiter.pause).
LOGIN_LIMIT = 5  # per address and username
IP_LIMIT = 20  # per address, whatever the usernames
LOGIN_WINDOW = timedelta(minutes=15)
HOME = "/incidents"  # the dashboard's start page, once that blueprint is registered

F = TypeVar("F", bound=Callable[..., Any])


# --- who is signed in -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Principal(UserMixin):
    """The signed-in user as the request sees it: a plain value, not an ORM row, so it
    never lazy-loads from a closed session. Role and disabled flag are read from the
    store on every request, so a change takes effect at the user's next click."""

    id: int
    username: str
    role: str
    session_key: str
    token_id: int | None = None  # set when an API token authenticated the request

    def get_id(self) -> str:
        return self.session_key

    def can(self, role: str) -> bool:
        return store_users.role_at_least(self.role, role)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


def _session_stamp(user: User) -> str:
    # Part of the id kept in the session cookie: resetting a password changes the hash,
    # and signing out moves the session generation on, so every session opened before
    # stops loading, copies of its cookie included. Keyed with the app secret so the
    # (signed but readable) cookie says nothing about the hash.
    key = str(current_app.secret_key).encode()
    material = f"{user.password_hash}\n{user.session_generation or 0}".encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()[:24]


def _principal(user: User, token_id: int | None = None) -> Principal:
    return Principal(
        id=user.id,
        username=user.username,
        role=user.role,
        session_key=f"{user.id}:{_session_stamp(user)}",
        token_id=token_id,
    )


def _sessions():
    return current_app.extensions["pmguard"].sessions


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _bearer_token() -> str | None:
    """The bearer token of an /api/ request; "" for a malformed one; None without one."""
    if not is_api_request():
        return None  # tokens are for the JSON API; pages go by the session cookie only
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _load_from_session(session_key: str) -> Principal | None:
    if _bearer_token() is not None:
        # An API call that names a token is judged by that token alone, never by a
        # cookie the same client happens to hold.
        return None
    user_id, _, stamp = session_key.partition(":")
    if not user_id.isdigit() or not stamp:
        return None
    with session_scope(_sessions()) as db:
        user = db.get(User, int(user_id))
        if user is None or user.disabled:
            return None
        if not hmac.compare_digest(stamp, _session_stamp(user)):
            return None
        return _principal(user)


def _load_from_request(_request: Any) -> Principal | None:
    raw = _bearer_token()
    if raw is None:
        return None
    with session_scope(_sessions()) as db:
        found = store_users.user_for_token(db, raw)
        if found is None:
            g.pmguard_auth_error = "invalid or revoked API token, or its user is disabled"
            return None
        user, token = found
        return _principal(user, token_id=token.id)


def _token_authenticated() -> bool:
    user = current_user
    return bool(user.is_authenticated and getattr(user, "token_id", None) is not None)


# --- answers: 401, 403, CSRF ------------------------------------------------------------


def _json_error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pmguard"'
    return response


def _unauthorized() -> Response:
    if is_api_request():
        return _json_error(
            401,
            g.get("pmguard_auth_error")
            or "authentication required: sign in, or send 'Authorization: Bearer <token>'",
        )
    flash("Please sign in to continue.", "info")
    here = request.full_path.rstrip("?") if request.method == "GET" else request.path
    return redirect(url_for("auth.login", next=here))


def forbidden(message: str | None = None, needed: str | None = None) -> Response:
    """The 403 answer: JSON under /api/, the 403 page otherwise."""
    if needed:
        message = message or f"this needs the {ROLE_LABELS.get(needed, needed)} role"
    message = message or "this is not open to the signed-in account's role"
    if is_api_request():
        return _json_error(403, message)
    body = render_template("errors/403.html", message=message, needed=needed)
    return make_response(body, 403)


def _on_403(error: HTTPException) -> Response:
    default = error.description == Forbidden.description
    return forbidden(None if default else error.description)


def _on_csrf_error(error: CSRFError) -> Response:
    if is_api_request():
        return _json_error(
            400,
            f"CSRF check failed ({error.description}): send the X-CSRFToken header from the "
            "page's csrf-token meta tag, or authenticate with an API token",
        )
    body = render_template(
        "errors/error.html",
        title="Form expired",
        message="This form has expired or did not come from this site. Go back, reload the "
        "page and try again.",
    )
    return make_response(body, 400)


def requires(role: str) -> Callable[[F], F]:
    """Let a view run only for a signed-in user whose role is `role` or above.

    Anonymous: redirect to /login (pages) or 401 JSON (/api/). Signed in without the
    role: the 403 page, or 403 JSON under /api/. The wrapped view carries
    `required_role`, which tests use to check that no view was left unguarded.
    """
    store_users.check_role(role)  # a misspelt role fails at import, not per request

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if not current_user.can(role):
                return forbidden(needed=role)
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


class _CSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF check, skipped for requests a valid API token authenticates.

    A forged cross-site request rides on the victim's cookie; a token request carries no
    cookie authority (the session is ignored when a bearer token is sent), so there is
    nothing to forge. A session-authenticated API call still needs the CSRF header.
    """

    def protect(self, apply_exemptions: bool = False) -> None:
        writes = request.method in current_app.config["WTF_CSRF_METHODS"]
        if apply_exemptions and writes and _bearer_token() is not None:
            if _token_authenticated():
                return
            # A bad token is the answer that helps the client, not "CSRF missing".
            raise _TokenRefused()
        super().protect(apply_exemptions=apply_exemptions)


class _TokenRefused(Unauthorized):
    """Raised from the CSRF hook; answered by the app's 401 handler (`_unauthorized`)."""


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure whenever the request came over HTTPS, and always when configured
        # (PMGUARD_SECURE_COOKIES=1: behind a proxy that terminates TLS the app sees
        # http). Plain-HTTP local use (`pmguard serve` on a laptop) keeps working.
        return bool(super().get_cookie_secure(app) or request.is_secure)


# --- the login rate limit ---------------------------------------------------------------


class LoginLimiter(Protocol):
    """Counts failed sign-ins per key ("ip:ADDRESS", "pair:ADDRESS NAME", "user:NAME") in
    a sliding window."""

    def retry_after(self, keys: Iterable[str], limit: int | None = None) -> int | None:
        """Seconds until any of `keys` may try again (`limit` failures in the window
        block a key), or None when none is blocked."""
        ...

    def pause(self, key: str, free: int = LOGIN_LIMIT) -> None:
        """Sleep a little when `key` has more than `free` recent failures: slows guessing
        without ever refusing."""
        ...

    def failed(self, keys: Iterable[str]) -> None: ...

    def reset(self, key: str) -> None: ...


class MemoryLoginLimiter:
    """A LoginLimiter in this process's memory.

    Right for one process (`pmguard serve`, or gunicorn with one worker). With several
    worker processes each counts on its own, so the effective limit is multiplied by the
    number of workers and resets on restart: put a shared implementation (Redis: a sorted
    set per key, ZREMRANGEBYSCORE + ZCARD) in app.extensions[LIMITER] for that.
    """

    MAX_PAUSE = 2.0  # seconds: short enough that the account's owner barely notices
    FIRST_PAUSE = 0.05  # doubled with every further failure, up to MAX_PAUSE
    KEEP = 64  # failures remembered per key: more than any limit or pause needs

    def __init__(
        self,
        limit: int = LOGIN_LIMIT,
        window: timedelta = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window.total_seconds()
        self.clock = clock
        self.sleep = sleep
        # Bounded, so a flood of made-up usernames cannot grow memory without end.
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: Iterable[str], limit: int | None = None) -> int | None:
        limit = min(limit or self.limit, self.KEEP)
        now = self.clock()
        waits = []
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= limit:
                    waits.append(times[-limit] + self.window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def pause(self, key: str, free: int = LOGIN_LIMIT) -> None:
        with self._lock:
            count = len(self._recent(key, self.clock()))
        if count >= free:
            self.sleep(min(self.MAX_PAUSE, self.FIRST_PAUSE * 2 ** (count - free)))

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._recent(key, now)
                self._failures.setdefault(key, deque(maxlen=self.KEEP)).append(now)
            if len(self._failures) > self.max_keys:
                self._prune(now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        # Still too many live keys: forget the ones whose last failure is oldest.
        excess = len(self._failures) - self.max_keys
        if excess > 0:
            oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])[:excess]
            for key in oldest:
                del self._failures[key]


def _limiter() -> LoginLimiter:
    return current_app.extensions[LIMITER]


def _user_key(username: str) -> str:
    return f"user:{(username or '').strip().lower()[:64]}"


def _address() -> str:
    # The client's address: behind `trusted_proxies` proxies, ProxyFix (app.py) has taken
    # it from X-Forwarded-For; otherwise that header is the client's own to forge.
    return request.remote_addr or "unknown"


def _pair_key(username: str) -> str:
    return f"pair:{_address()} {_user_key(username)[5:]}"


def _ip_key() -> str:
    return f"ip:{_address()}"


def _too_many(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        "Too many failed sign-in attempts for this account or from this address. "
        f"Try again in {minutes} {unit}."
    )


# --- redirects --------------------------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None (no open redirect)."""
    if not target or len(target) > 2048:
        return None
    # Backslashes: browsers read "/\\evil.example" as "//evil.example". Control
    # characters: some browsers drop them, which can turn "/\t/evil" into "//evil".
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _home() -> str:
    """The dashboard's incident queue when it exists, else the account page."""
    adapter = current_app.create_url_adapter(request)
    try:
        adapter.match(HOME, method="GET")
    except RequestRedirect:
        return HOME  # registered with a trailing slash; the redirect takes care of it
    except (NotFound, MethodNotAllowed):
        return url_for("auth.account")
    return HOME


# --- forms ------------------------------------------------------------------------------


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    password = PasswordField(
        "Password",
        validators=[InputRequired(), Length(max=store_users.MAX_PASSWORD_LENGTH)],
    )
    next = HiddenField()


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[InputRequired(), Length(max=64)])


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[InputRequired()])
    new = PasswordField(
        "New password",
        validators=[
            InputRequired(),
            Length(min=store_users.MIN_PASSWORD_LENGTH, max=store_users.MAX_PASSWORD_LENGTH),
        ],
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("new", message="The two new passwords differ.")],
    )


# --- pages ------------------------------------------------------------------------------


@bp.get("/")
@requires("engineer")
def index() -> Response:
    return redirect(_home())


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    form = LoginForm()
    next_url = safe_next(form.next.data or request.args.get("next"))
    form.next.data = next_url or ""
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_url or _home())
    if not form.validate_on_submit():
        return render_template("login.html", form=form)

    username = form.username.data or ""
    limiter = _limiter()
    wait = max(
        limiter.retry_after([_pair_key(username)], LOGIN_LIMIT) or 0,
        limiter.retry_after([_ip_key()], IP_LIMIT) or 0,
    ) or None
    if wait is not None:
        # Refused before the password is even checked: no guess is tested while blocked.
        response = make_response(
            render_template("login.html", form=form, error=_too_many(wait)), 429
        )
        response.headers["Retry-After"] = str(wait)
        return response
    # Failures for this name from anywhere only slow it down: a refusal here would let
    # anyone lock a named admin out.
    limiter.pause(_user_key(username))

    with session_scope(_sessions()) as db:
        result = store_users.authenticate(db, username, form.password.data or "")
        principal = _principal(result.user) if result.ok and result.user else None
    if result.disabled:
        message = "This account is disabled. An admin can enable it with `pmguard users enable`."
        return make_response(render_template("login.html", form=form, error=message), 403)
    if principal is None:
        limiter.failed([_pair_key(username), _ip_key(), _user_key(username)])
        return render_template("login.html", form=form, error="Wrong username or password.")

    limiter.reset(_pair_key(username))
    limiter.reset(_user_key(username))
    # A fresh session for the signed-in user: nothing from before sign-in carries over.
    session.clear()
    # Not permanent: a browser-session cookie. Flask-Login treats permanent sessions as
    # "basic" protection even in strong mode; the signature's max age
    # (PERMANENT_SESSION_LIFETIME) still bounds how long a copied cookie works.
    login_user(principal)
    return redirect(next_url or _home())


@bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        # Server-side: a copy of this session's cookie must stop working too, not only the
        # cookie this browser is about to drop. Ends the user's other sessions as well.
        with session_scope(_sessions()) as db:
            store_users.end_sessions(db, current_user.id)
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))


@dataclass(frozen=True)
class NewToken:
    name: str
    value: str


def _render_account(
    *,
    token_form: TokenForm | None = None,
    password_form: PasswordForm | None = None,
    new_token: NewToken | None = None,
    status: int = 200,
) -> Response:
    with session_scope(_sessions()) as db:
        user = db.get(User, current_user.id)
        tokens = store_users.tokens_for(db, current_user.id)
    body = render_template(
        "account.html",
        user=user,
        tokens=tokens,
        token_form=token_form or TokenForm(formdata=None),
        password_form=password_form or PasswordForm(formdata=None),
        new_token=new_token,
    )
    response = make_response(body, status)
    if new_token is not None:
        # The only time the token is ever shown: keep it out of every cache.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/account")
@requires("engineer")
def account() -> Response:
    return _render_account()


@bp.post("/account/tokens")
@requires("engineer")
def create_token() -> Response:
    form = TokenForm()
    if not form.validate_on_submit():
        return _render_account(token_form=form, status=400)
    try:
        with session_scope(_sessions()) as db:
            token, raw = store_users.create_token(db, current_user.username, form.name.data)
            queries.audit(
                db, current_user.username, "token.create", "api_token", str(token.id),
                detail={"user": current_user.username, "name": token.name},
            )
    except store_users.UserError as error:
        form.name.errors = [*form.name.errors, str(error)]
        return _render_account(token_form=form, status=400)
    # Rendered straight into this response, never flashed: a flash message would sit in
    # the (signed, not encrypted) session cookie.
    return _render_account(new_token=NewToken(token.name, raw))


@bp.post("/account/tokens/<int:token_id>/revoke")
@requires("engineer")
def revoke_token(token_id: int) -> Response:
    with session_scope(_sessions()) as db:
        token = store_users.revoke_token(db, current_user.id, token_id)
        if token is not None:
            queries.audit(
                db, current_user.username, "token.revoke", "api_token", str(token.id),
                detail={"user": current_user.username, "name": token.name},
            )
    if token is None:
        return make_response(
            render_template("errors/error.html", title="Not found", message="No such token."),
            404,
        )
    flash(f"Token “{token.name}” revoked.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/password")
@requires("engineer")
def change_password() -> Response:
    form = PasswordForm()
    if not form.validate_on_submit():
        return _render_account(password_form=form, status=400)
    # Its own key: only this signed-in user can fail it, and sign-in failures by others
    # must not block it.
    keys = [f"password:{current_user.id}"]
    wait = _limiter().retry_after(keys)
    if wait is not None:
        form.current.errors = [_too_many(wait)]
        response = _render_account(password_form=form, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        with session_scope(_sessions()) as db:
            user = db.get(User, current_user.id)
            if not store_users.verify_password(user.password_hash, form.current.data or ""):
                raise store_users.UserError("The current password is not right.")
            user = store_users.set_password(db, user.username, form.new.data or "")
            queries.audit(db, user.username, "user.password", "user", user.username)
            principal = _principal(user)
    except store_users.WeakPassword as error:
        form.new.errors = [str(error).capitalize() + "."]
        return _render_account(password_form=form, status=400)
    except store_users.UserError as error:
        _limiter().failed(keys)
        form.current.errors = [str(error)]
        return _render_account(password_form=form, status=400)
    # The new hash ends every other session; this one continues under the new stamp.
    login_user(principal)
    flash("Password changed. Other signed-in sessions have ended.", "info")
    return redirect(url_for("auth.account"))


# --- wiring -----------------------------------------------------------------------------


def init_app(app: Flask) -> CSRFProtect:
    """Sign-in, roles, CSRF and API tokens for `app`; returns the CSRF extension so the
    composition root can exempt blueprints that authenticate otherwise (webhooks)."""
    manager = LoginManager()
    manager.session_protection = "strong"
    manager.login_view = "auth.login"
    manager.user_loader(_load_from_session)
    manager.request_loader(_load_from_request)
    manager.unauthorized_handler(_unauthorized)
    manager.init_app(app)

    csrf = _CSRFProtect(app)
    app.session_interface = _SessionInterface()
    app.extensions.setdefault(LIMITER, MemoryLoginLimiter())

    app.register_error_handler(401, lambda _error: _unauthorized())
    app.register_error_handler(403, _on_403)
    app.register_error_handler(CSRFError, _on_csrf_error)
    app.register_blueprint(bp)

    @app.context_processor
    def _roles() -> dict[str, Any]:
        return {"role_labels": ROLE_LABELS}

    return csrf
