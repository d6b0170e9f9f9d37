"""Security headers on every response: pages, JSON, webhooks and errors alike.

The dashboard's forms (waive, publish, roll back) change things with one click, so no
other site may frame them (clickjacking). The templates load scripts and styles from
/static only, never inline, so the policy allows nothing else; a postmortem or rule text
that slipped past escaping still could not run.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Incident URLs and ids stay on this site; links out to the tracker send no path.
    "Referrer-Policy": "same-origin",
}


def _add(response: Response) -> Response:
    for name, value in HEADERS.items():
        # setdefault: a view that needs a different value sets its own.
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_add)
