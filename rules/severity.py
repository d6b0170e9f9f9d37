"""The severities a rule or check may carry, lowest first: data every layer shares."""

from __future__ import annotations

SEVERITIES = ("info", "warning", "error")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)
