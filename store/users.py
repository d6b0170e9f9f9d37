"""Users and API tokens: creating, finding, signing in, hashing.

Like store.queries, nothing here commits: the caller's `session_scope` owns the
transaction, so an account change and its audit entry are stored together.

Passwords are hashed with argon2id (argon2-cffi's defaults: RFC 9106's second
recommended profile, 64 MiB, 3 passes). API tokens are 256 random bits and stored as a
SHA-256: a slow hash would add nothing against guessing such a token and would make
every API request pay for it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import ROLES, ApiToken, User
from store.types import utcnow

MIN_PASSWORD_LENGTH = 12
# Long enough for any passphrase or password manager; short enough that nobody can make
# the server hash megabytes.
MAX_PASSWORD_LENGTH = 1024
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
TOKEN_NAME = re.compile(r"[\w .@-]{1,64}")
TOKEN_PREFIX = "pmg_"
# A used token's last_used_at is rewritten at most this often: without it every API call
# would be a write, and on SQLite writes queue behind one lock.
LAST_USED_RESOLUTION = timedelta(minutes=1)

MIN_DISTINCT_CHARACTERS = 5  # "aaaaaaaaaaaa" and "abababababab" are long, not strong
# The words and keyboard runs that lead every leaked-password list; a password whose core
# (what is left without leading and trailing digits and symbols, and without l33t
# spelling or repetition) is one of them is refused. Short on purpose: a long list would
# refuse real passphrases for little gain once 12 characters are required.
COMMON_WORDS = frozenset("""
    password passwort passphrase letmein welcome admin administrator root changeme
    iloveyou trustno monkey dragon football baseball soccer hockey sunshine princess
    master superman batman shadow michael jordan starwars whatever secret login access
    hello freedom summer winter spring autumn abc test guest default incident postmortem
    pmguard company qwerty azerty qwertz
""".split())
KEYBOARD_RUNS = (
    "01234567890123456789", "98765432109876543210", "abcdefghijklmnopqrstuvwxyz",
    "zyxwvutsrqponmlkjihgfedcba", "qwertyuiopasdfghjklzxcvbnm", "azertyuiopqsdfghjklmwxcvbn",
    "qwertzuiopasdfghjklyxcvbnm", "1qaz2wsx3edc4rfv5tgb6yhn7ujm", "1q2w3e4r5t6y7u8i9o0p",
    "qazwsxedcrfvtgbyhnujmikolp", "poiuytrewqlkjhgfdsamnbvcxz",
)
_LEET = str.maketrans("0134578@$!", "oieastbasi")
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")

# Module-level so a test suite can swap in cheaper parameters; production keeps these.
PASSWORD_HASHER = PasswordHasher()


class UserError(ValueError):
    """An account operation was refused; the message says why in one line."""


class UnknownUser(UserError):
    pass


class DuplicateUser(UserError):
    pass


class BadRole(UserError):
    pass


class WeakPassword(UserError):
    pass


class BadName(UserError):
    pass


class DuplicateToken(UserError):
    pass


# --- names, roles and passwords ---------------------------------------------------------


def normalise_username(username: str) -> str:
    """The stored form of a username (lower case); BadName when it cannot be one."""
    name = (username or "").strip().lower()
    if not USERNAME.fullmatch(name):
        raise BadName(
            f"invalid username {username!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRole(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def role_at_least(role: str, required: str) -> bool:
    """Whether `role` may do what `required` may: admin > incident_manager > engineer."""
    if required not in ROLES:
        raise BadRole(f"unknown role {required!r}")
    return role in ROLES and ROLES.index(role) >= ROLES.index(required)


def check_password(password: str, username: str = "") -> None:
    """WeakPassword unless `password` is acceptable for `username`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise WeakPassword("password is only whitespace")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        raise WeakPassword(
            "password has too few different characters: use at least "
            f"{MIN_DISTINCT_CHARACTERS}"
        )
    # Only names long enough to matter: "password contains 'al'" would refuse half of all
    # passphrases for no gain.
    if username and (password.lower() == username.lower()
                     or (len(username) >= 4 and username.lower() in password.lower())):
        raise WeakPassword("password contains the username")
    if _is_common(password):
        raise WeakPassword(
            "password is too common: it is a well-known word or keyboard run with digits "
            "or symbols around it; a few unrelated words make a better one"
        )


def _is_common(password: str) -> bool:
    lowered = password.lower()
    core = _EDGES.sub("", lowered).replace(" ", "")
    if not core:
        core = lowered  # digits and symbols only: "123456789012" is a keyboard run
    else:
        core = core.translate(_LEET)
        repeated = re.fullmatch(r"(.+?)\1+", core)
        core = repeated.group(1) if repeated else core
    if core in COMMON_WORDS:
        return True
    return len(core) >= 4 and any(core in run for run in KEYBOARD_RUNS)


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_dummy_hash: str | None = None


def _burn_time(password: str) -> None:
    # An unknown username costs the same hash as a known one, so response time does not
    # tell an attacker which usernames exist.
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_hex(16))
    verify_password(_dummy_hash, password)


# --- users ------------------------------------------------------------------------------


def get_user(session: Session, username: str) -> User | None:
    try:
        name = normalise_username(username)
    except BadName:
        return None
    return session.scalar(select(User).where(User.username == name))


def require_user(session: Session, username: str) -> User:
    user = get_user(session, username)
    if user is None:
        raise UnknownUser(f"no user {username!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def create_user(session: Session, username: str, password: str, role: str) -> User:
    """A new enabled user; DuplicateUser, BadName, BadRole or WeakPassword otherwise."""
    name = normalise_username(username)
    check_role(role)
    check_password(password, name)
    if get_user(session, name) is not None:
        raise DuplicateUser(f"user {name!r} already exists")
    user = User(username=name, password_hash=hash_password(password), role=role)
    try:
        # A savepoint: losing a race to a concurrent add leaves the caller's transaction
        # usable, and the unique constraint (not the SELECT above) is what decides.
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise DuplicateUser(f"user {name!r} already exists") from None
    return user


def set_disabled(session: Session, username: str, disabled: bool) -> User:
    user = require_user(session, username)
    user.disabled = disabled
    session.flush()
    return user


def set_role(session: Session, username: str, role: str) -> User:
    user = require_user(session, username)
    user.role = check_role(role)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> User:
    """Replace the password. Signed-in sessions end too: web.auth ties a session to the
    password hash and session generation it was opened with. Failed-attempt counts start
    again."""
    user = require_user(session, username)
    check_password(password, user.username)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.session_generation = (user.session_generation or 0) + 1
    session.flush()
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """End every signed-in session of the user (web.auth ties a session to the user's
    session generation); the next sign-in opens a fresh one."""
    user = session.get(User, user_id)
    if user is not None:
        user.session_generation = (user.session_generation or 0) + 1
        session.flush()


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt came to: `user` is set only when `ok`."""

    ok: bool
    user: User | None = None
    disabled: bool = False


def authenticate(session: Session, username: str, password: str) -> SignIn:
    """Check a username and password, recording the success or failure on the user."""
    user = get_user(session, username)
    if user is None:
        _burn_time(password)
        return SignIn(ok=False)
    if not verify_password(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        user.last_failed_login_at = utcnow()
        session.flush()
        return SignIn(ok=False)
    if user.disabled:
        # Said only to someone who knows the password; no counters change.
        return SignIn(ok=False, disabled=True)
    user.last_login_at = utcnow()
    user.failed_logins = 0
    # Hashes made with older (weaker) parameters are upgraded while the password is known.
    if PASSWORD_HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.flush()
    return SignIn(ok=True, user=user)


# --- API tokens -------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, username: str, name: str) -> tuple[ApiToken, str]:
    """A new token for the user: (row, the token itself). The token is not stored and
    cannot be shown again; the caller shows it once."""
    user = require_user(session, username)
    name = (name or "").strip()
    if not TOKEN_NAME.fullmatch(name):
        raise BadName(
            f"invalid token name {name!r}: use 1-64 letters, digits, spaces, '.', '_', '@' "
            "or '-'"
        )
    if any(t.name == name and not t.revoked for t in user.tokens):
        raise DuplicateToken(f"user {user.username!r} already has a token named {name!r}")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=token_hash(raw), prefix=raw[: len(TOKEN_PREFIX) + 6])
    user.tokens.append(token)
    session.flush()
    return token, raw


def tokens_for(session: Session, user_id: int) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    return list(session.scalars(query))


def revoke_token(session: Session, user_id: int, token_id: int) -> ApiToken | None:
    """Revoke one of the user's tokens; None when the user has no such token."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        return None
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def user_for_token(
    session: Session, raw: str, now: datetime | None = None
) -> tuple[User, ApiToken] | None:
    """The enabled user and live token a bearer token stands for, or None.

    Looked up by hash through the unique index: equality on a digest of the token, so
    comparison time tells nothing about the token itself.
    """
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 256:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(raw)))
    if token is None or token.revoked:
        return None
    user = token.user
    if user.disabled:
        return None
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.flush()
    return user, token
