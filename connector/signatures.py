"""HMAC-SHA256 verification of webhook deliveries (GitHub and Jira admin webhooks).

Both send `sha256=<lowercase hex HMAC-SHA256 of the raw body>`: GitHub in
`X-Hub-Signature-256`, Jira in `X-Hub-Signature`. The digest is always computed on the raw
body bytes, before any JSON parsing, and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def _key(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _sign(secret: bytes | str, body: bytes) -> str:
    return _PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def _verify(secret: bytes | str, body: bytes, header: str | None) -> bool:
    # An empty secret would let anyone who guesses the misconfiguration forge deliveries.
    if not secret or not isinstance(header, str):
        return False
    header = header.strip()
    if not header.startswith(_PREFIX):
        return False
    given = header[len(_PREFIX) :]
    # Validate before comparing: compare_digest rejects non-ASCII str with TypeError, and a
    # well-formed but wrong digest must take the same constant-time path as a right one.
    if not _HEX_DIGEST.fullmatch(given):
        return False
    expected = hmac.new(_key(secret), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, bytes.fromhex(given))


def verify_github(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256` (`sha256=<hex>`) against the raw body."""
    return _verify(secret, body, header)


def verify_jira(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Check a Jira admin webhook's `X-Hub-Signature` (`sha256=<hex>` only) against the body."""
    return _verify(secret, body, header)


def sign_github(secret: bytes | str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send (for tests and the demo)."""
    return _sign(secret, body)


def sign_jira(secret: bytes | str, body: bytes) -> str:
    """The `X-Hub-Signature` value a Jira admin webhook would send (for tests and the demo)."""
    return _sign(secret, body)
