"""Logging set-up: plain text or one JSON object per line, carrying the delivery id and the
incident reference when the code that logs supplies them (`extra=`)."""

from __future__ import annotations

import json
import logging
import re
import sys

CONTEXT = ("delivery", "incident", "job", "verdict", "reason")
# Anything that looks like a credential is masked before a line is written.
SECRET = re.compile(
    r"(?i)(token|secret|password|authorization|private_key|api_key)(\"?\s*[:=]\s*\"?)"
    r"(?:(?:bearer|token|basic|jwt)\s+)?([^\s\",]+)"
)
# Credentials recognisable on their own, wherever they appear in a message.
BARE = re.compile(
    r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:ghp|gho|ghs|ghu|ghr|github_pat|pmg)_[A-Za-z0-9_]{8,}"
    r"|-----BEGIN[^-]*PRIVATE KEY-----"
)


def redact(text: str) -> str:
    text = SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return BARE.sub("***", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in CONTEXT:
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT if hasattr(record, k))
        line = super().format(record)
        return redact(f"{line} {context}".rstrip())


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    text = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if fmt == "json" else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
