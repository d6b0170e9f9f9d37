"""The stable identity of a finding across re-checks of an edited postmortem."""

from __future__ import annotations

import hashlib


def fingerprint(rule: str, sentence: str, text: str = "") -> str:
    """Hash of the rule id and the sentence, whitespace and case folded.

    Must stay identical to `nlp.model.Finding.fingerprint` (a test holds them together):
    the fingerprint is what carries a reviewer's decision from one analysis to the next, so
    a change here would silently drop every stored decision.
    """
    folded = " ".join((sentence or text).split()).casefold()
    return hashlib.sha256(f"{rule}\n{folded}".encode()).hexdigest()[:32]
