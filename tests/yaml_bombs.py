"""YAML that stands for far more than it says: the texts of issue 9 (Medium 4)."""

from __future__ import annotations

LEVELS = "abcdefghi"


def billion_laughs(key: str) -> str:
    """`key:` holding nine lists, each nine aliases of the one before: 9**9 values in
    under 500 bytes (the attack used a 474-byte one)."""
    lines = [f"{key}:", "  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for before, name in zip(LEVELS, LEVELS[1:], strict=False):
        lines.append(f"  - &{name} [" + ", ".join([f"*{before}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 600
    return text


def wide_pack(n: int = 500) -> str:
    """A pack of about 4 KB whose one pattern list is n aliases of a pattern of n aliases of
    one token: n * n pattern tokens, the shape that cost 34 s and 600 MB per lint call."""
    token = "&t {LOWER: lol}"
    pattern = "&p [" + token + "".join(", *t" for _ in range(n - 1)) + "]"
    patterns = "[" + pattern + "".join(", *p" for _ in range(n - 1)) + "]"
    return f"""name: wide
version: "1"
rules:
  - id: test.wide
    category: human-error
    severity: warning
    message: "Which interface made this easy?"
    explanation: "Wide."
    suggestion: "What made it easy?"
    patterns: {patterns}
    examples:
      match: ["lol", "lol lol"]
      no_match: ["The disk filled up.", "Nothing here."]
"""
