"""Text in, findings out: pure analysis with no I/O beyond loading the spaCy pipeline."""

from typing import Any

__all__ = ["analyse"]


def __getattr__(name: str) -> Any:
    # Lazy so that importing a small record module (nlp.model) does not load spaCy.
    if name == "analyse":
        from nlp.analysis import analyse

        return analyse
    raise AttributeError(name)
