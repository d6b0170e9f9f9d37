"""HMAC verification of GitHub and Jira deliveries."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connector import signatures
from connector.signatures import sign_github, sign_jira, verify_github, verify_jira

# GitHub's documented test vector (Validating webhook deliveries).
SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

VERIFIERS = [verify_github, verify_jira]


def test_github_documented_vector() -> None:
    assert sign_github(SECRET, BODY) == SIGNATURE
    assert verify_github(SECRET, BODY, SIGNATURE)


def test_jira_uses_the_same_algorithm() -> None:
    assert sign_jira(SECRET, BODY) == SIGNATURE
    assert verify_jira(SECRET, BODY, SIGNATURE)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_str_secret_is_utf8(verify) -> None:
    assert verify(SECRET.decode(), BODY, SIGNATURE)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_tampered_body_fails(verify) -> None:
    assert not verify(SECRET, BODY + b" ", SIGNATURE)
    assert not verify(SECRET, b"Hello, World?", SIGNATURE)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_wrong_secret_fails(verify) -> None:
    assert not verify(b"another secret", BODY, SIGNATURE)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_empty_secret_never_verifies(verify) -> None:
    assert not verify(b"", BODY, sign_github(b"", BODY))


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # no prefix
        "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest(),  # legacy algorithm
        "sha256=",
        "sha256=757107ea",  # truncated
        SIGNATURE + "00",  # too long
        "sha256=" + "zz" * 32,  # not hex
        "sha256=7571 07ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1\u00e9",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ],
)
def test_missing_or_malformed_header_fails(verify, header) -> None:
    assert not verify(SECRET, BODY, header)


def test_uppercase_hex_and_surrounding_space_are_tolerated() -> None:
    assert verify_github(SECRET, BODY, "sha256=" + SIGNATURE[7:].upper())
    assert verify_github(SECRET, BODY, f" {SIGNATURE} ")


def test_comparison_goes_through_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(signatures.hmac, "compare_digest", spy)
    assert verify_github(SECRET, BODY, SIGNATURE)
    assert not verify_jira(SECRET, BODY, "sha256=" + "0" * 64)
    assert len(calls) == 2  # a wrong but well-formed digest takes the constant-time path too


def test_signature_is_over_raw_bytes() -> None:
    body = '{"a": "ü"}'.encode()
    assert verify_github(b"s", body, sign_github(b"s", body))
    assert not verify_github(b"s", body, sign_github(b"s", '{"a":"ü"}'.encode()))
